"""cordon / uncordon: mark a node (un)schedulable; running pods stay where they are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import OPERATORS, Operation, Plan
from bot.engine import Step, StepContext, action
from handlers.common import group_pods, unknown_node


@dataclass(frozen=True)
class NodeOptions:
    node: str


def read_node_and_its_pods(resources: Mapping[str, Any], options: NodeOptions) -> ClusterSnapshot:
    # Only the node's pods: a cluster of thousands of pods is not read to cordon one node.
    return kube.read_snapshot(resources["kube"], budgets=False, node=options.node)


def cordon_step(node: str) -> Step:
    return Step(f"cordon {node}", "cordon", {"node": node})


def uncordon_step(node: str) -> Step:
    return Step(f"uncordon {node}", "uncordon", {"node": node})


def plan_cordon(snapshot: ClusterSnapshot, options: NodeOptions) -> Plan:
    node = snapshot.nodes.get(options.node)
    if node is None:
        return unknown_node(snapshot, options.node)
    running = [p for p in snapshot.pods_on(node.name) if p.phase not in ("Succeeded", "Failed")]
    lines = [f"Cordon {node.name}: no new pods will be scheduled there."]
    if not node.schedulable:
        lines = [f"{node.name} is already cordoned: nothing will change."]
    if running:
        lines.append(f"{len(running)} pods keep running on {node.name} (cordon moves nothing):")
        lines.extend(f"  {line}" for line in group_pods(running))
    else:
        lines.append(f"No pods run on {node.name}.")
    if not node.ready:
        lines.append(f"Note: {node.name} is NotReady.")
    return Plan(tuple(lines), steps=(cordon_step(node.name),), locks=(f"node:{node.name}",),
                next_command=f"uncordon {node.name}")


def plan_uncordon(snapshot: ClusterSnapshot, options: NodeOptions) -> Plan:
    node = snapshot.nodes.get(options.node)
    if node is None:
        return unknown_node(snapshot, options.node)
    if node.schedulable:
        lines = (f"{node.name} is already schedulable: nothing will change.",)
    else:
        lines = (f"Uncordon {node.name}: new pods may be scheduled there again; "
                 "existing pods do not move back by themselves.",)
    return Plan(lines, steps=(uncordon_step(node.name),), locks=(f"node:{node.name}",), next_command="status")


def describe_node(snapshot: ClusterSnapshot, options: NodeOptions) -> list[str]:
    node = snapshot.nodes.get(options.node)
    if node is None:
        return [f"{options.node} is not in the cluster any more."]
    return [f"{node.name} is {'schedulable' if node.schedulable else 'cordoned'}."]


def _set_schedulable(ctx: StepContext, node: str, schedulable: bool) -> str:
    client = ctx.resources["kube"]
    current = kube.read_node(client, node)  # re-check the world: the step may be a re-run
    is_schedulable = not current.get("spec", {}).get("unschedulable", False)
    word = "uncordoned" if schedulable else "cordoned"
    if is_schedulable == schedulable:
        return f"{node} was already {word}"
    kube.set_unschedulable(client, node, not schedulable)
    return f"{node} {word}"


@action("cordon")
def cordon(ctx: StepContext, node: str) -> str:
    return _set_schedulable(ctx, node, schedulable=False)


@action("uncordon")
def uncordon(ctx: StepContext, node: str) -> str:
    return _set_schedulable(ctx, node, schedulable=True)


CORDON = Operation(
    name="cordon", words="cordon NODE", options=NodeOptions, policy=OPERATORS, needs=("kube",),
    description="mark a node unschedulable; running pods stay where they are",
    gather=read_node_and_its_pods, plan=plan_cordon, describe=describe_node,
    undo=lambda options: f"uncordon {options.node}",
)
UNCORDON = Operation(
    name="uncordon", words="uncordon NODE", options=NodeOptions, policy=OPERATORS, needs=("kube",),
    description="make a node schedulable again; pods do not move back by themselves",
    gather=read_node_and_its_pods, plan=plan_uncordon, describe=describe_node,
    undo=lambda options: f"cordon {options.node}",
)
