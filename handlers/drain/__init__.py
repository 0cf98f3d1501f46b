"""drain: cordon a node, then evict its pods. The plan says what moves, what is lost and what
blocks; the worker re-checks it before evicting.

plan.py is the pure planner (kubectl's filter chain) and the step builder `drain_steps`, which
any operation that drains a node calls; run.py holds the worker's actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import OPERATORS, Operation
from handlers.drain.plan import (
    DrainCommand,
    DrainOptions,
    drain_decisions,
    drain_steps,
    evicted_pods,
    plan_drain,
    recheck,
)


def read_cluster(resources: Mapping[str, Any], options: DrainCommand) -> ClusterSnapshot:
    # Every node and pod (where the evicted pods can go) with PDBs and DaemonSets (what blocks).
    return kube.read_snapshot(resources["kube"], budgets=True)


def describe(snapshot: ClusterSnapshot, options: DrainCommand) -> list[str]:
    """The node as it is now, for a thread whose drain job was lost."""
    node = snapshot.nodes.get(options.node)
    if node is None:
        return [f"{options.node} is not in the cluster any more."]
    left = [d for d in drain_decisions(snapshot, node.name, options) if d.action == "evict"]
    state = "cordoned" if not node.schedulable else "schedulable (not cordoned)"
    if not left:
        return [f"{node.name} is {state}, and no pod the drain would evict is left on it."]
    named = ", ".join(d.pod.ref for d in left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return [f"{node.name} is {state}; {len(left)} pod{'s' if len(left) != 1 else ''} the drain would evict "
            f"{'are' if len(left) != 1 else 'is'} still on it: {named}."]


def still_holds(snapshot: ClusterSnapshot, options: DrainCommand, approved: dict[str, str] | None) -> str | None:
    """What no longer holds in the approved plan (the pods it would evict, `approved`), or None."""
    return recheck(approved, drain_decisions(snapshot, options.node, options))[1]


DRAIN = Operation(
    name="drain", words="drain NODE", options=DrainCommand, needs=("kube", "redis"),
    description="cordon a node and evict its pods (DaemonSet pods stay); shows what moves, what is lost and what "
            "blocks before anything happens",
    # Evicting pods can delete data (emptyDir, pods without a controller) and take capacity away:
    # a second person reads the plan first.
    policy=OPERATORS.model_copy(update={"approval_required": True}),
    gather=read_cluster, plan=plan_drain, recheck=still_holds, describe=describe,
    undo=lambda options: f"uncordon {options.node}",
)

__all__ = ["DRAIN", "DrainCommand", "DrainOptions", "drain_decisions", "drain_steps", "evicted_pods", "plan_drain"]
