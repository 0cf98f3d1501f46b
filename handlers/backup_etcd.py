"""backup etcd: a snapshot of the control plane's etcd, taken on the node with its own etcdctl and
certificates, copied off over SFTP, checked by sha256 on both ends, stored and catalogued.

Everything about etcd comes from the node's `/etc/kubernetes/manifests/etcd.yaml` (endpoint,
certificates, data dir, image version), never from assumptions. Each step is idempotent: what it
learnt is kept in the job's data, so a resumed job continues where it stopped.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot, NodeInfo
from bot.contract import OPERATORS, NoOptions, Operation, Plan
from bot.domain.etcd_manifest import ManifestError, parse_etcd_manifest
from bot.domain.text import size
from bot.engine import Step, StepContext, action

ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
WORK_DIR = "/var/tmp/kubemaint-backup-{backup_id}"  # 0700, the SSH user's: the snapshot holds every Secret
SNAPSHOT_DEADLINE_SECONDS = 600
COPY_DEADLINE_SECONDS = 3600
CONTROL_PLANE_ROLES = ("control-plane", "master")


class BackupFailed(Exception):
    pass


def control_planes(snapshot: ClusterSnapshot) -> list[NodeInfo]:
    """Control-plane nodes, Ready ones first, then by name."""
    nodes = [n for n in snapshot.nodes.values() if any(role in n.roles for role in CONTROL_PLANE_ROLES)]
    return sorted(nodes, key=lambda n: (not n.ready, n.name))


def read_control_planes(resources: Any, options: NoOptions) -> ClusterSnapshot:
    return kube.read_nodes(resources["kube"])


def plan_backup(snapshot: ClusterSnapshot, options: NoOptions) -> Plan:
    candidates = control_planes(snapshot)
    if not candidates:
        return Plan((), refusal="no control-plane node found (a node labelled node-role.kubernetes.io/control-plane "
                                "or .../master): there is no etcd here to snapshot")
    node = candidates[0]
    if not node.ready:
        return Plan((), refusal=f"no control-plane node is Ready ({', '.join(n.name for n in candidates)}): "
                                "etcd cannot be snapshotted through a node the cluster cannot see")
    lines = (
        f"Snapshot etcd on {node.name} with its own etcdctl and certificates (read from {ETCD_MANIFEST}).",
        f"Copy it off {node.name} over SFTP; its sha256 is checked on both ends, then it is catalogued "
        "and the temporary file removed.",
        "Nothing in the cluster changes.",
    )
    args = {"node": node.name, "address": node.address}
    steps = (Step(f"snapshot etcd on {node.name}", "backup_etcd.snapshot", args),
             Step(f"copy the snapshot off {node.name}", "backup_etcd.copy", args),
             Step(f"remove the temporary file on {node.name}", "backup_etcd.clean", args))
    return Plan(lines, steps=steps, locks=("etcd",), next_command="backups")


# -- steps --------------------------------------------------------------------------------------------


def _ssh(ctx: StepContext) -> Any:
    return ctx.resources["ssh"]


def _backup_id(ctx: StepContext) -> str:
    if "backup_id" not in ctx.job_data:
        ctx.job_data["backup_id"] = ctx.resources["backups"].new_id()
    return ctx.job_data["backup_id"]


@action("backup_etcd.snapshot")
def snapshot(ctx: StepContext, node: str, address: str | None) -> str:
    shell = _ssh(ctx)
    backup_id = _backup_id(ctx)
    manifest_text = shell.run(node, ["cat", ETCD_MANIFEST], address=address, sudo=True, deadline=30, job=ctx).stdout
    try:
        etcd = parse_etcd_manifest(manifest_text)
    except ManifestError as error:
        raise BackupFailed(f"{node}: {error}. Nothing was saved.") from None
    work = WORK_DIR.format(backup_id=backup_id)
    path = f"{work}/snapshot.db"
    user = shell.config.user
    shell.run(node, ["install", "-d", "-m", "0700", "-o", user, work], address=address, sudo=True, deadline=30,
              job=ctx)
    ctx.progress(f"etcdctl snapshot save on {node}")
    shell.run(node, [*etcd.etcdctl(), "snapshot", "save", path], address=address, sudo=True,
              deadline=SNAPSHOT_DEADLINE_SECONDS, job=ctx)
    shell.run(node, ["chown", user, path], address=address, sudo=True, deadline=30, job=ctx)
    status = shell.run(node, ["env", "ETCDCTL_API=3", "etcdctl", "snapshot", "status", path, "-w", "json"],
                       address=address, deadline=120, job=ctx).stdout
    measured = _snapshot_status(node, status)
    # `totalKey` counts every stored revision of every key; what a restore must bring back is the objects live at
    # the snapshot's revision, counted now (the revision is the current one, not yet compacted).
    measured["objects"] = registry_objects(shell, node, address, etcd, measured["revision"], ctx)
    sha = shell.run(node, ["sha256sum", path], address=address, deadline=600, job=ctx).stdout.split()[0]
    ctx.job_data["snapshot"] = {"path": path, "work": work, "sha256": sha, "etcd_version": etcd.version, **measured}
    return (f"etcd {etcd.version or '?'} on {node}: revision {measured['revision']}, {measured['objects']} objects, "
            f"{measured['keys']} keys, {size(measured['size'])}")


@action("backup_etcd.copy")
def copy(ctx: StepContext, node: str, address: str | None) -> str:
    taken = ctx.job_data.get("snapshot")
    if not taken:
        raise BackupFailed("the snapshot step left no record of its file; resume the job to take it again")
    backups = ctx.resources["backups"]
    backup_id = _backup_id(ctx)
    if "entry" in ctx.job_data:  # stored by an earlier run of this step
        return "stored by an earlier run of this step"
    with tempfile.TemporaryDirectory(prefix="kubemaint-backup-") as local_dir:
        local = Path(local_dir) / "snapshot.db"
        ctx.progress(f"copying {size(taken['size'])} from {node}")
        copied = _ssh(ctx).fetch(node, taken["path"], local, address=address, deadline=COPY_DEADLINE_SECONDS,
                                 job=ctx)
        if copied.sha256 != taken["sha256"]:
            raise BackupFailed(f"the copy from {node} hashes {copied.sha256[:12]}… but the file on {node} hashes "
                               f"{taken['sha256'][:12]}…: nothing was catalogued; resume the job to copy it again")
        entry = backups.save(local, kind="etcd", backup_id=backup_id, requester=ctx.requester or "", node=node,
                             etcd_version=taken["etcd_version"], revision=taken["revision"], keys=taken["keys"],
                             objects=taken.get("objects"), job=ctx.job_id, expected_sha256=taken["sha256"])
    ctx.job_data["entry"] = (f"backup {entry.id}: revision {entry.revision}, {entry.keys} keys, {size(entry.size)}, "
                             f"sha256 {entry.sha256[:12]}…, in {entry.location}")
    return f"copied {size(copied.size)}, the same sha256 on both ends; catalogued as {entry.id}"


@action("backup_etcd.clean")
def clean(ctx: StepContext, node: str, address: str | None) -> str:
    taken = ctx.job_data.get("snapshot") or {}
    work = taken.get("work")
    if work:
        _ssh(ctx).run(node, ["rm", "-rf", "--", work], address=address, sudo=True, deadline=60, job=ctx)
    # The last step's detail is the job's result line: what was kept, and where.
    return f"{ctx.job_data.get('entry') or 'no backup was kept'}; {work or 'the temporary file'} removed on {node}"


def registry_objects(shell: Any, node: str, address: str | None, etcd: Any, revision: int, job: Any) -> int:
    """How many keys etcd holds under /registry (the API's objects) at `revision`."""
    # etcd 3.4's etcdctl has no --count-only; a range's `count` is its whole size whatever the limit.
    command = [*etcd.etcdctl(), "get", "/registry", "--prefix", "--keys-only", "--limit=1", f"--rev={revision}",
               "-w", "json"]
    output = shell.run(node, command, address=address, sudo=True, deadline=60, job=job).stdout
    try:
        return int(json.loads(output).get("count") or 0)
    except (ValueError, TypeError, AttributeError):
        raise BackupFailed(f"{node}: `etcdctl get /registry --prefix --keys-only -w json` printed something else: "
                           f"{shlex.quote(output[:200])}") from None


def _snapshot_status(node: str, output: str) -> dict[str, int]:
    try:
        status = json.loads(output)
        return {"revision": int(status["revision"]), "keys": int(status["totalKey"]), "size": int(status["totalSize"]),
                "hash": int(status["hash"])}
    except (ValueError, KeyError, TypeError):
        raise BackupFailed(f"{node}: `etcdctl snapshot status -w json` printed something else: "
                           f"{shlex.quote(output[:200])}") from None


BACKUP_ETCD = Operation(
    name="backup-etcd", words="backup etcd", policy=OPERATORS,
    needs=("kube", "ssh", "backups"),
    description="snapshot etcd on a control-plane node and keep it in the backup store",
    gather=read_control_planes, plan=plan_backup,
)
