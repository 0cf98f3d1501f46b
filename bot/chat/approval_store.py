"""Pending approval requests in Redis, with the plan they approve.

The plan is stored with the request so that what runs is exactly what the approver saw;
the worker's actions re-check the cluster before they act.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis

from bot.chat.approvals import ApprovalRequest
from bot.engine.model import Step

PENDING = "kubemaint:approvals:pending"
RECORD_TTL = 7 * 24 * 3600


def _key(request_id: str) -> str:
    return f"kubemaint:approval:{request_id}"


@dataclass
class PendingRequest:
    request: ApprovalRequest
    verb: str
    plan_lines: list[str]
    steps: list[Step]
    locks: list[str]
    next_command: str | None
    thread_ts: str | None
    card_ts: str = ""
    job_id: str = ""  # set with the approval, before the job is queued
    submitted: bool = False  # the job was queued
    start_at: float | None = None  # queued to start then (the next maintenance window), not at once

    def to_json(self) -> str:
        return json.dumps({
            "request": self.request.to_dict(), "verb": self.verb, "plan_lines": self.plan_lines,
            "steps": [s.to_dict() for s in self.steps], "locks": self.locks, "next_command": self.next_command,
            "thread_ts": self.thread_ts, "card_ts": self.card_ts, "job_id": self.job_id,
            "submitted": self.submitted, "start_at": self.start_at,
        })

    @classmethod
    def from_json(cls, raw: str | bytes) -> PendingRequest:
        data = json.loads(raw)
        return cls(
            request=ApprovalRequest.from_dict(data["request"]), verb=data["verb"], plan_lines=data["plan_lines"],
            steps=[Step.from_dict(s) for s in data["steps"]], locks=data["locks"],
            next_command=data.get("next_command"), thread_ts=data.get("thread_ts"),
            card_ts=data.get("card_ts", ""), job_id=data.get("job_id", ""),
            submitted=data.get("submitted", bool(data.get("job_id"))), start_at=data.get("start_at"),
        )


def _open_key(requester: str, command_text: str) -> str:
    digest = hashlib.sha256(command_text.encode()).hexdigest()[:16]
    return f"kubemaint:approvals:open:{requester}:{digest}"


def claim(redis: Redis, request: ApprovalRequest, *, replace: bool = False) -> str | None:
    """Mark `request` as its requester's open request for its command; None if it is the first,
    else the id of the open request already there (a repeated ask gets pointed to that card)."""
    key = _open_key(request.requester, request.command_text)
    if redis.set(key, request.id, nx=not replace, ex=request.ttl_seconds):
        return None
    existing = redis.get(key)
    return existing.decode() if isinstance(existing, bytes) else existing


def save(redis: Redis, pending: PendingRequest, *, still_pending: bool) -> None:
    request = pending.request
    with redis.pipeline() as pipe:
        pipe.set(_key(request.id), pending.to_json(), ex=RECORD_TTL)
        if still_pending:
            pipe.sadd(PENDING, request.id)
        else:
            pipe.srem(PENDING, request.id)
            pipe.delete(_open_key(request.requester, request.command_text))  # the same ask is new again
        pipe.execute()


def load(redis: Redis, request_id: str) -> PendingRequest | None:
    raw = redis.get(_key(request_id))
    return None if raw is None else PendingRequest.from_json(raw)


def pending_ids(redis: Redis) -> list[str]:
    return sorted(v.decode() if isinstance(v, bytes) else v for v in redis.smembers(PENDING))


@contextmanager
def deciding(redis: Redis, request_id: str) -> Iterator[None]:
    """Clicks on one request are handled one at a time (two approvers may click together). A click
    takes well under a second; the lock expires after 10 s so that one cut short by a crash holds
    the card no longer. LockError if another click holds it for more than 10 s."""
    with redis.lock(f"kubemaint:approval-lock:{request_id}", timeout=10, blocking_timeout=10):
        yield
