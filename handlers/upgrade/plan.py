"""The upgrade's plan: the path (one minor per hop), what every node needs on each hop, the skew at
every hop, what blocks a drain, the order and waves, a duration estimate, and the job's steps. Pure:
everything here works on `UpgradeFacts`.

Steps: a preflight, the etcd snapshot (`backup etcd`'s own steps), then per hop one step per control
plane (the first one runs `kubeadm upgrade apply`) and one per wave of workers, then a final check. A
node step does the whole node (packages, kubeadm, drain, kubelet, Ready, uncordon, health gate),
checkpointing each phase, so the thread shows a line per node (or wave) and hop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from bot.cluster.snapshot import ClusterSnapshot, NodeInfo
from bot.contract import COUNT, NODES, NoOptions, Plan, flag
from bot.contract.words import narrow
from bot.domain.durations import format_duration
from bot.domain.skew import NodeVersions, check_skew
from bot.domain.upgrade_path import (
    DEFAULT_ESTIMATE,
    PathError,
    Version,
    default_target,
    hops,
    package_kube_version,
    reported,
    too_old_kubelets,
    waves,
)
from bot.engine import Step
from handlers.backup_etcd import plan_backup
from handlers.common import group_pods, workload_of
from handlers.drain.plan import DrainOptions, PodDecision, blocked_reasons, drain_decisions, placement
from handlers.upgrade.facts import UpgradeFacts

Role = Literal["first", "control-plane", "worker"]
CONTROL_PLANE_ROLES = ("control-plane", "master")
Drains = dict[str, list[PodDecision]]  # node -> its drain's verdicts, planned once per plan
MAX_NODE_LINES = 12  # nodes described one by one; a fleet is summed up beyond that


@dataclass(frozen=True, kw_only=True)
class RolloutOptions(DrainOptions):
    """How the rollout goes: the drain's flags (applied to every node's drain) plus the waves."""

    max_unavailable: int = flag(COUNT, default=1, help="workers upgraded at once (a wave)")
    nodes: tuple[str, ...] | None = flag(
        NODES, help="upgrade only these nodes (control planes behind the target are upgraded first anyway)")


@dataclass(frozen=True, kw_only=True)
class PlanLatest(RolloutOptions):
    """`upgrade plan`: the path to the newest patch of the next minor."""


@dataclass(frozen=True, kw_only=True)
class PlanTo(RolloutOptions):
    """`upgrade plan VERSION`."""

    version: str


@dataclass(frozen=True, kw_only=True)
class UpgradeCommand(RolloutOptions):
    """`upgrade to VERSION ...` as typed."""

    version: str
    skip_snapshot: bool = flag(help="do not take an etcd snapshot first (the approver sees this)")
    dry_run: bool = flag(help="show the plan only; change nothing")


@dataclass(frozen=True)
class NodeTarget:
    node: str
    address: str | None
    role: Role

    def as_arg(self) -> dict:
        return {"node": self.node, "address": self.address, "role": self.role}


def is_control_plane(node: NodeInfo) -> bool:
    return any(role in node.roles for role in CONTROL_PLANE_ROLES)


def upgrade_order(facts: UpgradeFacts, chosen: tuple[str, ...] | None) -> tuple[list[NodeTarget], list[str]]:
    """Control planes (the first one first), then workers by name: (control planes, workers). With
    `chosen`, only the named workers; control planes are always part of it."""
    first = facts.first_control_plane()
    nodes = sorted(facts.snapshot.nodes.values(), key=lambda n: n.name)
    planes = [n for n in nodes if is_control_plane(n)]
    planes.sort(key=lambda n: (first is None or n.name != first.name, n.name))
    ordered = [NodeTarget(n.name, n.address, "first" if i == 0 else "control-plane") for i, n in enumerate(planes)]
    workers = [n.name for n in nodes if not is_control_plane(n) and (chosen is None or n.name in chosen)]
    return ordered, workers


def _package_for(facts: UpgradeFacts, version: Version) -> str:
    return facts.offer.packages[version] if facts.offer else ""


def _installed(facts: UpgradeFacts, node: str, package: str) -> str:
    return (facts.machines.get(node).packages.get(package, "none") if node in facts.machines else "?")


def resolve_target(facts: UpgradeFacts, options: RolloutOptions) -> tuple[Version | None, str | None]:
    """The version to go to, or why there is none."""
    current = facts.cluster_version()
    if current is None:
        return None, ("no kube-apiserver static pod found (kube-system/kube-apiserver-NODE): kubemaint upgrades "
                      "clusters that kubeadm runs")
    if facts.offer is None:
        return None, facts.offer_problem or "the package repo could not be read"
    version = getattr(options, "version", None)
    if version is None:
        target = default_target(current, facts.offer)
        if target is None:
            return None, f"the cluster is at {current}, the newest version in the package repo: nothing to upgrade"
        return target, None
    from bot.domain.versions import parse_version

    return parse_version(version), None


def plan_upgrade(facts: UpgradeFacts, options: RolloutOptions) -> Plan:
    target, why = resolve_target(facts, options)
    if target is None:
        return Plan((), refusal=why)
    current = facts.cluster_version()
    assert current is not None and facts.offer is not None
    snapshot = facts.snapshot
    try:
        path = hops(current, target, facts.offer)
    except PathError as error:
        return Plan((), refusal=str(error))
    planes, workers = upgrade_order(facts, options.nodes)
    involved = [p.node for p in planes] + workers
    behind = [n for n in involved if (reported(snapshot.nodes[n].kubelet) or target) < target]
    if not path and not behind:
        return Plan((), refusal=f"the cluster and its kubelets are already at {target}: nothing to upgrade")
    if not path:
        path = [target]  # the control plane is there; the kubelets named below are not
    # Each node's drain, planned once: the refusal, the node lines and the notes all read it.
    drains = {name: drain_decisions(snapshot, name, options) for name in involved}
    refusal = _refusal(facts, options, path, involved, drains)
    lines = _lines(facts, options, current, target, path, planes, workers, drains)
    if refusal:
        return Plan(tuple(lines), refusal=refusal)
    steps = _steps(facts, options, path, planes, workers)
    locks = ("cluster", "etcd", *(f"node:{name}" for name in sorted(snapshot.nodes)))
    return Plan(tuple(lines), steps=tuple(steps), locks=locks, next_command="status")


def _refusal(facts: UpgradeFacts, options: RolloutOptions, path: list[Version], involved: list[str],
             drains: Drains) -> str | None:
    snapshot = facts.snapshot
    unknown = sorted(set(options.nodes or ()) - set(snapshot.nodes))
    if unknown:
        return f"no node named {', '.join(unknown)}; the cluster's nodes are: {', '.join(sorted(snapshot.nodes))}"
    not_ready = sorted(n.name for n in snapshot.nodes.values() if not n.ready)
    if not_ready:
        return (f"{', '.join(not_ready)} {'is' if len(not_ready) == 1 else 'are'} NotReady: an upgrade starts on a "
                "healthy cluster only; bring it back (or remove it from the cluster) first")
    unread = {n: why for n, why in facts.unreadable.items() if n in involved}
    if unread:
        named = "; ".join(f"{why}" if why.startswith(n) else f"{n}: {why}" for n, why in sorted(unread.items()))
        return f"the packages of {', '.join(sorted(unread))} could not be read over SSH ({named})"
    left_behind = {n: v for n in snapshot.nodes if n not in involved
                   for v in [reported(snapshot.nodes[n].kubelet)] if v is not None}
    for hop in path:
        too_old = too_old_kubelets(hop, left_behind)
        if too_old:
            return (f"`--nodes` leaves {', '.join(too_old)} at kubelet {left_behind[too_old[0]]}, and kubeadm refuses "
                    f"to upgrade the control plane to {hop} past kubelets that old; name them too")
    blocked = []
    for name in involved:
        reasons = blocked_reasons(drains[name])
        blocked += [f"{name}: {what}; add {flag} to delete {'it' if count == 1 else 'them'} anyway"
                    for what, flag, count in reasons]
    if blocked:
        return "refused: the drains would be blocked: " + "; ".join(blocked)
    return None


def _lines(facts: UpgradeFacts, options: RolloutOptions, current: Version, target: Version, path: list[Version],
           planes: list[NodeTarget], workers: list[str], drains: Drains) -> list[str]:
    snapshot = facts.snapshot
    grouped = waves(workers, options.max_unavailable)
    hop_word = f"{len(path)} hop{'s' if len(path) != 1 else ''}"
    lines = [f"Upgrade the cluster from {current} to {target}: {hop_word} "
             f"({' → '.join(str(h) for h in path)}), {len(planes)} control plane{'s' if len(planes) != 1 else ''} "
             f"and {len(workers)} worker{'s' if len(workers) != 1 else ''}."]
    if len(path) > 1:
        lines.append("  kubeadm upgrades one minor at a time: each hop but the last goes to that minor's newest patch.")
    if getattr(options, "dry_run", False):
        lines.append("Dry run: this is the plan only; nothing will be changed.")
    lines += _now(facts, planes, workers)
    lines += _skew(facts, path, planes, workers)
    if getattr(options, "skip_snapshot", False):
        lines.append("⚠️ No etcd snapshot first (--skip-snapshot): a failed control-plane upgrade can only be "
                     "rolled back from an older backup (`backups`).")
    elif facts.probed_on:
        lines.append(f"First: an etcd snapshot on {facts.probed_on} (as `backup etcd`), kept in the backup store.")
    for hop in path:
        lines += _hop_lines(facts, hop, planes, grouped, drains)
    lines += _drain_notes(snapshot, options, drains)
    snapshot_first = not getattr(options, "skip_snapshot", False)
    estimate = DEFAULT_ESTIMATE.total(len(path), len(planes), len(grouped), snapshot_first)
    order = " → ".join([*(p.node for p in planes), *(f"[{', '.join(w)}]" if len(w) > 1 else w[0] for w in grouped)])
    lines.append(f"Order on each hop: {_clip_order(order)} (waves of at most {options.max_unavailable}).")
    lines.append(f"Estimate: about {format_duration(int(estimate))} (kubeadm's usual pace; drains can add to it).")
    lines.append("On any failure it stops: no further node is touched and the failed node stays cordoned; "
                 "the message says what was done and how to `resume` or `cancel`.")
    return lines


def _clip_order(order: str, limit: int = 300) -> str:
    return order if len(order) <= limit else order[:limit].rsplit(" → ", 1)[0] + " → …"


def _now(facts: UpgradeFacts, planes: list[NodeTarget], workers: list[str]) -> list[str]:
    snapshot = facts.snapshot
    components = snapshot.component_versions()
    lines = ["Now:"]
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        found = Counter(version for _, version in components.get(component, []))
        if found:
            lines.append(f"  {component}: " + ", ".join(f"{v}" + (f" on {n}" if n > 1 else "")
                                                       for v, n in sorted(found.items())))
    kubelets = Counter(n.kubelet for n in snapshot.nodes.values())
    lines.append("  kubelets: " + ", ".join(f"{count} x {version}" for version, count in sorted(kubelets.items())))
    repos = Counter(m.repo or "none" for m in facts.machines.values())
    if repos:
        lines.append("  package repos: " + ", ".join(f"{repo} ({count})" for repo, count in sorted(repos.items())))
    return lines


def _skew(facts: UpgradeFacts, path: list[Version], planes: list[NodeTarget], workers: list[str]) -> list[str]:
    """The skew mid-hop (control plane at the hop, kubelets and kubectl not yet) for every hop."""
    snapshot = facts.snapshot
    notes = []
    kubelets = {n.name: n.kubelet for n in snapshot.nodes.values()}
    kubectl = {n: package_kube_version(m.packages.get("kubectl", "")) for n, m in facts.machines.items()}
    for hop in path:
        apiservers = {p.node: str(hop) for p in planes}
        warnings = check_skew(apiservers, [NodeVersions(n, v, str(hop)) for n, v in kubelets.items()],
                              apiservers, apiservers, supported_latest_minor=hop.minor)
        notes += [f"  {hop}: {w.message}" for w in warnings]
        notes += [f"  {hop}: kubectl on {n} is {v}, more than one minor from kube-apiserver {hop}"
                  for n, v in sorted(kubectl.items()) if v is not None and abs(hop.minor - v.minor) > 1]
        kubelets = {n: str(hop) for n in kubelets}
        kubectl = {n: hop for n in kubectl}
    if not notes:
        return ["Skew: within the policy at every hop (kubelets, kube-proxy and kubectl one minor behind the "
                "control plane at most while a hop is under way)."]
    return ["Skew warnings:", *notes]


def _hop_lines(facts: UpgradeFacts, hop: Version, planes: list[NodeTarget], grouped: list[tuple[str, ...]],
               drains: Drains) -> list[str]:
    package = _package_for(facts, hop)
    lines = [f"Hop {hop} (packages {package}):"]
    described = 0
    for plane in planes:
        if not needs_hop(facts, plane.node, hop):
            lines.append(f"  {plane.node} (control plane): already at {hop}")
            continue
        kubeadm = ("`kubeadm upgrade plan` check, `kubeadm upgrade apply " + str(hop) + " -y`" if plane.role == "first"
                   else "`kubeadm upgrade node`")
        lines.append(f"  {plane.node} (control plane): {_node_needs(facts, plane.node, package, kubeadm, drains)}")
        described += 1
    for index, wave in enumerate(grouped, start=1):
        if described >= MAX_NODE_LINES:
            rest = sum(len(w) for w in grouped[index - 1:])
            lines.append(f"  … and {rest} more workers the same way, in {len(grouped) - index + 1} more waves.")
            break
        name = f"wave {index}/{len(grouped)}: " if len(wave) > 1 else ""
        for node in wave:
            needs = (_node_needs(facts, node, package, "`kubeadm upgrade node`", drains)
                     if needs_hop(facts, node, hop) else f"already at {hop}")
            lines.append(f"  {name}{node}: {needs}")
            described += 1
    lines.append("  After each node or wave: all nodes Ready and the evicted workloads available again.")
    return lines


def _node_needs(facts: UpgradeFacts, node: str, package: str, kubeadm: str, drains: Drains) -> str:
    kubeadm_now = _installed(facts, node, "kubeadm")
    kubelet_now = _installed(facts, node, "kubelet")
    machine = facts.machines.get(node)
    hop_minor = package_kube_version(package)
    switch = (f"repo v1.{machine.pkgs_minor} → v1.{hop_minor.minor}, "
              if machine and hop_minor and machine.pkgs_minor not in (None, hop_minor.minor) else "")
    evicted = [d.pod for d in drains[node] if d.action == "evict"]
    drain = f"drain ({', '.join(group_pods(evicted))})" if evicted else "cordon (nothing to evict)"
    return (f"{switch}kubeadm {kubeadm_now} → {package}, {kubeadm}, {drain}, kubelet+kubectl {kubelet_now} → "
            f"{package}, restart kubelet, Ready, uncordon")


def _drain_notes(snapshot: ClusterSnapshot, options: DrainOptions, drains: Drains) -> list[str]:
    timeout = format_duration(options.timeout)
    blocked = set()
    for decisions in drains.values():
        for decision in decisions:
            if decision.action == "evict" and decision.pod.phase == "Running":
                blocked |= {b.ref for b in snapshot.pdbs_covering(decision.pod) if b.disruptions_allowed == 0}
    lines = [f"PodDisruptionBudget {ref} allows no disruption now: the drains of its pods wait for it, at most "
             f"{timeout} per node." for ref in sorted(blocked)]
    for name, decisions in drains.items():
        # As the cluster is now: a node cordoned by hand takes none of the moved pods.
        _, pending = placement(snapshot, name, decisions)
        if pending:
            counts = Counter((pod.namespace, workload_of(pod)) for pod, _ in pending)
            moved = ", ".join(f"{namespace}: {count} x {workload}" for (namespace, workload), count in
                              sorted(counts.items()))
            lines.append(f"While {name} drains, {moved} wait Pending until it is back: {pending[0][1]}; "
                         "those workloads run short meanwhile.")
    lines.append(f"Each node's drain and its return to Ready are bounded by --timeout {timeout}.")
    return lines


def needs_hop(facts: UpgradeFacts, node: str, hop: Version) -> bool:
    """Whether any part of `node` is still below `hop`: its kubelet (as the API reports it), its packages,
    or (a control plane) its kube-apiserver. A node already there is left alone on that hop."""
    versions = [reported(facts.snapshot.nodes[node].kubelet)]
    machine = facts.machines.get(node)
    versions += [package_kube_version(v) for v in machine.packages.values()] if machine else [None]
    versions += [reported(v) for where, v in facts.snapshot.component_versions()["kube-apiserver"] if where == node]
    return any(version is None or version < hop for version in versions)


def _steps(facts: UpgradeFacts, options: RolloutOptions, path: list[Version], planes: list[NodeTarget],
           workers: list[str]) -> list[Step]:
    snapshot = facts.snapshot
    drain = narrow(options, DrainOptions)
    everyone = [p.as_arg() for p in planes] + [NodeTarget(w, snapshot.nodes[w].address, "worker").as_arg()
                                               for w in workers]
    current = facts.cluster_version()
    steps = [Step("preflight", "upgrade.preflight",
                  {"nodes": everyone, "cluster_version": str(current), "hops": [str(h) for h in path]})]
    if not getattr(options, "skip_snapshot", False):
        steps += list(plan_backup(snapshot, NoOptions()).steps)
    for hop in path:
        common = {"hop": str(hop), "package": _package_for(facts, hop), "options": drain}
        for plane in planes:
            if not needs_hop(facts, plane.node, hop):
                continue
            what = "kubeadm upgrade apply" if plane.role == "first" else "control plane"
            steps.append(Step(f"{hop} · {plane.node} ({what})", "upgrade.nodes",
                              {**common, "nodes": [plane.as_arg()]}))
        grouped = waves([w for w in workers if needs_hop(facts, w, hop)], options.max_unavailable)
        for index, wave in enumerate(grouped, start=1):
            label = wave[0] if len(wave) == 1 else f"wave {index}/{len(grouped)}: {', '.join(wave)}"
            steps.append(Step(f"{hop} · {label}", "upgrade.nodes",
                              {**common, "nodes": [NodeTarget(w, snapshot.nodes[w].address, "worker").as_arg()
                                                   for w in wave]}))
    steps.append(Step("final check", "upgrade.final",
                      {"target": str(path[-1]), "nodes": [n["node"] for n in everyone]}))
    return steps
