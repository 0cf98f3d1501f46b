"""Deliveries: one event, slash command or interaction on its way to the app, with its attempts.

Slack's rules: the app must acknowledge within `ack_timeout` (3 s). Events API deliveries are
then re-sent up to `max_retries` (3) times with the same `event_id`, `retry_attempt`/`retry_reason`
in Socket Mode and `X-Slack-Retry-Num`/`X-Slack-Retry-Reason` over HTTP. Slash commands and
interactions are not retried: the user sees "operation_timeout" instead (or "dispatch_failed" when
the app could not be reached at all).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

EVENTS_API = "events_api"
SLASH_COMMANDS = "slash_commands"
INTERACTIVE = "interactive"


@dataclass
class Attempt:
    number: int  # 0 for the first delivery, then retry_attempt 1..max_retries
    at: float
    transport: str  # "socket:conn-1", "http:<url>" or "none" (nobody connected)
    envelope_id: str | None = None
    retry_reason: str = ""
    outcome: str = "pending"  # acked, timeout, http_error, http_timeout, connection_failed, no_connection

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "at": self.at, "transport": self.transport,
                "envelope_id": self.envelope_id, "retry_reason": self.retry_reason, "outcome": self.outcome}


@dataclass
class Delivery:
    id: str
    kind: str  # events_api | slash_commands | interactive
    payload: dict[str, Any]
    summary: str
    mode: str  # socket | http
    event_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)  # user, channel, response_url for answers
    state: str = "pending"  # pending, acked, failed (events: retries exhausted), timeout (not retried)
    attempts: list[Attempt] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    acked_at: float | None = None
    ack_payload: Any = None
    acks: int = 0
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # acked, or given up on

    @property
    def failure(self) -> str | None:
        """The error the user is shown when Slack gave up on it: "dispatch_failed" when the app could not
        be reached (nobody connected, connection refused, a non-2xx answer), "operation_timeout" when it
        did not ack in time."""
        if self.state in ("pending", "acked"):
            return None
        last = self.attempts[-1].outcome if self.attempts else "timeout"
        return "dispatch_failed" if last in ("http_error", "connection_failed", "no_connection") \
            else "operation_timeout"

    @property
    def retryable(self) -> bool:
        return self.kind == EVENTS_API

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "summary": self.summary, "mode": self.mode,
                "event_id": self.event_id, "state": self.state, "created_at": self.created_at,
                "acked_at": self.acked_at, "ack_payload": copy.deepcopy(self.ack_payload), "acks": self.acks,
                "attempts": [a.to_dict() for a in self.attempts], "payload": copy.deepcopy(self.payload)}


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds. (asyncio.timeout, not wait_for: on 3.11 wait_for can
    swallow a cancellation that arrives as the event fires, which hangs shutdown.)"""
    if event.is_set():
        return True
    if timeout <= 0:
        return False
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class Transport(Protocol):
    async def attempt(self, delivery: Delivery, attempt: Attempt, deadline: float) -> None:
        """Send once and wait for the ack until `deadline` (loop time); set attempt.outcome."""


class Deliveries:
    def __init__(self, *, transports: dict[str, Transport], settings: Any, changed: Callable[[], None],
                 on_ack: Callable[[Delivery, Any], Awaitable[None]],
                 on_give_up: Callable[[Delivery], Awaitable[None]]) -> None:
        self.transports = transports
        self.settings = settings  # has ack_timeout, max_retries, retry_delay
        self.changed = changed
        self.on_ack = on_ack
        self.on_give_up = on_give_up
        self.items: dict[str, Delivery] = {}
        self.by_envelope: dict[str, Delivery] = {}
        self.unknown_acks: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    def start(self, kind: str, payload: dict[str, Any], *, summary: str, mode: str,
              event_id: str | None = None, context: dict[str, Any] | None = None) -> Delivery:
        d = Delivery(id=f"dlv-{next(self._ids)}", kind=kind, payload=payload, summary=summary, mode=mode,
                     event_id=event_id, context=context or {})
        self.items[d.id] = d
        task = asyncio.get_running_loop().create_task(self._run(d))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.changed()
        return d

    async def _run(self, d: Delivery) -> None:
        loop = asyncio.get_running_loop()
        transport = self.transports[d.mode]
        tries = 1 + (self.settings.max_retries if d.retryable else 0)
        reason = ""
        for number in range(tries):
            if number and self.settings.retry_delay:
                await asyncio.sleep(self.settings.retry_delay)
            if d.state != "pending":
                return
            attempt = Attempt(number=number, at=time.time(), transport="none", retry_reason=reason)
            d.attempts.append(attempt)
            self.changed()
            try:
                await transport.attempt(d, attempt, loop.time() + self.settings.ack_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # recorded, then retried like any failure
                attempt.outcome = f"error: {type(e).__name__}: {e}"
            if d.state == "acked":
                attempt.outcome = "acked"
                self.changed()
                return
            if attempt.outcome == "pending":
                attempt.outcome = "timeout"
            reason = _retry_reason(d.mode, attempt.outcome)
            self.changed()
        d.state = "failed" if d.retryable else "timeout"
        d.settled.set()
        self.changed()
        await self.on_give_up(d)

    def register_envelope(self, envelope_id: str, d: Delivery) -> None:
        self.by_envelope[envelope_id] = d

    async def ack(self, d: Delivery, payload: Any = None) -> bool:
        """The app acknowledged `d` (HTTP 2xx or a Socket Mode ack). The first ack while Slack still waits
        counts; later ones (duplicates, or after Slack gave up) are only counted in `acks`. Returns whether
        this ack was taken (False also when the `late_acks` setting made it count as too late)."""
        d.acks += 1
        if d.state != "pending":
            self.changed()
            return False
        if self.settings.late_acks > 0:
            self.settings.late_acks -= 1
            self.changed()
            return False
        d.state = "acked"
        d.acked_at = time.time()
        d.ack_payload = payload
        d.acked.set()
        d.settled.set()
        self.changed()
        await self.on_ack(d, payload)
        return True

    async def ack_envelope(self, envelope_id: Any, payload: Any, via: str) -> None:
        d = self.by_envelope.get(str(envelope_id))
        if d is None:
            self.unknown_acks.append({"envelope_id": envelope_id, "via": via, "at": time.time()})
            self.changed()
            return
        await self.ack(d, payload)

    def pending(self) -> list[Delivery]:
        return [d for d in self.items.values() if d.state == "pending"]

    def clear(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.items.clear()
        self.by_envelope.clear()
        self.unknown_acks.clear()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


def _retry_reason(mode: str, outcome: str) -> str:
    if mode == "socket":
        return "timeout"
    if outcome in ("http_timeout", "connection_failed", "http_error"):
        return outcome
    return "unknown_error"
