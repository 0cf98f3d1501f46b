"""What a job is: an ordered list of named steps plus who asked, who approved and what it locks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

from bot.domain.ids import is_job_id, new_job_id

JOB_DATA = "@job"  # the checkpoint field of job-level data; step names never start with "@"


@dataclass(frozen=True)
class Step:
    """One idempotent unit of work: `action` names a function registered with `@action`.

    `args` are kept as JSON (a frozen options dataclass becomes a dict): they are stored with
    the job, and the runner turns them back into the types the action's signature names.
    """

    name: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", to_jsonable_python(dict(self.args)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "args": dict(self.args)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(str(data["name"]), str(data["action"]), dict(data.get("args") or {}))


@dataclass
class JobSpec:
    """Everything needed to run (or re-run) a job; stored once at submission and never changed."""

    id: str
    verb: str
    command_text: str
    requester: str
    approvers: list[str]
    channel: str
    thread_ts: str | None
    locks: list[str]
    steps: list[Step]
    created_at: float
    next_command: str | None = None  # offered once the job succeeds ("uncordon node01")
    # The cluster whose resources run the steps ("": a configuration without `clusters`, or the job needs none).
    cluster: str = ""

    def __post_init__(self) -> None:
        # Plans carry tuples; the spec keeps lists so that a JSON round trip compares equal.
        self.approvers = list(self.approvers)
        self.locks = list(self.locks)
        self.steps = [s if isinstance(s, Step) else Step.from_dict(s) for s in self.steps]
        if not is_job_id(self.id):
            raise ValueError(f"bad job id {self.id!r}: job ids look like j-1a2b3c4d")
        if not self.steps:
            raise ValueError("a job needs at least one step")
        if any(s.name.startswith("@") for s in self.steps):
            raise ValueError('step names must not start with "@" (reserved for job-level data)')
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            # Step names key the checkpoints, so they must be unique within a job.
            raise ValueError(f"step names must be unique within a job; repeated: {', '.join(duplicates)}")

    @classmethod
    def create(cls, verb: str, command_text: str, requester: str, steps: Iterable[Step], *,
               approvers: Iterable[str] = (), channel: str = "", thread_ts: str | None = None,
               locks: Iterable[str] = (), job_id: str | None = None, next_command: str | None = None,
               cluster: str = "") -> JobSpec:
        """A new spec with a fresh id and the current time."""
        return cls(job_id or new_job_id(), verb, command_text, requester, list(approvers), channel, thread_ts,
                   list(locks), list(steps), time.time(), next_command, cluster)

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "verb": self.verb, "command_text": self.command_text, "requester": self.requester,
            "approvers": list(self.approvers), "channel": self.channel, "thread_ts": self.thread_ts,
            "locks": list(self.locks), "steps": [s.to_dict() for s in self.steps], "created_at": self.created_at,
            "next_command": self.next_command, "cluster": self.cluster,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            id=data["id"], verb=data["verb"], command_text=data["command_text"], requester=data["requester"],
            approvers=list(data.get("approvers") or []), channel=data.get("channel") or "",
            thread_ts=data.get("thread_ts"), locks=list(data.get("locks") or []),
            steps=[Step.from_dict(s) for s in data["steps"]], created_at=float(data["created_at"]),
            next_command=data.get("next_command"), cluster=data.get("cluster") or "",
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobSpec:
        return cls.from_dict(json.loads(text))
