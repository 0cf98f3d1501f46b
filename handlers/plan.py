"""What every operation's planner returns, and the registry that finds planners by verb."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bot.jobs.model import Step
from handlers.snapshot import ClusterSnapshot, PodInfo


@dataclass(frozen=True)
class Plan:
    """What an operation will do, computed from a snapshot before anything happens.

    `lines` is what the approver reads; `refusal`, when set, stops the request before
    approval (with the reason and what would make it possible).
    """

    verb: str
    target: str
    lines: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    locks: tuple[str, ...] = ()
    refusal: str | None = None
    next_command: str | None = None


Planner = Callable[[ClusterSnapshot, object], Plan]
PLANNERS: dict[str, Planner] = {}
NEEDS_BUDGETS: set[str] = set()  # verbs whose planner reads PDBs and DaemonSets
NODE_PODS_ONLY: set[str] = set()  # verbs whose planner looks only at the pods of the command's node


def planner(verb: str, *, budgets: bool = False, node_pods_only: bool = False) -> Callable[[Planner], Planner]:
    """Register `fn` as the planner of `verb`: one decorator, so operations are easy to find.
    `budgets`: the planner needs PodDisruptionBudgets and DaemonSets in its snapshot.
    `node_pods_only`: its snapshot may hold only the pods of the command's node (a cluster of
    thousands of pods is then not read to cordon one node)."""

    def register(fn: Planner) -> Planner:
        PLANNERS[verb] = fn
        if budgets:
            NEEDS_BUDGETS.add(verb)
        if node_pods_only:
            NODE_PODS_ONLY.add(verb)
        return fn

    return register


def workload_of(pod: PodInfo) -> str:
    """The workload a person would name: a Deployment rather than its ReplicaSet."""
    if pod.owner is None:
        return "no controller"
    if pod.owner.kind == "ReplicaSet":
        pod_hash = pod.labels.get("pod-template-hash")
        if pod_hash and pod.owner.name.endswith(f"-{pod_hash}"):
            return f"Deployment {pod.owner.name.removesuffix(f'-{pod_hash}')}"
    return f"{pod.owner.kind} {pod.owner.name}"


def group_pods(pods: list[PodInfo]) -> list[str]:
    """`namespace: N x Workload` lines, largest groups first."""
    counts = Counter((p.namespace, workload_of(p)) for p in pods)
    lines = []
    for (namespace, workload), count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if workload == "no controller":
            names = sorted(p.name for p in pods if p.namespace == namespace and p.owner is None)
            lines.append(f"{namespace}: {', '.join(names)} (no controller)")
        else:
            lines.append(f"{namespace}: {count} x {workload}")
    return lines


def unknown_node(snapshot: ClusterSnapshot, verb: str, node: str) -> Plan:
    known = ", ".join(sorted(snapshot.nodes)) or "none"
    return Plan(verb, node, (), refusal=f"node {node} not found; the cluster's nodes are: {known}")
