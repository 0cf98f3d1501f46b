"""reboot NODE, os-upgrade NODE, reboot --needed, os-upgrade --all: a node out of service and back, safely,
as the seeds' OS-upgrade lesson teaches (drain, upgrade and reboot, uncordon) and with what a reboot daemon
cannot do: a plan, an approval, a precise report, pause and resume, and never uncordoning a node someone
else cordoned.

facts.py reads the cluster and the machines, plan.py is the pure planner, run.py the worker's step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.contract import OPERATORS, Operation
from handlers.os_upgrade.facts import MaintenanceFacts, read_maintenance_facts
from handlers.os_upgrade.plan import OsUpgradeAll, OsUpgradeNode, RebootNeeded, RebootNode, plan_maintenance


def gather(resources: Mapping[str, Any], options: Any) -> MaintenanceFacts:
    return read_maintenance_facts(resources)


# Every one drains nodes and takes them down: a second person reads the plan first.
_APPROVED = OPERATORS.model_copy(update={"approval_required": True})
_NEEDS = ("kube", "ssh", "redis", "maintenance", "cluster")

REBOOT = Operation(
    name="reboot", words="reboot NODE", options=RebootNode, needs=_NEEDS, policy=_APPROVED,
    description="drain a node, reboot it, wait for its new boot and Ready, uncordon it (if this job cordoned it)",
    gather=gather, plan=plan_maintenance,
)
REBOOT_NEEDED = Operation(
    name="reboot-needed", words="reboot", options=RebootNeeded, needs=_NEEDS, policy=_APPROVED,
    description="`reboot --needed`: every node asking for a reboot (/var/run/reboot-required), control planes "
                "one at a time, then workers in waves",
    gather=gather, plan=plan_maintenance,
)
OS_UPGRADE = Operation(
    name="os-upgrade", words="os-upgrade NODE", options=OsUpgradeNode, needs=_NEEDS, policy=_APPROVED,
    description="drain a node, apt-get upgrade it (Kubernetes packages stay held), reboot it if it asks, verify, "
                "uncordon it",
    gather=gather, plan=plan_maintenance,
)
OS_UPGRADE_ALL = Operation(
    name="os-upgrade-all", words="os-upgrade", options=OsUpgradeAll, needs=_NEEDS, policy=_APPROVED,
    description="`os-upgrade --all`: every node with pending updates or a reboot required, in waves",
    gather=gather, plan=plan_maintenance,
)

__all__ = ["OS_UPGRADE", "OS_UPGRADE_ALL", "REBOOT", "REBOOT_NEEDED"]
