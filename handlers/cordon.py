"""cordon / uncordon: mark a node (un)schedulable; running pods stay where they are."""

from __future__ import annotations

from bot.jobs.actions import StepContext, action
from bot.jobs.model import Step
from handlers import kube
from handlers.plan import Plan, group_pods, planner, unknown_node
from handlers.snapshot import ClusterSnapshot


@planner("cordon", node_pods_only=True)
def plan_cordon(snapshot: ClusterSnapshot, command) -> Plan:
    node = snapshot.nodes.get(command.node)
    if node is None:
        return unknown_node(snapshot, "cordon", command.node)
    running = [p for p in snapshot.pods_on(node.name) if p.phase not in ("Succeeded", "Failed")]
    lines = [f"Cordon {node.name}: no new pods will be scheduled there."]
    if not node.schedulable:
        lines = [f"{node.name} is already cordoned: nothing will change."]
    if running:
        lines.append(f"{len(running)} pods keep running on {node.name} (cordon moves nothing):")
        lines.extend(group_pods(running))
    else:
        lines.append(f"No pods run on {node.name}.")
    if not node.ready:
        lines.append(f"Note: {node.name} is NotReady.")
    return Plan(
        "cordon", node.name, tuple(lines),
        steps=(Step(f"cordon {node.name}", "cordon", {"node": node.name}),),
        locks=(f"node:{node.name}",),
        next_command=f"uncordon {node.name}",
    )


@planner("uncordon", node_pods_only=True)
def plan_uncordon(snapshot: ClusterSnapshot, command) -> Plan:
    node = snapshot.nodes.get(command.node)
    if node is None:
        return unknown_node(snapshot, "uncordon", command.node)
    if node.schedulable:
        lines = (f"{node.name} is already schedulable: nothing will change.",)
    else:
        lines = (f"Uncordon {node.name}: new pods may be scheduled there again; "
                 "existing pods do not move back by themselves.",)
    return Plan(
        "uncordon", node.name, lines,
        steps=(Step(f"uncordon {node.name}", "uncordon", {"node": node.name}),),
        locks=(f"node:{node.name}",),
        next_command="status",
    )


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
