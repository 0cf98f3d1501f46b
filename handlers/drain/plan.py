"""The drain's plan: what moves, what is lost and what blocks, and the steps that do it.

The pod filter chain follows kubectl's `pkg/drain` (filters.go): one small function per rule, in
kubectl's order, each returning nothing (the rule does not apply), an "evict" note (the pod is
evicted and the note says what that costs), or a final "skip" / "block" verdict that ends the
chain. The differential test (tests/test_drain_differential.py) holds this module to kubectl's
own answer for the same pods.

Unlike kubectl, kubemaint's drain always leaves DaemonSet pods in place (kubectl's
`--ignore-daemonsets`): their controller ignores cordons and would put them straight back.

Pure: everything here works on a `ClusterSnapshot`; the steps it plans run in handlers/drain/run.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from bot.cluster.snapshot import ClusterSnapshot, NodeInfo, PodInfo, Taint
from bot.contract import DURATION, SECONDS, SELECTOR, Ignored, Plan, flag, ignored
from bot.contract.words import narrow
from bot.domain.durations import format_duration
from bot.domain.selectors import LabelSelector
from bot.engine import Step
from handlers.common import group_pods, unknown_node, workload_of
from handlers.cordon import cordon_step

Action = Literal["evict", "skip", "block"]
FINISHED_PHASES = ("Succeeded", "Failed")
DEFAULT_TIMEOUT_SECONDS = 600


@dataclass(frozen=True, kw_only=True)
class DrainOptions:
    """How to drain a node: the drain's flags, which upgrades and reboots take too."""

    force: bool = flag(help="also delete pods no controller re-creates (and orphaned DaemonSet pods)")
    delete_emptydir_data: bool = flag(help="evict pods with emptyDir volumes; their data is lost")
    pod_selector: str | None = flag(SELECTOR, help="drain only the pods matching the selector")
    # None: each pod's own terminationGracePeriodSeconds (kubectl's -1)
    grace_period: int | None = flag(SECONDS, help="seconds each pod gets to stop")
    timeout: int = flag(DURATION, default=DEFAULT_TIMEOUT_SECONDS, help="give up after this long")
    # kubectl refuses to drain a node with DaemonSet pods unless told this, so people type it out
    # of habit; here it is what always happens, so it is accepted with a note rather than refused.
    ignore_daemonsets: ClassVar[Ignored] = ignored(
        "`--ignore-daemonsets` is always on: drain never evicts DaemonSet pods")


@dataclass(frozen=True, kw_only=True)
class DrainCommand(DrainOptions):
    """`drain NODE ...` as typed."""

    node: str
    dry_run: bool = flag(help="show the plan only; change nothing")


@dataclass(frozen=True)
class Verdict:
    """What one filter says about one pod. "evict" lets the chain go on; "skip" and "block" end it."""

    action: Action
    rule: str  # the filter's name, stable for tests and for the worker's re-check
    reason: str
    override_flag: str | None = None  # the flag that turns a block into an eviction


@dataclass(frozen=True)
class PodDecision:
    pod: PodInfo
    action: Action
    reason: str
    override_flag: str | None = None
    rule: str | None = None  # the deciding filter for skip/block; None for a plain eviction
    notes: tuple[Verdict, ...] = ()  # what an eviction costs (data lost, deleted for good, ...)

    def noted(self, rule: str) -> bool:
        return any(note.rule == rule for note in self.notes)


PodFilter = Callable[[PodInfo, ClusterSnapshot, DrainOptions], Verdict | None]


def _finished(pod: PodInfo) -> bool:
    return pod.phase in FINISHED_PHASES


def terminating_filter(pod: PodInfo, snapshot: ClusterSnapshot, options: DrainOptions) -> Verdict | None:
    # kubectl skips these only with --skip-wait-for-delete-timeout; by default it evicts (and
    # waits for) them like any other pod, and so do we.
    if pod.terminating:
        return Verdict("evict", "terminating", "already terminating")
    return None


def daemonset_filter(pod: PodInfo, snapshot: ClusterSnapshot, options: DrainOptions) -> Verdict | None:
    if pod.owner is None or pod.owner.kind != "DaemonSet" or _finished(pod):
        return None
    if not snapshot.daemonset_exists(pod.namespace, pod.owner.name):
        # An orphan: nothing would re-create it, so deleting it is deleting it for good.
        reason = f"its DaemonSet {pod.namespace}/{pod.owner.name} no longer exists"
        if options.force:
            return Verdict("evict", "daemonset-missing", f"{reason}: it will be deleted for good")
        return Verdict("block", "daemonset-missing", reason, "--force")
    return Verdict("skip", "daemonset", "DaemonSet pod: drain leaves DaemonSet pods where they are")


def mirror_filter(pod: PodInfo, snapshot: ClusterSnapshot, options: DrainOptions) -> Verdict | None:
    if pod.mirror:
        return Verdict("skip", "mirror", "static pod: the kubelet runs it from a file; the API cannot evict it")
    return None


def emptydir_filter(pod: PodInfo, snapshot: ClusterSnapshot, options: DrainOptions) -> Verdict | None:
    if not pod.emptydir_volumes or _finished(pod):
        return None
    volumes = ", ".join(pod.emptydir_volumes)
    if options.delete_emptydir_data:
        return Verdict("evict", "emptydir", f"its emptyDir data ({volumes}) will be lost")
    return Verdict("block", "emptydir", f"has emptyDir data ({volumes}) that would be lost", "--delete-emptydir-data")


def no_controller_filter(pod: PodInfo, snapshot: ClusterSnapshot, options: DrainOptions) -> Verdict | None:
    if _finished(pod) or pod.owner is not None:
        return None
    if options.force:
        return Verdict("evict", "no-controller", "it has no controller: it will be deleted and not recreated")
    return Verdict("block", "no-controller", "has no controller and would be deleted for good", "--force")


# kubectl's order (pkg/drain makeFilters): skipDeleted, daemonSet, mirrorPod, localStorage, unreplicated.
FILTERS: tuple[PodFilter, ...] = (
    terminating_filter, daemonset_filter, mirror_filter, emptydir_filter, no_controller_filter,
)


def decide(pod: PodInfo, snapshot: ClusterSnapshot, options: DrainOptions) -> PodDecision:
    """Run `pod` through the chain; the first skip or block wins, as in kubectl."""
    notes: list[Verdict] = []
    for pod_filter in FILTERS:
        verdict = pod_filter(pod, snapshot, options)
        if verdict is None:
            continue
        if verdict.action != "evict":
            return PodDecision(pod, verdict.action, verdict.reason, verdict.override_flag, verdict.rule, tuple(notes))
        notes.append(verdict)
    if notes:
        reason = "; ".join(note.reason for note in notes)
    elif _finished(pod):
        reason = f"{pod.phase}: nothing runs in it any more"
    else:
        reason = f"recreated by its {workload_of(pod)}"
    return PodDecision(pod, "evict", reason, notes=tuple(notes))


def drain_decisions(snapshot: ClusterSnapshot, node: str, options: DrainOptions) -> list[PodDecision]:
    """One decision per pod on `node` that the drain considers (all of them, or those matching
    `--pod-selector`, as kubectl lists them), sorted by namespace/name. The worker calls this
    again on a fresh snapshot before it evicts, to see whether the plan still holds."""
    selector = LabelSelector.parse(options.pod_selector) if options.pod_selector else None
    pods = [p for p in snapshot.pods_on(node) if selector is None or selector.matches(p.labels)]
    return [decide(pod, snapshot, options) for pod in sorted(pods, key=lambda p: (p.namespace, p.name))]


def evicted_pods(decisions: Iterable[PodDecision]) -> dict[str, str]:
    """"namespace/name" -> uid of the pods to evict: JSON as job steps are stored, and the uid
    tells a pod from its same-named replacement (a StatefulSet's, say)."""
    return {d.pod.ref: d.pod.uid for d in decisions if d.action == "evict"}


MAX_NAMED = 10  # pods named per reason; a plan must stay readable (and under Slack's message size)


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown if len(items) <= MAX_NAMED else f"{shown} and {len(items) - MAX_NAMED} more"


def blocked_reasons(decisions: Iterable[PodDecision]) -> list[tuple[str, str | None, int]]:
    """(what blocks, the flag that overrides it, how many pods) per blocking rule, in chain order."""
    groups: dict[tuple[str | None, str | None], list[PodInfo]] = {}
    for decision in decisions:
        if decision.action == "block":
            groups.setdefault((decision.rule, decision.override_flag), []).append(decision.pod)
    reasons = []
    for (rule, override), pods in groups.items():
        verb = "has" if len(pods) == 1 else "have"
        if rule == "emptydir":
            refs = _named([f"{p.ref} ({', '.join(p.emptydir_volumes)})" for p in pods])
            what = f"{refs} {verb} emptyDir data that would be lost"
        elif rule == "daemonset-missing":
            owners = ", ".join(sorted({f"{p.namespace}/{p.owner.name}" for p in pods if p.owner}))
            belong = "belongs" if len(pods) == 1 else "belong"
            what = f"{_named([p.ref for p in pods])} {belong} to a DaemonSet that no longer exists ({owners})"
        else:
            what = f"{_named([p.ref for p in pods])} {verb} no controller and would be deleted for good"
        reasons.append((what, override, len(pods)))
    return reasons


def refusal_text(decisions: Iterable[PodDecision]) -> str | None:
    """Why the drain cannot go ahead and which flag overrides each reason, or None if nothing blocks.

    "refused: default/hr-app has no controller and would be deleted for good; add --force to
    delete it anyway"
    """
    reasons = blocked_reasons(decisions)
    if not reasons:
        return None
    return "refused: " + "; ".join(
        f"{what}; add {override} to delete {'it' if count == 1 else 'them'} anyway" for what, override, count in reasons
    )


# What an approver must have seen before it happens: a pod deleted for good, or data lost.
LOSS_RULES = ("no-controller", "emptydir", "daemonset-missing")


def recheck(approved: dict[str, str] | None, decisions: list) -> tuple[dict[str, str], str | None]:
    """Compare a fresh plan with the approved one (pure).

    Returns the pods to evict now and, when the plan no longer holds, why: a pod that would be
    lost (deleted for good, or emptyDir data gone) that the approver never saw, or a pod that
    now blocks the drain. New pods that a controller would re-create are simply evicted too,
    as kubectl would. `approved` None: no pod list was approved (the drain is planned as it
    runs), so only what blocks stops it; the flags given already accept the losses.
    """
    problems = []
    for decision in decisions:
        ref = decision.pod.ref
        if decision.action == "block":
            problems.append(f"{ref} now blocks the drain ({decision.reason})")
        elif (decision.action == "evict" and approved is not None and ref not in approved
              and any(decision.noted(r) for r in LOSS_RULES)):
            problems.append(f"{ref} appeared and would be lost ({decision.reason})")
    pods = {d.pod.ref: d.pod.uid for d in decisions if d.action == "evict"}
    if problems:
        return pods, "the cluster changed since the plan was approved: " + "; ".join(problems) + \
            ". Nothing was evicted; ask again to see the new plan."
    return pods, None


# --- where would the evicted pods go? ------------------------------------------------------------


def tolerates(tolerations: Iterable[dict], taint: Taint) -> bool:
    """The scheduler's toleration match: an empty key with Exists tolerates every taint."""
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        key = toleration.get("key") or ""
        if toleration.get("operator") == "Exists":
            if not key or key == taint.key:
                return True
        elif key == taint.key and (toleration.get("value") or "") == taint.value:
            return True
    return False


def accepts(node: NodeInfo, pod: PodInfo) -> bool:
    """Would the scheduler's basic filters place `pod` on `node`? (Ready, schedulable, taints, nodeSelector.)"""
    if not node.ready or not node.schedulable:
        return False
    hard = [t for t in node.taints if t.effect in ("NoSchedule", "NoExecute")]
    if not all(tolerates(pod.tolerations, taint) for taint in hard):
        return False
    return all(node.labels.get(key) == value for key, value in pod.node_selector.items())


def _needs_a_new_home(decision: PodDecision) -> bool:
    # Only pods a controller re-creates need room elsewhere; an orphaned DaemonSet pod or a pod
    # with no controller is simply gone, a finished pod stays finished, and a terminating pod's
    # replacement has already been asked for.
    pod = decision.pod
    return (decision.action == "evict" and pod.owner is not None and pod.owner.kind not in ("DaemonSet", "Node")
            and not pod.terminating and not _finished(pod))


def placement(
    snapshot: ClusterSnapshot, node: str, decisions: list[PodDecision]
) -> tuple[dict[str, int], list[tuple[PodInfo, str]]]:
    """One feasible placement of the pods that controllers re-create (pods per remaining node),
    and the pods that would stay Pending with why.

    Counts pods against each node's pod capacity only; CPU and memory requests are not modelled.
    """
    used = Counter(p.node for p in snapshot.pods if p.node and not _finished(p))
    free = {name: info.pod_capacity - used[name] for name, info in snapshot.nodes.items() if name != node}
    placed: Counter[str] = Counter()
    pending: list[tuple[PodInfo, str]] = []
    for decision in decisions:
        if not _needs_a_new_home(decision):
            continue
        pod = decision.pod
        fitting = [name for name, info in snapshot.nodes.items() if name != node and accepts(info, pod)]
        roomy = [name for name in fitting if free[name] > 0]
        if not roomy:
            why = "no room on the nodes that accept it" if fitting else \
                "no other Ready, schedulable node accepts it (taints, nodeSelector)"
            pending.append((pod, why))
            continue
        target = max(roomy, key=lambda name: (free[name], name))
        free[target] -= 1
        placed[target] += 1
    return dict(placed), pending


# --- the plan --------------------------------------------------------------------------------------


def _summary(node: NodeInfo, decisions: list[PodDecision], options: DrainOptions) -> str:
    counts = Counter(d.action for d in decisions)
    evicted = counts["evict"]
    scope = f" (pods matching {options.pod_selector} only)" if options.pod_selector else ""
    return (f"Drain {node.name}{scope}: evict {evicted} pod{'s' if evicted != 1 else ''}, "
            f"skip {counts['skip']} (DaemonSet/mirror), {counts['block']} blocked")


def _losses(decisions: list[PodDecision]) -> list[str]:
    lines = []
    for d in decisions:
        if d.action != "evict":
            continue
        if d.noted("no-controller"):
            lines.append(f"Lost for good: {d.pod.ref} will be deleted and not recreated: it has no controller.")
        if d.noted("daemonset-missing"):
            lines.append(f"Lost for good: {d.pod.ref} will be deleted and not recreated: "
                         f"its DaemonSet {d.pod.owner.name if d.pod.owner else '?'} no longer exists.")
        if d.noted("emptydir"):
            lines.append(f"emptyDir data lost: {d.pod.ref} (volume{'s' if len(d.pod.emptydir_volumes) > 1 else ''} "
                         f"{', '.join(d.pod.emptydir_volumes)}).")
    if len(lines) > MAX_NAMED:
        lines = [*lines[:MAX_NAMED], f"... and {len(lines) - MAX_NAMED} more losses like these."]
    return lines


def _budgets(snapshot: ClusterSnapshot, decisions: list[PodDecision], timeout: str) -> list[str]:
    # The API lets Pending, finished and terminating pods go without asking their budget.
    guarded = [d.pod for d in decisions
               if d.action == "evict" and d.pod.phase == "Running" and not d.pod.terminating]
    lines = []
    covered: dict[str, list[PodInfo]] = {}
    for pod in guarded:
        budgets = snapshot.pdbs_covering(pod)
        if len(budgets) > 1:
            names = ", ".join(b.name for b in budgets)
            lines.append(f"Eviction will fail: {pod.ref} is covered by {len(budgets)} PodDisruptionBudgets "
                         f"({names}); the API refuses to evict such a pod.")
        elif budgets:
            covered.setdefault(budgets[0].ref, []).append(pod)
    by_ref = {b.ref: b for b in snapshot.pdbs}
    for ref, pods in sorted(covered.items()):
        pdb = by_ref[ref]
        names = ", ".join(p.name for p in pods)
        health = f"{pdb.current_healthy} healthy, {pdb.desired_healthy} desired"
        if pdb.disruptions_allowed == 0:
            lines.append(f"PodDisruptionBudget {ref} allows no disruption now ({health}): eviction of {names} "
                         f"waits until it does, at most {timeout}.")
        elif pdb.disruptions_allowed < len(pods):
            lines.append(f"PodDisruptionBudget {ref} allows {pdb.disruptions_allowed} disruption(s) now ({health}) "
                         f"for {len(pods)} pods here ({names}): the rest wait for replacements to become ready.")
    return lines


def _capacity(snapshot: ClusterSnapshot, node: str, decisions: list[PodDecision]) -> list[str]:
    placed, pending = placement(snapshot, node, decisions)
    lines = []
    if placed:
        moving = sum(placed.values())
        targets = ", ".join(sorted(placed))
        lines.append(f"Room: the {moving} pod{'s' if moving != 1 else ''} their controllers re-create fit on "
                     f"{targets} (by pod count; CPU and memory requests are not checked).")
    if pending:
        why = Counter((pod.namespace, workload_of(pod), reason) for pod, reason in pending)
        for (namespace, workload, reason), count in sorted(why.items()):
            lines.append(f"Would go Pending: {namespace}: {count} x {workload} ({reason}).")
    return lines


def _skipped(decisions: list[PodDecision]) -> list[str]:
    daemons = [d.pod for d in decisions if d.action == "skip" and d.rule == "daemonset"]
    static = [d.pod for d in decisions if d.action == "skip" and d.rule == "mirror"]
    lines = []
    if daemons:
        lines.append("Stay: DaemonSet pods (drain never evicts them; their controller ignores cordons):")
        lines.extend(f"  {line}" for line in group_pods(daemons))
    if static:
        names = ", ".join(p.ref for p in sorted(static, key=lambda p: (p.namespace, p.name)))
        lines.append(f"Stay: static pods (the kubelet runs them from files; the API cannot evict them): {names}")
    return lines


def drain_steps(node: str, options: DrainOptions, pods: dict[str, str] | None = None) -> tuple[Step, ...]:
    """Cordon, evict, wait: the drain of one node, for any job that drains (an upgrade, a reboot).

    `pods` ("namespace/name" -> uid) are the evictions the approver saw; the worker re-plans before it
    evicts and stops if a pod that would be lost, or one that blocks, appeared since. None: the plan is
    made when the step runs (a node drained hours after the approval, in a rolling upgrade).
    """
    options = narrow(options, DrainOptions)
    return (
        cordon_step(node),
        Step(f"evict pods from {node}", "drain.evict", {"node": node, "options": options, "pods": pods}),
        Step(f"wait for pods to leave {node}", "drain.wait_gone", {"node": node, "options": options}),
    )


def plan_drain(snapshot: ClusterSnapshot, options: DrainCommand) -> Plan:
    node = snapshot.nodes.get(options.node)
    if node is None:
        return unknown_node(snapshot, options.node)
    decisions = drain_decisions(snapshot, node.name, options)
    evicted = [d for d in decisions if d.action == "evict"]
    skipped = [d for d in decisions if d.action == "skip"]
    blocked = [d for d in decisions if d.action == "block"]
    timeout = format_duration(options.timeout)

    lines = [_summary(node, decisions, options)]
    if options.dry_run:
        lines.append("Dry run: this is the plan only; nothing will be cordoned or evicted.")
    if not node.schedulable:
        lines.append(f"{node.name} is already cordoned.")
    if not node.ready:
        lines.append(f"Note: {node.name} is NotReady: its pods may not confirm their exit; a drain can hang.")
    if evicted:
        lines.append("Evict:")
        lines.extend(f"  {line}" for line in group_pods([d.pod for d in evicted]))
        terminating = sum(1 for d in evicted if d.noted("terminating"))
        if terminating:
            lines.append(f"  ({terminating} already terminating: the drain waits for them to finish)")
    lines.extend(_skipped(skipped))
    for what, override, _ in blocked_reasons(blocked):
        lines.append(f"Blocked: {what} (add {override} to override).")
    lines.extend(_losses(decisions))
    lines.extend(_budgets(snapshot, decisions, timeout))
    lines.extend(_capacity(snapshot, node.name, decisions))
    if not evicted and not blocked:
        lines.append(f"Nothing to evict: {node.name} will only be cordoned.")

    refusal = refusal_text(decisions)
    steps = () if refusal is not None else drain_steps(node.name, options, evicted_pods(decisions))
    return Plan(tuple(lines), steps=steps, locks=(f"node:{node.name}",), refusal=refusal,
                next_command=f"uncordon {node.name}")
