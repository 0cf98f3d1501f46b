"""A small synchronous client for the emulator's control API (/_lab/), for tests and the demo.

Waits have deadlines and never sleep blindly: each one reads, checks, then long-polls
/_lab/wait until something changes or the deadline passes, and raises TimeoutError then.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
Predicate = Callable[[dict[str, Any]], Any]


class SlackLabError(RuntimeError):
    """A control request the emulator refused: `.status`, `.error` (a code) and `.detail`."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


class SlackLabClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- plumbing --------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base_url + path + ("?" + urllib.parse.urlencode(q) if q else "")
        data = None if body is None else json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
            except ValueError:
                raise SlackLabError(e.code, "http_error", raw.decode("utf-8", "replace")) from None
            raise SlackLabError(e.code, err.get("error", "error"), err.get("detail", "")) from None

    def version(self) -> int:
        return int(self.request("GET", "/_lab/wait", query={"timeout": 0})["version"])

    def wait_changed(self, after: int, timeout: float) -> int:
        """Block until the emulator's version passes `after` or `timeout` seconds pass; the new version."""
        body = self.request("GET", "/_lab/wait", query={"after": after, "timeout": f"{max(0.0, timeout):.3f}"},
                            timeout=timeout + self.timeout)
        return int(body["version"])

    def wait_for(self, check: Callable[[], T], timeout: float = 10.0, what: str = "a condition") -> T:
        """Call `check()` until it returns something truthy (returned) or `timeout` passes (TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            version = self.version()
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            self.wait_changed(version, min(remaining, 10.0))

    # -- the workspace ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return self.request("GET", "/_lab/")

    def say(self, user: str, channel: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
        """`user` (id or name) types `text` in `channel` (id, name, #name, or a user for their DM).
        Returns ts (for messages), delivery_ids, and response_url for slash commands."""
        return self.request("POST", "/_lab/say", {"user": user, "channel": channel, "text": text,
                                                  "thread_ts": thread_ts})

    def slash(self, user: str, channel: str, text: str, command: str = "/kubemaint") -> dict[str, Any]:
        return self.say(user, channel, f"{command} {text}".rstrip())

    def click(self, user: str, channel: str, ts: str, action_id: str, value: str | None = None,
              block_id: str | None = None) -> dict[str, Any]:
        """`user` clicks a button. Answers once the app acked or Slack gave up (at most the ack timeout):
        `delivered` (False when the app did not ack in time; Slack does not retry a click), `error`
        ("dispatch_failed" or "operation_timeout") and `shown` (the warning the user saw on the button)."""
        return self.request("POST", "/_lab/click", {"user": user, "channel": channel, "ts": ts,
                                                    "action_id": action_id, "value": value, "block_id": block_id})

    def clicks(self) -> list[dict[str, Any]]:
        """Every click so far, oldest first: user, channel, ts, action_id, delivered, error, shown."""
        return self.request("GET", "/_lab/clicks")["clicks"]

    def messages(self, channel: str | None = None, thread_ts: str | None = None,
                 include_deleted: bool = False) -> list[dict[str, Any]]:
        return self.request("GET", "/_lab/messages", query={"channel": channel, "thread_ts": thread_ts,
                                                            "include_deleted": 1 if include_deleted else None}
                            )["messages"]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        for m in self.messages(channel, include_deleted=True):
            if m["ts"] == ts:
                return m
        raise SlackLabError(404, "message_not_found", f"no message {ts} in {channel}")

    def files(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """The files the bot shared (in `channel`, in the thread `thread_ts`), oldest first, each with
        its `content` as text, `name`, `title` and the `message_ts` of the message that carries it."""
        return self.request("GET", "/_lab/files", query={"channel": channel, "thread_ts": thread_ts})["files"]

    def calls(self, method: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        return self.request("GET", "/_lab/calls", query={"method": method, "since": since or None})["calls"]

    def deliveries(self, state: str | None = None, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/_lab/deliveries",
                            query={"state": state, "ids": ",".join(ids) if ids else None})["deliveries"]

    def connections(self, live_only: bool = False) -> list[dict[str, Any]]:
        conns = self.request("GET", "/_lab/connections")["connections"]
        return [c for c in conns if c["state"] != "closed"] if live_only else conns

    def disconnect(self, reason: str = "refresh_requested", connection_id: str | None = None,
                   grace: float | None = None) -> list[str]:
        return self.request("POST", "/_lab/disconnect", {"reason": reason, "connection_id": connection_id,
                                                         "grace": grace})["disconnected"]

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Run-time settings: http_mode, request_url, ack_timeout, max_retries, retry_delay,
        disconnect_grace, response_url_uses, response_url_ttl, events, slash_commands,
        echo_bot_messages, late_acks (the next N acks count as too late, so events are re-sent),
        rate_limits={"chat.update": {"per_minute": 50, "burst": 10}} (None removes)."""
        body = self.request("POST", "/_lab/config", settings)
        return body

    def verify_url(self) -> dict[str, Any]:
        return self.request("POST", "/_lab/verify_url", {})

    def reset(self) -> None:
        self.request("POST", "/_lab/reset", {})

    # -- waits -----------------------------------------------------------------------------------

    def wait_for_message(self, predicate: Predicate | None = None, channel: str | None = None,
                         thread_ts: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The first message (oldest first) in `channel` (all if None) for which `predicate` is true."""
        def check() -> dict[str, Any] | None:
            return next((m for m in self.messages(channel, thread_ts) if predicate is None or predicate(m)), None)
        return self.wait_for(check, timeout, f"a message in {channel or 'any channel'}")

    def wait_for_deliveries(self, ids: Iterable[str] | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until none of the deliveries (`ids`, or all) is pending; returns them (check `state`)."""
        ids = list(ids) if ids is not None else None

        def check() -> list[dict[str, Any]] | None:
            ds = self.deliveries(ids=ids) if ids else self.deliveries()
            return ds if ds and all(d["state"] != "pending" for d in ds) else None
        return self.wait_for(check, timeout, f"deliveries {ids or 'all'} to settle")

    def wait_for_ack(self, delivery_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until a delivery is settled; raise SlackLabError if it was not acked."""
        d = self.wait_for_deliveries([delivery_id], timeout)[0]
        if d["state"] != "acked":
            raise SlackLabError(504, d["state"], f"{delivery_id} ({d['summary']}) ended {d['state']}: "
                                f"{[a['outcome'] for a in d['attempts']]}")
        return d

    def wait_for_connection(self, timeout: float = 10.0, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """An open Socket Mode connection whose id is not in `exclude`."""
        skip = set(exclude)

        def check() -> dict[str, Any] | None:
            return next((c for c in self.connections() if c["state"] == "open" and c["id"] not in skip), None)
        return self.wait_for(check, timeout, "a Socket Mode connection")

    def wait_for_call(self, method: str, predicate: Predicate | None = None, since: int = 0,
                      timeout: float = 10.0) -> dict[str, Any]:
        """The first recorded Web API call to `method` (after call id `since`) matching `predicate`."""
        def check() -> dict[str, Any] | None:
            return next((c for c in self.calls(method, since) if predicate is None or predicate(c)), None)
        return self.wait_for(check, timeout, f"a {method} call")
