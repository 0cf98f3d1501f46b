"""backup resources [--namespace NS]: every object as YAML (one file per object, without status and
managed fields) in one tarball in the backup store, catalogued like etcd snapshots. The seeds' other
backup: for clusters whose etcd is managed elsewhere, and for restoring one object with kubectl."""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.cluster.export import exported
from bot.contract import NAMESPACE, OPERATORS, Operation, Plan, flag
from bot.domain.text import size
from bot.engine import Step, StepContext, action


@dataclass(frozen=True)
class BackupResourcesOptions:
    namespace: str | None = flag(NAMESPACE, help="only this namespace's objects (and the namespace itself)")


def read_namespaces(resources: Any, options: BackupResourcesOptions) -> list[str]:
    from bot.cluster.kube import list_all

    return sorted(ns["metadata"]["name"] for ns in list_all(resources["kube"].core.list_namespace))


def plan_backup_resources(namespaces: list[str], options: BackupResourcesOptions) -> Plan:
    if options.namespace and options.namespace not in namespaces:
        return Plan((), refusal=f"namespace {options.namespace} not found; the cluster's namespaces are: "
                                f"{', '.join(namespaces) or 'none'}")
    scope = f"namespace {options.namespace}" if options.namespace else f"all {len(namespaces)} namespaces, plus nodes"
    lines = (f"Export every object of {scope} as YAML (one file each, without status and managed fields) into "
             "one tarball in the backup store, catalogued with the etcd snapshots.",
             "Nothing in the cluster changes.")
    # The "etcd" lock: a restore holds it (with every node's) while the API is down.
    return Plan(lines, steps=(Step("export the objects", "backup_resources.export",
                                   {"namespace": options.namespace}),), locks=("etcd",), next_command="backups")


@action("backup_resources.export")
def export(ctx: StepContext, namespace: str | None = None) -> str:
    backups = ctx.resources["backups"]
    if "backup_id" not in ctx.checkpoint_data:
        ctx.checkpoint_data["backup_id"] = backups.new_id()
    backup_id = ctx.checkpoint_data["backup_id"]
    count = 0
    with tempfile.TemporaryDirectory(prefix="kubemaint-resources-") as local:
        archive = Path(local) / "resources.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for name, text in exported(ctx.resources["kube"], namespace):
                data = text.encode()
                info = tarfile.TarInfo(f"{backup_id}/{name}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
                count += 1
                if count % 500 == 0:
                    ctx.progress(f"{count} objects exported")
        sha = hashlib.sha256(archive.read_bytes()).hexdigest()
        entry = backups.save(archive, kind="resources", backup_id=backup_id, requester=ctx.requester or "",
                             keys=count, job=ctx.job_id, expected_sha256=sha)
    return (f"backup {entry.id}: {count} objects{' of ' + namespace if namespace else ''}, {size(entry.size)}, "
            f"in {entry.location}")


BACKUP_RESOURCES = Operation(
    name="backup-resources", words="backup resources", options=BackupResourcesOptions, policy=OPERATORS,
    needs=("kube", "backups"),
    description="every object as YAML in one tarball in the backup store (or one namespace's)",
    gather=read_namespaces, plan=plan_backup_resources,
)
