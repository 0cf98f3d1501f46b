"""Approval rules for risky commands, as pure functions over an immutable request.

- Only approvers decide. The requester can never approve their own request, but may deny it:
  that is a withdrawal ("never mind"), which needs no role because it can only make things safer.
- Each approver counts once; `approvals_needed` distinct approvals approve the request.
- One denial denies it. Once approved or denied, a request never changes again, so a late or
  double click is answered with who decided and when.
- After `ttl_seconds` an undecided request is expired and nothing changes it.

Time is passed in (`now`, epoch seconds), so the rules are testable and replayable; the caller
stores the request (`to_dict`/`from_dict`, JSON-safe) and serialises clicks on one request.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

ApprovalState = Literal["pending", "approved", "denied", "expired"]
Action = Literal["approve", "deny"]
APPROVER_ROLE = "approver"


def clock_time(epoch: float) -> str:
    """`14:03 UTC`: one zone for everyone in the channel."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    command_text: str
    requester: str
    channel: str
    created_at: float
    ttl_seconds: int
    approvals_needed: int
    approvals: tuple[tuple[str, float], ...] = ()  # (approver user id, epoch), in click order
    denial: tuple[str, float] | None = None  # (user id, epoch); the requester's own = withdrawal
    cluster: str = ""  # the cluster it is for ("": the one cluster of a configuration without `clusters`)

    def __post_init__(self) -> None:
        if self.approvals_needed < 1:
            raise ValueError("approvals_needed must be >= 1")
        if self.ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")

    @property
    def expires_at(self) -> float:
        return self.created_at + self.ttl_seconds

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(user for user, _ in self.approvals)

    @property
    def withdrawn(self) -> bool:
        return self.denial is not None and self.denial[0] == self.requester

    @property
    def decided_at(self) -> float | None:
        """When the request was approved or denied; None while undecided."""
        if self.denial is not None:
            return self.denial[1]
        if len(self.approvals) >= self.approvals_needed:
            return self.approvals[self.approvals_needed - 1][1]
        return None

    def state(self, now: float) -> ApprovalState:
        # A decision taken in time stands after the deadline; only undecided requests expire.
        if self.denial is not None:
            return "denied"
        if len(self.approvals) >= self.approvals_needed:
            return "approved"
        return "expired" if now >= self.expires_at else "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command_text": self.command_text,
            "requester": self.requester,
            "channel": self.channel,
            "created_at": self.created_at,
            "ttl_seconds": self.ttl_seconds,
            "approvals_needed": self.approvals_needed,
            "approvals": [[user, at] for user, at in self.approvals],
            "denial": list(self.denial) if self.denial is not None else None,
            "cluster": self.cluster,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalRequest:
        """Inverse of `to_dict`; raises ValueError on a malformed record rather than guessing."""
        try:
            denial = data["denial"]
            return cls(
                id=str(data["id"]),
                command_text=str(data["command_text"]),
                requester=str(data["requester"]),
                channel=str(data["channel"]),
                created_at=float(data["created_at"]),
                ttl_seconds=int(data["ttl_seconds"]),
                approvals_needed=int(data["approvals_needed"]),
                approvals=tuple((str(user), float(at)) for user, at in data["approvals"]),
                denial=(str(denial[0]), float(denial[1])) if denial is not None else None,
                cluster=str(data.get("cluster") or ""),
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ValueError(f"malformed approval request record: {error!r}") from None


@dataclass(frozen=True)
class Decision:
    changed: bool  # False: nothing to store or re-render, only `message` to show the clicker
    request: ApprovalRequest
    message: str


def decide(
    request: ApprovalRequest, user: str, user_roles: Collection[str], action: Action, now: float
) -> Decision:
    """Apply one click. Never raises for a click that is merely not allowed; says why instead."""
    if action not in ("approve", "deny"):
        raise ValueError(f"unknown approval action {action!r}")
    state = request.state(now)
    if state == "expired":
        return Decision(False, request, (
            f"This request expired at {clock_time(request.expires_at)} without a decision; "
            f"ask again with `{request.command_text}`"
        ))
    if state != "pending":
        return Decision(False, request, "Already " + outcome(request))
    if user == request.requester:
        if action == "deny":
            return Decision(True, replace(request, denial=(user, now)), f"Withdrawn by <@{user}> (the requester)")
        return Decision(False, request, f"<@{user}>, you asked for this, so someone else has to approve it")
    if APPROVER_ROLE not in user_roles:
        return Decision(False, request, f"<@{user}> is not an approver; only approvers can approve or deny this")
    if action == "deny":
        return Decision(True, replace(request, denial=(user, now)), f"Denied by <@{user}>")
    if user in request.approvers:
        return Decision(False, request, f"<@{user}> has already approved; {_waiting(request)}")
    approved = replace(request, approvals=(*request.approvals, (user, now)))
    if approved.state(now) == "approved":
        return Decision(True, approved, f"Approved by {_mentions(approved.approvers)}")
    return Decision(True, approved, (
        f"<@{user}> approved ({len(approved.approvals)} of {approved.approvals_needed}); {_waiting(approved)}"
    ))


def outcome(request: ApprovalRequest) -> str:
    """How a decided request was decided: `approved by <@A> at 14:03 UTC`, `denied by ...`."""
    if request.denial is not None:
        verb = "withdrawn" if request.withdrawn else "denied"
        return f"{verb} by <@{request.denial[0]}> at {clock_time(request.denial[1])}"
    decided_at = request.decided_at
    if decided_at is None:
        return "not decided yet"
    return f"approved by {_mentions(request.approvers)} at {clock_time(decided_at)}"


def _waiting(request: ApprovalRequest) -> str:
    missing = request.approvals_needed - len(request.approvals)
    return f"waiting for {missing} more approval{'s' if missing != 1 else ''}"


def _mentions(users: tuple[str, ...]) -> str:
    mentions = [f"<@{user}>" for user in users]
    return mentions[0] if len(mentions) == 1 else ", ".join(mentions[:-1]) + " and " + mentions[-1]
