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


def still_holds(snapshot: ClusterSnapshot, options: DrainCommand, approved: dict[str, str] | None) -> str | None:
    """What no longer holds in the approved plan (the pods it would evict, `approved`), or None."""
    return recheck(approved, drain_decisions(snapshot, options.node, options))[1]


DRAIN = Operation(
    name="drain", words="drain NODE", options=DrainCommand, needs=("kube",),
    description="cordon a node and evict its pods (DaemonSet pods stay); shows what moves, what is lost and what "
            "blocks before anything happens",
    # Evicting pods can delete data (emptyDir, pods without a controller) and take capacity away:
    # a second person reads the plan first.
    policy=OPERATORS.model_copy(update={"approval_required": True}),
    gather=read_cluster, plan=plan_drain, recheck=still_holds,
)

__all__ = ["DRAIN", "DrainCommand", "DrainOptions", "drain_decisions", "drain_steps", "evicted_pods", "plan_drain"]
