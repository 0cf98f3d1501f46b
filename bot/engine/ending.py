"""How a job ended, as data. The engine records it; the sentences people read (done, not done,
why, what to type next) are written in one place, bot/contract/reports.py."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class EndKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a step raised: `step`, `reason`
    NOT_STARTED = "not_started"  # resources or locks could not be had: `reason`
    CANCELLED = "cancelled"  # stopped at a safe point by `by`, `during` or before `step`
    CANCELLED_QUEUED = "cancelled_queued"  # cancelled by `by` while queued (first run or waiting to resume)
    ABORTED = "aborted"  # cancelled by `by` after it `was` failed or halted: it will not be resumed
    LOST_LOCK = "lost_lock"  # halted `during` or before `step`: the locks on `targets` could not be refreshed
    WORKER_DIED = "worker_died"  # halted at `step`: its worker (`worker`) died `deaths` times in a row
    STATE_LOST = "state_lost"  # halted `during` `step`: Redis lost its data; the run wrote the job back
    # Paused at a safe point `during` or before `step`, asked by `by` or by the step itself (`reason`): the job
    # is paused until `resume`, or scheduled to continue by itself at `until` (a maintenance window's end).
    PAUSED = "paused"


@dataclass(frozen=True)
class Ending:
    kind: EndKind
    step: str = ""
    reason: str = ""
    by: str = ""
    during: bool = False
    targets: tuple[str, ...] = ()
    worker: str = ""
    deaths: int = 0
    was: str = ""
    until: float = 0.0

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in ("", (), 0, False)}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Ending:
        data = json.loads(raw)
        data["kind"] = EndKind(data["kind"])
        data["targets"] = tuple(data.get("targets") or ())
        return cls(**data)
