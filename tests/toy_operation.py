"""A toy operation declared outside the product, as a team would add its own: `stamp node NODE
[--times COUNT]` labels a node, then reads the label back. Loaded through the config key
`operation_modules`; tests/test_toy_operation.py runs it through chat and a worker, and
docs/architecture.md ("Adding an operation") walks through it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from bot.cluster import kube
from bot.contract import COUNT, Operation, Plan, Policy, flag
from bot.engine import Step, StepContext, action

LABEL = "kubemaint.example/stamps"


@dataclass(frozen=True)
class StampOptions:
    node: str  # NODE in the phrase
    times: int = flag(COUNT, default=1, help="how many stamps the label records")


def read_node(resources: Mapping[str, Any], options: StampOptions) -> dict | None:
    try:
        return kube.read_node(resources["kube"], options.node)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def plan_stamp(node: dict | None, options: StampOptions) -> Plan:
    if node is None:
        return Plan((), refusal=f"node {options.node} not found")
    now = (node["metadata"].get("labels") or {}).get(LABEL)
    lines = (f"Label {options.node} with {LABEL}={options.times}",
             f"  today: {now if now is not None else 'no such label'}")
    steps = (Step(f"stamp {options.node}", "toy.stamp", {"options": options}),
             Step(f"check the stamp on {options.node}", "toy.check", {"options": options}))
    return Plan(lines, steps=steps, locks=(f"node:{options.node}",), next_command=f"stamp node {options.node}")


@action("toy.stamp")
def stamp(ctx: StepContext, options: StampOptions) -> str:
    client = ctx.resources["kube"]
    client.core.patch_node(options.node, {"metadata": {"labels": {LABEL: str(options.times)}}})
    return f"{options.node} stamped {options.times}x"


@action("toy.check")
def check(ctx: StepContext, options: StampOptions) -> str:
    labels = kube.read_node(ctx.resources["kube"], options.node)["metadata"].get("labels") or {}
    if labels.get(LABEL) != str(options.times):
        raise RuntimeError(f"{options.node} has {LABEL}={labels.get(LABEL)!r}, not {options.times}")
    return f"{options.node} carries {LABEL}={options.times}"


STAMP = Operation(
    name="stamp", words="stamp node NODE", options=StampOptions,
    description="label a node with a count of stamps (a toy operation from the tests)",
    policy=Policy(allowed_roles=("operator",), approval_required=True), needs=("kube",),
    gather=read_node, plan=plan_stamp,
)
