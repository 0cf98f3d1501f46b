"""upgrade plan [VERSION] / upgrade to VERSION: kubeadm upgrades, as the seeds teach them, for a whole
cluster: an etcd snapshot first, the first control plane with `kubeadm upgrade apply`, the other control
planes and then the workers (in waves) with `kubeadm upgrade node`, each node drained, its kubelet and
kubectl upgraded and restarted, back Ready at the new version and uncordoned; one minor per hop.

facts.py reads the cluster and the machines, plan.py is the pure planner, run.py the worker's steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.contract import OPERATORS, READ_ONLY, Asking, Operation
from bot.domain.text import MAX_MESSAGE_CHARS, clip, escape
from bot.domain.versions import parse_version
from handlers.upgrade.facts import UpgradeFacts, read_upgrade_facts
from handlers.upgrade.plan import PlanLatest, PlanTo, RolloutOptions, UpgradeCommand, plan_upgrade


def gather(resources: Mapping[str, Any], options: RolloutOptions) -> UpgradeFacts:
    version = getattr(options, "version", None)
    return read_upgrade_facts(resources, parse_version(version) if version else None)


def answer_plan(asking: Asking, options: RolloutOptions) -> str:
    facts = gather(asking.resources, options)
    plan = plan_upgrade(facts, options)
    lines = [escape(line) for line in plan.lines]
    if plan.refusal:
        lines.append(f"*Not possible*: {escape(plan.refusal)}")
    elif plan.steps:
        target = next((s.args["target"] for s in plan.steps if s.action == "upgrade.final"), None)
        newest = facts.offer.newest() if facts.offer else None
        lines.append(f"To run it: `upgrade to {target}` (an approver confirms; `--dry-run` shows this again).")
        if newest is not None and target and str(newest) != target:
            lines.append(f"The newest version in the package repo is {newest}: `upgrade plan {newest}` shows its path.")
    return clip("*Upgrade plan*\n" + "\n".join(lines), MAX_MESSAGE_CHARS)


UPGRADE_PLAN = Operation(
    name="upgrade-plan", words="upgrade plan", options=PlanLatest, policy=READ_ONLY, needs=("kube", "ssh"),
    description="the path to the newest patch of the next minor: versions, skew per hop, what each node needs, "
                "drain blockers, waves and an estimate (read-only)",
    answer=answer_plan,
)

UPGRADE_PLAN_TO = Operation(
    name="upgrade-plan-to", words="upgrade plan VERSION", options=PlanTo, policy=READ_ONLY, needs=("kube", "ssh"),
    description="the same for a given version, one minor per hop (read-only)",
    answer=answer_plan,
)

UPGRADE = Operation(
    name="upgrade", words="upgrade to VERSION", options=UpgradeCommand, needs=("kube", "ssh", "backups", "redis"),
    description="upgrade the cluster with kubeadm: etcd snapshot, control planes, then workers in waves, each "
                "drained and uncordoned; stops on the first problem, resumable",
    # Every node is drained and the control plane replaced: a second person reads the plan first.
    policy=OPERATORS.model_copy(update={"approval_required": True}),
    gather=gather, plan=plan_upgrade,
)

__all__ = ["UPGRADE", "UPGRADE_PLAN", "UPGRADE_PLAN_TO", "UpgradeCommand"]
