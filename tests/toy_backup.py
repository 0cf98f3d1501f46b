"""A stand-in for `backup etcd`, loaded through `operation_modules`, for the schedule's tests: its plan reads
two switches from Redis (`toy-backup:refuse`, `toy-backup:fail`) so a test can make a slot's run be refused
or fail, and its one step records that it ran."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.contract import OPERATORS, NoOptions, Operation, Plan
from bot.engine import Step, StepContext, action


def read_switches(resources: Mapping[str, Any], options: NoOptions) -> dict[str, str]:
    redis = resources["redis"]
    return {name: (redis.get(f"toy-backup:{name}") or b"").decode() for name in ("refuse", "fail")}


def plan_backup(switches: dict[str, str], options: NoOptions) -> Plan:
    if switches["refuse"]:
        return Plan((), refusal=switches["refuse"])
    return Plan(("Snapshot etcd on cp01",), steps=(Step("snapshot etcd", "toy.backup", {"fail": switches["fail"]}),),
                locks=("cluster:etcd-backup",))


@action("toy.backup")
def snapshot(ctx: StepContext, fail: str) -> str:
    if fail:
        raise RuntimeError(fail)
    ctx.resources["redis"].rpush("toy-backup:runs", ctx.job_id)
    return "snapshot saved"


TOY_BACKUP = Operation(name="backup-etcd", words="backup etcd", description="a stand-in for backup etcd",
                       policy=OPERATORS, needs=("redis",), gather=read_switches, plan=plan_backup)
