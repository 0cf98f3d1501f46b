"""restore etcd from BACKUP_ID: the seeds' restore, step by step, each step idempotent and re-checked on
resume: verify the file, copy it to the control plane, stop the API, `etcdctl snapshot restore` into a new
data dir, point the etcd-data hostPath at it (the old manifest and data dir kept), wait for etcd, bring the
API back, verify. A failure says what state the control plane is in and how to roll back.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.cluster import kube
from bot.contract import Operation, Plan, Policy
from bot.domain.etcd_manifest import ManifestError, parse_etcd_manifest, with_data_dir
from bot.domain.text import age, size
from bot.engine import Step, StepContext, action
from handlers.backup_etcd import ETCD_MANIFEST, control_planes, registry_objects

MANIFESTS = "/etc/kubernetes/manifests"
API_MANIFEST = f"{MANIFESTS}/kube-apiserver.yaml"
API_ASIDE = "/etc/kubernetes/kube-apiserver.yaml.kubemaint-restore"  # outside the kubelet's directory
WORK_DIR = "/var/tmp/kubemaint-restore-{backup_id}"
API_WAIT_SECONDS = 300
ETCD_WAIT_SECONDS = 300


class RestoreFailed(Exception):
    pass


@dataclass(frozen=True)
class RestoreOptions:
    backup_id: str


@dataclass(frozen=True)
class RestoreFacts:
    entry: Any  # bot.backups.Entry, or None
    problem: str | None
    nodes: Any  # ClusterSnapshot
    revision: int | None
    now: float
    # With several clusters: the name this cluster's backups are filed under (a snapshot of another is refused).
    own_backups: str | None = None


def gather_restore(resources: Any, options: RestoreOptions) -> RestoreFacts:
    from bot.backups import UnknownBackup

    try:
        entry, problem = resources["backups"].catalog.require(options.backup_id), None
    except UnknownBackup as unknown:
        entry, problem = None, str(unknown)
    client = resources["kube"]
    own = resources["backups"].cluster if resources["cluster"] else None
    return RestoreFacts(entry, problem, kube.read_nodes(client), kube.current_revision(client), time.time(), own)


def plan_restore(facts: RestoreFacts, options: RestoreOptions) -> Plan:
    entry = facts.entry
    if entry is None:
        return Plan((), refusal=facts.problem or f"no backup {options.backup_id}")
    if entry.kind != "etcd":
        return Plan((), refusal=f"{entry.id} is a {entry.kind} backup, not an etcd snapshot: restore it with kubectl")
    if facts.own_backups is not None and entry.cluster != facts.own_backups:
        # Another cluster's etcd would replace this one's whole state: never, whatever the channel.
        return Plan((), refusal=f"{entry.id} is a snapshot of cluster {entry.cluster}, not of "
                                f"{facts.own_backups}: nothing was changed")
    candidates = [n for n in control_planes(facts.nodes) if n.ready]
    if not candidates:
        return Plan((), refusal="no Ready control-plane node to restore etcd on")
    node = candidates[0]
    moved = f"{facts.revision - entry.revision:,} revisions" if facts.revision and entry.revision else "an unknown " \
        "number of revisions"
    new_dir = f"/var/lib/etcd-from-backup-{entry.id}"
    lines = (
        f"Restore etcd on {node.name} from {entry.id}, taken {age(facts.now - entry.created_at)} ago by "
        f"{entry.requester} on {entry.node}: revision {entry.revision}, {entry.keys:,} keys, {size(entry.size)}.",
        f"⚠️ The cluster has moved {moved} since: everything written after the snapshot is lost "
        "(objects created, changed or deleted since then).",
        f"⚠️ The API is down during the restore: kube-apiserver.yaml is moved out of {MANIFESTS} and back.",
        f"etcd's data goes to a new directory, {new_dir}; the old data dir and the old etcd.yaml "
        f"(/etc/kubernetes/etcd.yaml.before-{entry.id}) stay on {node.name} for a rollback.",
    )
    args = {"node": node.name, "address": node.address, "backup_id": entry.id}
    names = ["verify the backup's sha256", f"copy the snapshot to {node.name}", "stop the API",
             f"restore the snapshot into {new_dir}", "point etcd at the restored data", "wait for etcd",
             "start the API", "verify the cluster"]
    actions = ["verify", "copy", "stop_api", "restore", "repoint", "wait_etcd", "start_api", "check"]
    steps = tuple(Step(name, f"restore_etcd.{act}", args) for name, act in zip(names, actions, strict=True))
    locks = ("etcd", *(f"node:{name}" for name in sorted(facts.nodes.nodes)))  # nothing else runs meanwhile
    return Plan(lines, steps=steps, locks=locks, next_command="status")


# -- steps ---------------------------------------------------------------------------------------------


def _fetch(ctx: StepContext, backup_id: str, into: Path) -> Any:
    return ctx.resources["backups"].fetch(backup_id, into)  # sha256 checked against the catalog


@action("restore_etcd.verify")
def verify(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    with tempfile.TemporaryDirectory(prefix="kubemaint-restore-") as local:
        entry = _fetch(ctx, backup_id, Path(local) / "snapshot.db")
    return f"{entry.id}: {size(entry.size)}, sha256 {entry.sha256[:12]}… as catalogued. Nothing was changed yet."


@action("restore_etcd.copy")
def copy(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    shell = ctx.resources["ssh"]
    work = WORK_DIR.format(backup_id=backup_id)
    remote = f"{work}/snapshot.db"
    shell.run(node, ["install", "-d", "-m", "0700", "-o", shell.config.user, work], address=address, sudo=True,
              deadline=30, job=ctx)
    with tempfile.TemporaryDirectory(prefix="kubemaint-restore-") as local:
        entry = _fetch(ctx, backup_id, Path(local) / "snapshot.db")
        shell.send(node, Path(local) / "snapshot.db", remote, address=address, job=ctx)
    on_node = shell.run(node, ["sha256sum", remote], address=address, deadline=600, job=ctx).stdout.split()[0]
    if on_node != entry.sha256:
        raise RestoreFailed(f"the copy on {node} hashes {on_node[:12]}…, not {entry.sha256[:12]}…. Nothing on the "
                            "control plane was changed; resume the job to copy it again.")
    ctx.job_data["snapshot"] = remote
    return f"{remote} on {node}, sha256 checked. Nothing was changed yet."


@action("restore_etcd.stop_api")
def stop_api(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    shell = ctx.resources["ssh"]
    ctx.job_data["backup_id"] = backup_id  # from here on, a failure says how to roll back
    script = f"if [ -e {API_MANIFEST} ]; then mv {API_MANIFEST} {API_ASIDE}; fi; test -e {API_ASIDE}"
    _guarded(ctx, node, "stopping the API", lambda: shell.run(node, ["sh", "-c", script], address=address,
                                                               sudo=True, deadline=30, job=ctx))
    _wait(ctx, lambda: not kube.api_answers(ctx.resources["kube"]), API_WAIT_SECONDS, "the API to stop answering",
          node, "stopping the API")
    return f"kube-apiserver.yaml moved to {API_ASIDE}; the API refuses connections"


@action("restore_etcd.restore")
def restore(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    shell = ctx.resources["ssh"]
    etcd = _manifest(ctx, node, address)
    new_dir = f"/var/lib/etcd-from-backup-{backup_id}"
    snapshot = ctx.job_data.get("snapshot") or f"{WORK_DIR.format(backup_id=backup_id)}/snapshot.db"
    command = ["env", "ETCDCTL_API=3", "etcdctl", "snapshot", "restore", snapshot, f"--data-dir={new_dir}",
               f"--name={etcd.name}", f"--initial-cluster={etcd.initial_cluster}",
               f"--initial-advertise-peer-urls={etcd.initial_advertise_peer_urls}"]
    # A run that stopped half-way left a partial directory of our own name: start it again.
    script = f"rm -rf -- {shlex.quote(new_dir)} && " + shlex.join(command)
    _guarded(ctx, node, "restoring the snapshot", lambda: shell.run(node, ["sh", "-c", script], address=address,
                                                                    sudo=True, deadline=600, job=ctx))
    ctx.job_data["old_data_dir"] = etcd.data_dir
    return f"restored into {new_dir} (member {etcd.name}); etcd still runs on {etcd.data_dir}"


@action("restore_etcd.repoint")
def repoint(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    shell = ctx.resources["ssh"]
    new_dir = f"/var/lib/etcd-from-backup-{backup_id}"
    text = shell.run(node, ["cat", ETCD_MANIFEST], address=address, sudo=True, deadline=30, job=ctx).stdout
    if parse_etcd_manifest(text).data_dir == new_dir:
        return f"etcd.yaml already points at {new_dir}"
    kept = f"/etc/kubernetes/etcd.yaml.before-{backup_id}"
    work = WORK_DIR.format(backup_id=backup_id)
    with tempfile.TemporaryDirectory(prefix="kubemaint-restore-") as local:
        edited = Path(local) / "etcd.yaml"
        edited.write_text(with_data_dir(text, new_dir))
        shell.send(node, edited, f"{work}/etcd.yaml", address=address, job=ctx)
    # Kept first, then the new one moved in whole: the kubelet never reads a half-written manifest.
    script = (f"[ -e {kept} ] || cp -p {ETCD_MANIFEST} {kept}; cp {work}/etcd.yaml /etc/kubernetes/etcd.yaml.new && "
              f"chmod 0600 /etc/kubernetes/etcd.yaml.new && mv /etc/kubernetes/etcd.yaml.new {ETCD_MANIFEST}")
    _guarded(ctx, node, "pointing etcd at the restored data", lambda: shell.run(
        node, ["sh", "-c", script], address=address, sudo=True, deadline=30, job=ctx))
    return f"etcd-data now {new_dir}; the old manifest is {kept}"


@action("restore_etcd.wait_etcd")
def wait_etcd(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    shell = ctx.resources["ssh"]
    etcd = _manifest(ctx, node, address)

    def healthy() -> bool:
        result = shell.run(node, [*etcd.etcdctl(), "endpoint", "health"], address=address, sudo=True, deadline=20,
                           job=ctx, check=False)
        return result.exit_code == 0 and "is healthy" in result.stdout + result.stderr

    _wait(ctx, healthy, ETCD_WAIT_SECONDS, "etcd to be healthy on the restored data", node, "waiting for etcd")
    return f"etcd healthy on {etcd.data_dir}"


@action("restore_etcd.start_api")
def start_api(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    shell = ctx.resources["ssh"]
    script = f"if [ -e {API_ASIDE} ]; then mv {API_ASIDE} {API_MANIFEST}; fi; test -e {API_MANIFEST}"
    _guarded(ctx, node, "starting the API", lambda: shell.run(node, ["sh", "-c", script], address=address,
                                                               sudo=True, deadline=30, job=ctx))
    _wait(ctx, lambda: kube.api_answers(ctx.resources["kube"]), API_WAIT_SECONDS, "the API to answer", node,
          "starting the API")
    return "kube-apiserver.yaml is back; the API answers"


@action("restore_etcd.check")
def check(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    nodes = kube.read_nodes(ctx.resources["kube"]).nodes
    if node not in nodes:
        raise RestoreFailed(f"the API answers but does not list {node}: check `kubectl get nodes`. {_state(ctx, node)}")
    revision = kube.current_revision(ctx.resources["kube"])
    counted = _objects_as_in_the_snapshot(ctx, node, address, backup_id)
    ctx.resources["ssh"].run(node, ["rm", "-rf", "--", WORK_DIR.format(backup_id=backup_id)], address=address,
                             sudo=True, deadline=60, job=ctx)
    old = ctx.job_data.get("old_data_dir", "/var/lib/etcd")
    return (f"etcd restored from {backup_id}: {counted}; the API answers with {len(nodes)} nodes at revision "
            f"{revision}. Kept for a rollback on {node}: {old} and /etc/kubernetes/etcd.yaml.before-{backup_id}.")


def _objects_as_in_the_snapshot(ctx: StepContext, node: str, address: str | None, backup_id: str) -> str:
    """The restored etcd holds, at the snapshot's revision, as many API objects as the backup counted (what the
    API wrote since it came back is at later revisions)."""
    entry = ctx.resources["backups"].catalog.require(backup_id)
    if entry.objects is None or entry.revision is None:
        return "objects not compared (the backup predates counting them)"
    etcd = _manifest(ctx, node, address)
    restored = _guarded(ctx, node, "counting the restored objects",
                        lambda: registry_objects(ctx.resources["ssh"], node, address, etcd, entry.revision, ctx))
    if restored != entry.objects:
        raise RestoreFailed(f"the restored etcd holds {restored} objects at revision {entry.revision}, the backup "
                            f"counted {entry.objects}: compare with `kubectl get all -A`. {_state(ctx, node)}")
    return f"{restored} objects at revision {entry.revision}, as in the snapshot"


# -- helpers --------------------------------------------------------------------------------------------


def _manifest(ctx: StepContext, node: str, address: str | None) -> Any:
    text = ctx.resources["ssh"].run(node, ["cat", ETCD_MANIFEST], address=address, sudo=True, deadline=30,
                                    job=ctx).stdout
    try:
        return parse_etcd_manifest(text)
    except ManifestError as error:
        raise RestoreFailed(f"{node}: {error}. {_state(ctx, node)}") from None


def _guarded(ctx: StepContext, node: str, doing: str, run: Any) -> Any:
    try:
        return run()
    except Exception as error:
        raise RestoreFailed(f"{doing} failed: {error} {_state(ctx, node)}") from None


def _wait(ctx: StepContext, condition: Any, seconds: float, what: str, node: str, doing: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        ctx.stop_if_cancelled()
        if time.monotonic() > deadline:
            raise RestoreFailed(f"{doing}: waited {seconds:g}s for {what}. {_state(ctx, node)}")
        time.sleep(1)


def _state(ctx: StepContext, node: str) -> str:
    """Where the control plane stands, and the way back, for any failure after the API was stopped."""
    backup_id = ctx.job_data.get("backup_id", "")
    api = (f"The API is stopped (kube-apiserver.yaml is at {API_ASIDE} on {node}; "
           f"`sudo mv {API_ASIDE} {API_MANIFEST}` starts it).")
    roll_back = (f"To roll back to the data before the restore: `sudo cp /etc/kubernetes/etcd.yaml.before-{backup_id}"
                 f" {ETCD_MANIFEST}` if that file exists, then start the API." if backup_id else
                 "The old data dir and manifest are untouched unless the step said otherwise.")
    return f"{api} {roll_back} `resume {ctx.job_id}` retries from this step."


RESTORE_ETCD = Operation(
    name="restore-etcd", words="restore etcd from BACKUP_ID", options=RestoreOptions,
    policy=Policy(allowed_roles=("operator",), approval_required=True, approvals_needed=2),
    needs=("kube", "ssh", "backups", "cluster"),
    description="restore etcd from a snapshot taken by backup etcd (the API is down meanwhile)",
    gather=gather_restore, plan=plan_restore,
)
