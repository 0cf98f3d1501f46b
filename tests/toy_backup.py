"""A stand-in for `backup etcd`, loaded through `operation_modules`, for the schedule's tests: switches in
Redis make its plan refuse (`toy-backup:refuse`) or its one step fail (`toy-backup:fail`, read when the step
runs, so a resumed run can succeed); a step that succeeds records that it ran."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.contract import OPERATORS, NoOptions, Operation, Plan
from bot.engine import Step, StepContext, action


def read_refusal(resources: Mapping[str, Any], options: NoOptions) -> str:
    return (resources["redis"].get("toy-backup:refuse") or b"").decode()


def plan_backup(refusal: str, options: NoOptions) -> Plan:
    if refusal:
        return Plan((), refusal=refusal)
    return Plan(("Snapshot etcd on cp01",), steps=(Step("snapshot etcd", "toy.backup"),),
                locks=("cluster:etcd-backup",))


@action("toy.backup")
def snapshot(ctx: StepContext) -> str:
    redis = ctx.resources["redis"]
    if failure := redis.get("toy-backup:fail"):
        raise RuntimeError(failure.decode())
    redis.rpush("toy-backup:runs", ctx.job_id)
    return "snapshot saved"


TOY_BACKUP = Operation(name="backup-etcd", words="backup etcd", description="a stand-in for backup etcd",
                       policy=OPERATORS, needs=("redis",), gather=read_refusal, plan=plan_backup)
