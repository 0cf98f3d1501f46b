"""The upgrade's worker steps.

`upgrade.nodes` upgrades one control plane, or a wave of workers at once (a thread per node), through
the same phases: packages (repo switch, kubeadm), kubeadm (`upgrade apply` on the first control plane,
`upgrade node` elsewhere), cordon, drain, kubelet (kubelet + kubectl, daemon-reload, restart), Ready at
the hop's version, uncordon, and a health gate. Each phase re-checks the node before it acts and is
recorded in the step's checkpoint when done, so a resumed or re-run step continues where it stopped.

On a failure no further phase starts on any node of the step; the failed node stays cordoned and the
message says what was done on it, why it stopped (the command's stderr tail) and the way out.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import node_from_api
from bot.domain.etcd_manifest import ManifestError, parse_etcd_manifest
from bot.domain.skew import NodeVersions, check_skew
from bot.domain.text import clip
from bot.domain.upgrade_path import reported
from bot.domain.versions import parse_version
from bot.engine import JobCancelled, JobState, StepContext, action, list_jobs
from handlers.backup_etcd import ETCD_MANIFEST
from handlers.drain.plan import DrainOptions
from handlers.drain.run import DrainFailed, evict, forget_drain, wait_gone
from handlers.upgrade.facts import KUBERNETES_LIST

PACKAGE_SECONDS = 600
KUBEADM_SECONDS = 900
COMMAND_SECONDS = 60
STATIC_POD_SECONDS = 300  # the kubelet restarts the control plane's static pods after kubeadm rewrites them
POLL_SECONDS = 0.5
CORDONED = "upgrade: cordoned"  # job data: the nodes this job cordoned (only those are uncordoned)
MAX_REASON_CHARS = 400  # per failed node: the failure must stay readable in the job's message
PHASES = ("packages", "kubeadm", "cordon", "drain", "kubelet", "ready", "uncordon")


class UpgradeFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    node: str
    address: str | None
    role: str  # "first" (kubeadm upgrade apply), "control-plane" or "worker"


class Board:
    """Where each node of a step stands, shown as one progress line."""

    def __init__(self, ctx: StepContext, nodes: list[str]) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._states = dict.fromkeys(nodes, "waiting")

    def say(self, node: str, detail: str) -> None:
        with self._lock:
            self._states[node] = detail
            line = (detail if len(self._states) == 1
                    else " · ".join(f"{name}: {state}" for name, state in self._states.items()))
        self._ctx.progress(line)


class NodeContext:
    """The step's context as one node's thread sees it: its progress goes to the board."""

    def __init__(self, ctx: StepContext, node: str, board: Board) -> None:
        self._ctx, self._node, self._board = ctx, node, board

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def progress(self, detail: str) -> None:
        self._board.say(self._node, detail)


# -- preflight ---------------------------------------------------------------------------------------------


@action("upgrade.preflight")
def preflight(ctx: StepContext, nodes: list[dict], cluster_version: str, hops: list[str]) -> str:
    """All nodes Ready, no other job running, the control plane where the plan saw it, etcd healthy,
    every machine's package repo reachable."""
    targets = [Target(**n) for n in nodes]
    client = ctx.resources["kube"]
    snapshot = kube.read_snapshot(client, budgets=False)
    not_ready = sorted(n.name for n in snapshot.nodes.values() if not n.ready)
    if not_ready:
        raise UpgradeFailed(f"{', '.join(not_ready)} NotReady: nothing was changed; bring it back, then `resume "
                            f"{ctx.job_id}`")
    others = [job for job in list_jobs(ctx.resources["redis"], states={JobState.RUNNING, JobState.QUEUED})
              if job.id != ctx.job_id]
    if others:
        named = ", ".join(f"{job.spec.command_text} ({job.id})" for job in others[:3])
        raise UpgradeFailed(f"another maintenance job is under way: {named}; nothing was changed. When it has "
                            f"ended, `resume {ctx.job_id}`")
    apiservers = [reported(v) for _, v in snapshot.component_versions()["kube-apiserver"]]
    seen = min((v for v in apiservers if v is not None), default=None)
    if seen is not None and str(seen) != cluster_version and str(seen) not in hops:
        raise UpgradeFailed(f"the control plane is at {seen}, not {cluster_version} as planned: someone else "
                            "changed it; nothing was changed. `cancel` this job and ask again for a new plan")
    first = next(t for t in targets if t.role == "first")
    health = _etcd_health(ctx, first)
    ctx.progress("apt-get update on every machine")
    problems = _on_each(ctx, targets, lambda c, t: _run(c, t, ["apt-get", "update", "-qq"], PACKAGE_SECONDS))
    if problems:
        raise UpgradeFailed("the package repo is not reachable from " + "; ".join(problems) +
                            f". Nothing was changed; fix it, then `resume {ctx.job_id}`")
    return f"{len(snapshot.nodes)} nodes Ready, no other job, {health}, package repos reachable on {len(targets)} nodes"


def _etcd_health(ctx: StepContext, first: Target) -> str:
    manifest = _run(ctx, first, ["cat", ETCD_MANIFEST], COMMAND_SECONDS)
    try:
        etcd = parse_etcd_manifest(manifest)
    except ManifestError as error:
        raise UpgradeFailed(f"{first.node}: {error}; nothing was changed") from None
    from bot.nodes import CommandError

    try:
        _run(ctx, first, [*etcd.etcdctl(), "endpoint", "health"], COMMAND_SECONDS)
    except CommandError as error:
        raise UpgradeFailed(f"etcd on {first.node} is not healthy ({error.stderr_tail or error}); nothing was "
                            f"changed. Fix etcd, then `resume {ctx.job_id}`") from None
    return f"etcd healthy on {first.node}"


def _on_each(ctx: StepContext, targets: list[Target], work: Any) -> list[str]:
    """Run `work(ctx, target)` on every node at once; the nodes' problems, one line each."""
    from bot.nodes import NodeError

    def one(target: Target) -> str | None:
        try:
            work(ctx, target)
        except NodeError as error:
            return f"{target.node} ({getattr(error, 'stderr_tail', '') or error})"
        return None

    with ThreadPoolExecutor(max_workers=min(32, len(targets)), thread_name_prefix="upgrade") as pool:
        return [problem for problem in pool.map(one, targets) if problem]


# -- one node, or one wave ------------------------------------------------------------------------------------


@action("upgrade.nodes")
def upgrade_nodes(ctx: StepContext, nodes: list[dict], hop: str, package: str, options: DrainOptions) -> str:
    targets = [Target(**n) for n in nodes]
    board = Board(ctx, [t.node for t in targets])
    stop = threading.Event()  # set by the first failure: the other nodes start no further phase
    results: dict[str, str] = {}
    failures: dict[str, BaseException] = {}

    def one(target: Target) -> None:
        node_ctx = NodeContext(ctx, target.node, board)
        try:
            results[target.node] = _upgrade_node(node_ctx, target, hop, package, options, stop)
        except BaseException as error:
            failures[target.node] = error
            stop.set()

    if len(targets) == 1:
        one(targets[0])
    else:
        threads = [threading.Thread(target=one, args=(t,), name=f"upgrade-{t.node}") for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        cancelled = [node for node, error in failures.items() if isinstance(error, JobCancelled)]
        real = {node: error for node, error in failures.items() if not isinstance(error, JobCancelled)}
        if not real and cancelled:
            raise JobCancelled()
        raise UpgradeFailed(_failure_text(ctx, targets, hop, results, real))
    _health_gate(ctx, targets, options)
    return "; ".join(results[t.node] for t in targets)


def _failure_text(ctx: Any, targets: list[Target], hop: str, results: dict[str, str],
                  failures: dict[str, BaseException]) -> str:
    # What to do comes first: a long reason (a drain's pods) is what gets clipped in a chat message.
    cordoned = [t.node for t in targets if t.node in (ctx.job_data.get(CORDONED) or [])]
    parts = []
    if cordoned:
        parts.append(f"{', '.join(cordoned)} stay{'s' if len(cordoned) == 1 else ''} cordoned ("
                     + ", ".join(f"`uncordon {n}`" for n in cordoned) + " puts it back in service); no further "
                     "node was touched")
    else:
        parts.append("no further node was touched")
    for node, error in failures.items():
        done = [phase for phase in PHASES if phase in _done(ctx, node)]
        parts.append(f"{node} failed on its way to {hop} (done on it: {', '.join(done) or 'nothing'}): "
                     f"{clip(str(error), MAX_REASON_CHARS)}")
    finished = [t.node for t in targets if t.node in results]
    if finished:
        parts.append(f"{', '.join(finished)} finished this hop")
    stopped = [t.node for t in targets if t.node not in results and t.node not in failures]
    if stopped:
        parts.append(f"{', '.join(stopped)} stopped at a safe point")
    return ". ".join(parts)


def _done(ctx: Any, node: str) -> list[str]:
    return list(ctx.checkpoint_data.get(node) or [])


def _mark(ctx: Any, node: str, phase: str) -> None:
    ctx.checkpoint_data[node] = [*_done(ctx, node), phase]


def _upgrade_node(ctx: Any, target: Target, hop: str, package: str, options: DrainOptions,
                  stop: threading.Event) -> str:
    node = target.node
    started = time.monotonic()
    work = {
        "packages": lambda: _kubeadm_package(ctx, target, hop, package),
        "kubeadm": lambda: _kubeadm_upgrade(ctx, target, hop),
        "cordon": lambda: _cordon(ctx, target),
        "drain": lambda: _drain(ctx, target, options),
        "kubelet": lambda: _kubelet(ctx, target, hop, package),
        "ready": lambda: _wait_ready(ctx, target, hop, options.timeout),
        "uncordon": lambda: _uncordon(ctx, target),
    }
    said = []
    for phase in PHASES:
        if phase in _done(ctx, node):
            continue
        if stop.is_set() or ctx.cancelled():
            raise JobCancelled()
        ctx.progress(phase)
        note = work[phase]()
        if note:
            said.append(note)
        _mark(ctx, node, phase)
    return f"{node} at {hop} in {time.monotonic() - started:.0f}s" + (f" ({'; '.join(said)})" if said else "")


# -- the phases -----------------------------------------------------------------------------------------------


def _run(ctx: Any, target: Target, argv: list[str], deadline: float) -> str:
    return ctx.resources["ssh"].run(target.node, argv, address=target.address, sudo=True, deadline=deadline,
                                    job=ctx).stdout


def _command(ctx: Any, target: Target, argv: list[str], deadline: float) -> str:
    """Run a command that must succeed; its failure becomes the step's reason, with its stderr tail."""
    from bot.nodes import CommandError, NodeError

    try:
        return _run(ctx, target, argv, deadline)
    except CommandError as error:
        tail = error.stderr_tail.strip().splitlines()[-3:] if error.stderr_tail else []
        code = error.result.exit_code if error.result else None
        raise UpgradeFailed(f"`{' '.join(argv)}` failed on {target.node} (exit {code if code is not None else '?'}"
                            f"{': ' + ' / '.join(tail) if tail else ''})") from None
    except NodeError as error:
        raise UpgradeFailed(str(error)) from None


def _installed(ctx: Any, target: Target, packages: list[str]) -> dict[str, str]:
    out = _command(ctx, target, ["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *packages], COMMAND_SECONDS)
    return {words[0]: words[1] for line in out.splitlines() if len(words := line.split()) == 2}


def _install(ctx: Any, target: Target, packages: list[str], package: str) -> None:
    _command(ctx, target, ["apt-mark", "unhold", *packages], COMMAND_SECONDS)
    _command(ctx, target, ["apt-get", "install", "-y", "-qq", *(f"{name}={package}" for name in packages)],
             PACKAGE_SECONDS)
    _command(ctx, target, ["apt-mark", "hold", *packages], COMMAND_SECONDS)


def _kubeadm_package(ctx: Any, target: Target, hop: str, package: str) -> str | None:
    if _installed(ctx, target, ["kubeadm"]).get("kubeadm") == package:
        return None
    minor = parse_version(hop).minor
    sources = _command(ctx, target, ["cat", KUBERNETES_LIST], COMMAND_SECONDS)
    note = None
    if "pkgs.k8s.io/core:/stable:/" in sources and f"/stable:/v1.{minor}/" not in sources:
        ctx.progress(f"package repo → v1.{minor}")
        _command(ctx, target, ["sed", "-i", "-E", rf"s#core:/stable:/v1\.[0-9]+/deb#core:/stable:/v1.{minor}/deb#",
                               KUBERNETES_LIST], COMMAND_SECONDS)
        note = f"repo switched to v1.{minor}"
    ctx.progress(f"kubeadm {package}")
    _command(ctx, target, ["apt-get", "update", "-qq"], PACKAGE_SECONDS)
    _install(ctx, target, ["kubeadm"], package)
    return note


def _apiserver_version(ctx: Any, node: str) -> str | None:
    client: kube.Kube = ctx.resources["kube"]
    try:
        pod = kube.raw(client.core.read_namespaced_pod(f"kube-apiserver-{node}", "kube-system",
                                                       _preload_content=False))
    except Exception:
        return None
    images = [c.get("image", "") for c in pod.get("spec", {}).get("containers", [])]
    return images[0].rsplit(":", 1)[-1] if images else None


def _kubeadm_upgrade(ctx: Any, target: Target, hop: str) -> str | None:
    if target.role == "worker":
        ctx.progress("kubeadm upgrade node")
        _command(ctx, target, ["kubeadm", "upgrade", "node"], KUBEADM_SECONDS)
        return None
    if _apiserver_version(ctx, target.node) == hop:
        return None  # an earlier run (or another control plane's apply) got it there
    if target.role == "first":
        ctx.progress(f"kubeadm upgrade plan {hop}")
        _command(ctx, target, ["kubeadm", "upgrade", "plan", hop], KUBEADM_SECONDS)
        ctx.progress(f"kubeadm upgrade apply {hop}")
        _command(ctx, target, ["kubeadm", "upgrade", "apply", hop, "-y"], KUBEADM_SECONDS)
    else:
        ctx.progress("kubeadm upgrade node")
        _command(ctx, target, ["kubeadm", "upgrade", "node"], KUBEADM_SECONDS)
    deadline = time.monotonic() + STATIC_POD_SECONDS
    while _apiserver_version(ctx, target.node) != hop:
        if time.monotonic() > deadline:
            raise UpgradeFailed(f"kubeadm finished on {target.node} but its kube-apiserver pod does not show {hop} "
                                f"after {STATIC_POD_SECONDS}s (is the kubelet running the new manifests?)")
        time.sleep(POLL_SECONDS)
    return "control plane at " + hop


def _cordon(ctx: Any, target: Target) -> None:
    client: kube.Kube = ctx.resources["kube"]
    node = node_from_api(kube.read_node(client, target.node))
    if node.schedulable:
        with _JOB_DATA_LOCK:
            ctx.job_data[CORDONED] = sorted({*(ctx.job_data.get(CORDONED) or []), target.node})
        kube.set_unschedulable(client, target.node, True)
    workloads = _workloads_on(client, target.node)
    ctx.checkpoint_data[f"{target.node}: workloads"] = workloads


_JOB_DATA_LOCK = threading.Lock()  # read-modify-write of the shared "cordoned" list by a wave's threads


def _workloads_on(client: kube.Kube, node: str) -> list[list[str]]:
    """The ReplicaSets and StatefulSets whose pods the drain will move: what the health gate waits for."""
    data = kube.raw(client.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}",
                                                            _preload_content=False))
    found = set()
    for pod in data.get("items") or []:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in ("ReplicaSet", "StatefulSet"):
                found.add((pod["metadata"]["namespace"], ref["kind"], ref["name"]))
    return [list(item) for item in sorted(found)]


def _drain(ctx: Any, target: Target, options: DrainOptions) -> str | None:
    try:
        evicted = evict(ctx, target.node, options, None)
        wait_gone(ctx, target.node, options)
    except DrainFailed as error:
        # The drain's own "stays cordoned" advice is given once, for the whole step, by _failure_text.
        raise UpgradeFailed(f"its drain stopped: {str(error).split(f' {target.node} stays cordoned')[0]}") from None
    return None if evicted.startswith("nothing") else evicted


def _kubelet(ctx: Any, target: Target, hop: str, package: str) -> None:
    installed = _installed(ctx, target, ["kubelet", "kubectl"])
    if installed.get("kubelet") != package or installed.get("kubectl") != package:
        ctx.progress(f"kubelet and kubectl {package}")
        _install(ctx, target, ["kubelet", "kubectl"], package)
    client: kube.Kube = ctx.resources["kube"]
    if node_from_api(kube.read_node(client, target.node)).kubelet == hop:
        return  # already running it (a re-run after the restart)
    ctx.progress("restarting the kubelet")
    _command(ctx, target, ["systemctl", "daemon-reload"], COMMAND_SECONDS)
    _command(ctx, target, ["systemctl", "restart", "kubelet"], COMMAND_SECONDS)


def _wait_ready(ctx: Any, target: Target, hop: str, timeout: int) -> None:
    client: kube.Kube = ctx.resources["kube"]
    deadline = time.monotonic() + timeout
    ctx.progress(f"waiting for Ready at {hop}")
    while True:
        node = node_from_api(kube.read_node(client, target.node))
        if node.ready and node.kubelet == hop:
            return
        if time.monotonic() > deadline:
            state = "Ready" if node.ready else "NotReady"
            raise UpgradeFailed(f"it did not come back Ready at {hop} within {timeout}s: it reports {state}, kubelet "
                                f"{node.kubelet or '?'} (`systemctl status kubelet` on {target.node} says why)")
        if ctx.cancelled():
            raise JobCancelled()
        time.sleep(POLL_SECONDS)


def _uncordon(ctx: Any, target: Target) -> str | None:
    forget_drain(ctx.job_data, target.node)  # the next hop drains this node afresh
    if target.node not in (ctx.job_data.get(CORDONED) or []):
        return "left cordoned, as it was before the upgrade"
    kube.set_unschedulable(ctx.resources["kube"], target.node, False)
    with _JOB_DATA_LOCK:
        ctx.job_data[CORDONED] = [n for n in ctx.job_data.get(CORDONED) or [] if n != target.node]
    return None


def _health_gate(ctx: StepContext, targets: list[Target], options: DrainOptions) -> None:
    """Before the next node: every node Ready and the workloads moved off these nodes available again."""
    client: kube.Kube = ctx.resources["kube"]
    workloads = {tuple(w) for t in targets for w in ctx.checkpoint_data.get(f"{t.node}: workloads") or []}
    deadline = time.monotonic() + options.timeout
    ctx.progress(f"health gate: nodes Ready, {len(workloads)} workloads available")
    while True:
        not_ready = sorted(n.name for n in kube.read_nodes(client).nodes.values() if not n.ready)
        short = [f"{ns}/{name} ({have}/{want} available)" for ns, kind, name in sorted(workloads)
                 for have, want in [_availability(client, ns, kind, name)] if have < want]
        if not not_ready and not short:
            return
        if time.monotonic() > deadline:
            why = ([f"{', '.join(not_ready)} NotReady"] if not_ready else []) + short
            raise UpgradeFailed(f"health gate after {', '.join(t.node for t in targets)}: {'; '.join(why)} after "
                                f"{options.timeout}s; no further node was touched")
        if ctx.cancelled():
            raise JobCancelled()
        time.sleep(POLL_SECONDS)


def _availability(client: kube.Kube, namespace: str, kind: str, name: str) -> tuple[int, int]:
    from kubernetes.client.exceptions import ApiException

    try:
        if kind == "ReplicaSet":
            obj = kube.raw(client.apps.read_namespaced_replica_set(name, namespace, _preload_content=False))
            return int(obj.get("status", {}).get("availableReplicas") or 0), int(obj["spec"].get("replicas", 1))
        obj = kube.raw(client.apps.read_namespaced_stateful_set(name, namespace, _preload_content=False))
        return int(obj.get("status", {}).get("readyReplicas") or 0), int(obj["spec"].get("replicas", 1))
    except ApiException as error:
        if error.status == 404:
            return 0, 0  # gone (a Deployment rolled it away): nothing to wait for
        raise


# -- the end --------------------------------------------------------------------------------------------------


@action("upgrade.final")
def final_check(ctx: StepContext, target: str, nodes: list[str]) -> str:
    snapshot = kube.read_snapshot(ctx.resources["kube"], budgets=False)
    behind = sorted(f"{n} ({snapshot.nodes[n].kubelet})" for n in nodes
                    if n in snapshot.nodes and snapshot.nodes[n].kubelet != target)
    components = snapshot.component_versions()
    stale = sorted(f"{component} on {node} ({version})" for component, found in components.items()
                   if component != "etcd" for node, version in found if version != target)
    if behind or stale:
        raise UpgradeFailed(f"not everything is at {target}: {', '.join(behind + stale)}")
    warnings = check_skew(dict(components["kube-apiserver"]),
                          [NodeVersions(n.name, n.kubelet, n.kube_proxy) for n in snapshot.nodes.values()],
                          dict(components["kube-controller-manager"]), dict(components["kube-scheduler"]),
                          supported_latest_minor=parse_version(target).minor)
    if warnings:
        raise UpgradeFailed("skew warnings remain: " + "; ".join(w.message for w in warnings))
    cordoned = sorted(n.name for n in snapshot.nodes.values() if not n.schedulable)
    left = f"; still cordoned (as before the upgrade): {', '.join(cordoned)}" if cordoned else ""
    return (f"all {len(nodes)} nodes and the control plane at {target}, no skew warning{left}. "
            f"Backup: {ctx.job_data.get('entry') or 'none taken (--skip-snapshot)'}")
