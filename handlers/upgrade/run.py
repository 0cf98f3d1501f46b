"""The upgrade's worker steps.

`upgrade.nodes` upgrades one control plane, or a wave of workers at once (a thread per node), through
the same phases: packages (repo switch, kubeadm), kubeadm (`upgrade apply` on the first control plane,
`upgrade node` elsewhere), cordon, drain, kubelet (kubelet + kubectl, daemon-reload, restart), Ready at
the hop's version, uncordon, and a health gate. Each phase re-checks the node before it acts and is
recorded in the step's checkpoint when done, so a resumed or re-run step continues where it stopped.

The phases run through handlers/node_cycle.py, shared with OS upgrades and reboots: on a failure no
further phase starts on any node of the step; the failed node stays cordoned and the message says what
was done on it, why it stopped (the command's stderr tail) and the way out.
"""

from __future__ import annotations

import time
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import node_from_api
from bot.domain.etcd_manifest import ManifestError, parse_etcd_manifest
from bot.domain.skew import NodeVersions, check_skew
from bot.domain.upgrade_path import reported
from bot.domain.versions import parse_version
from bot.engine import JobCancelled, JobState, StepContext, action, list_jobs
from handlers.backup_etcd import ETCD_MANIFEST
from handlers.drain.plan import DrainOptions
from handlers.node_cycle import (
    COMMAND_SECONDS,
    POLL_SECONDS,
    StepFailed,
    Target,
    command,
    cordon,
    drain,
    health_gate,
    on_each,
    run_nodes,
    run_on,
    uncordon,
)
from handlers.upgrade.facts import KUBERNETES_LIST

PACKAGE_SECONDS = 600
KUBEADM_SECONDS = 900
STATIC_POD_SECONDS = 300  # the kubelet restarts the control plane's static pods after kubeadm rewrites them
PHASES = ("packages", "kubeadm", "cordon", "drain", "kubelet", "ready", "uncordon")


class UpgradeFailed(StepFailed):
    pass


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
    # A paused or scheduled rollout is maintenance under way too: it would resume in the middle of this one.
    under_way = {JobState.RUNNING, JobState.QUEUED, JobState.PAUSED, JobState.SCHEDULED}
    others = [job for job in list_jobs(ctx.resources["redis"], states=under_way)
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
    problems = on_each(ctx, targets, lambda c, t: run_on(c, t, ["apt-get", "update", "-qq"], PACKAGE_SECONDS))
    if problems:
        raise UpgradeFailed("the package repo is not reachable from " + "; ".join(problems) +
                            f". Nothing was changed; fix it, then `resume {ctx.job_id}`")
    return f"{len(snapshot.nodes)} nodes Ready, no other job, {health}, package repos reachable on {len(targets)} nodes"


def _etcd_health(ctx: StepContext, first: Target) -> str:
    manifest = run_on(ctx, first, ["cat", ETCD_MANIFEST], COMMAND_SECONDS)
    try:
        etcd = parse_etcd_manifest(manifest)
    except ManifestError as error:
        raise UpgradeFailed(f"{first.node}: {error}; nothing was changed") from None
    from bot.nodes import CommandError

    try:
        run_on(ctx, first, [*etcd.etcdctl(), "endpoint", "health"], COMMAND_SECONDS)
    except CommandError as error:
        raise UpgradeFailed(f"etcd on {first.node} is not healthy ({error.stderr_tail or error}); nothing was "
                            f"changed. Fix etcd, then `resume {ctx.job_id}`") from None
    return f"etcd healthy on {first.node}"


# -- one node, or one wave ------------------------------------------------------------------------------------


@action("upgrade.nodes")
def upgrade_nodes(ctx: StepContext, nodes: list[dict], hop: str, package: str, options: DrainOptions) -> str:
    targets = [Target(**n) for n in nodes]

    def phases(node_ctx: Any, target: Target) -> dict:
        return {
            "packages": lambda: _kubeadm_package(node_ctx, target, hop, package),
            "kubeadm": lambda: _kubeadm_upgrade(node_ctx, target, hop),
            "cordon": lambda: cordon(node_ctx, target),
            "drain": lambda: drain(node_ctx, target, options),
            "kubelet": lambda: _kubelet(node_ctx, target, hop, package),
            "ready": lambda: _wait_ready(node_ctx, target, hop, options.timeout),
            "uncordon": lambda: uncordon(node_ctx, target, "before the upgrade"),
        }

    results = run_nodes(ctx, targets, PHASES, phases, goal=f"on its way to {hop}", reached=f"at {hop}",
                        failure=UpgradeFailed)
    health_gate(ctx, targets, options.timeout, UpgradeFailed)
    return "; ".join(results[t.node] for t in targets)


# -- the phases -----------------------------------------------------------------------------------------------


def _installed(ctx: Any, target: Target, packages: list[str]) -> dict[str, str]:
    out = command(ctx, target, ["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *packages], COMMAND_SECONDS)
    return {words[0]: words[1] for line in out.splitlines() if len(words := line.split()) == 2}


def _install(ctx: Any, target: Target, packages: list[str], package: str) -> None:
    command(ctx, target, ["apt-mark", "unhold", *packages], COMMAND_SECONDS)
    command(ctx, target, ["apt-get", "install", "-y", "-qq", *(f"{name}={package}" for name in packages)],
             PACKAGE_SECONDS)
    command(ctx, target, ["apt-mark", "hold", *packages], COMMAND_SECONDS)


def _kubeadm_package(ctx: Any, target: Target, hop: str, package: str) -> str | None:
    if _installed(ctx, target, ["kubeadm"]).get("kubeadm") == package:
        return None
    minor = parse_version(hop).minor
    sources = command(ctx, target, ["cat", KUBERNETES_LIST], COMMAND_SECONDS)
    note = None
    if "pkgs.k8s.io/core:/stable:/" in sources and f"/stable:/v1.{minor}/" not in sources:
        ctx.progress(f"package repo → v1.{minor}")
        command(ctx, target, ["sed", "-i", "-E", rf"s#core:/stable:/v1\.[0-9]+/deb#core:/stable:/v1.{minor}/deb#",
                               KUBERNETES_LIST], COMMAND_SECONDS)
        note = f"repo switched to v1.{minor}"
    ctx.progress(f"kubeadm {package}")
    command(ctx, target, ["apt-get", "update", "-qq"], PACKAGE_SECONDS)
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
        command(ctx, target, ["kubeadm", "upgrade", "node"], KUBEADM_SECONDS)
        return None
    if _apiserver_version(ctx, target.node) == hop:
        return None  # an earlier run (or another control plane's apply) got it there
    if target.role == "first":
        ctx.progress(f"kubeadm upgrade plan {hop}")
        command(ctx, target, ["kubeadm", "upgrade", "plan", hop], KUBEADM_SECONDS)
        ctx.progress(f"kubeadm upgrade apply {hop}")
        command(ctx, target, ["kubeadm", "upgrade", "apply", hop, "-y"], KUBEADM_SECONDS)
    else:
        ctx.progress("kubeadm upgrade node")
        command(ctx, target, ["kubeadm", "upgrade", "node"], KUBEADM_SECONDS)
    deadline = time.monotonic() + STATIC_POD_SECONDS
    while _apiserver_version(ctx, target.node) != hop:
        if time.monotonic() > deadline:
            raise UpgradeFailed(f"kubeadm finished on {target.node} but its kube-apiserver pod does not show {hop} "
                                f"after {STATIC_POD_SECONDS}s (is the kubelet running the new manifests?)")
        time.sleep(POLL_SECONDS)
    return "control plane at " + hop


def _kubelet(ctx: Any, target: Target, hop: str, package: str) -> None:
    installed = _installed(ctx, target, ["kubelet", "kubectl"])
    if installed.get("kubelet") != package or installed.get("kubectl") != package:
        ctx.progress(f"kubelet and kubectl {package}")
        _install(ctx, target, ["kubelet", "kubectl"], package)
    client: kube.Kube = ctx.resources["kube"]
    if node_from_api(kube.read_node(client, target.node)).kubelet == hop:
        return  # already running it (a re-run after the restart)
    ctx.progress("restarting the kubelet")
    command(ctx, target, ["systemctl", "daemon-reload"], COMMAND_SECONDS)
    command(ctx, target, ["systemctl", "restart", "kubelet"], COMMAND_SECONDS)


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
