"""HTTP mode: Slack POSTs each delivery to the app's Request URL, signed with the signing secret.

Events go as JSON, slash commands as a form, interactions as a form with one `payload` field of
JSON. Headers: `X-Slack-Request-Timestamp`, `X-Slack-Signature` (`v0=` + HMAC-SHA256 of
`v0:{timestamp}:{raw body}`), on retries `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`.
A 2xx answer within `ack_timeout` is the ack; its body is the slash command's immediate response.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

from lab.slack.delivery import EVENTS_API, INTERACTIVE, Attempt, Delivery

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


def signature(signing_secret: str, timestamp: str | int, body: bytes | str) -> str:
    """`X-Slack-Signature` for a request body sent at `timestamp` (epoch seconds)."""
    raw = body if isinstance(body, bytes) else body.encode()
    base = f"v0:{timestamp}:".encode() + raw
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(signing_secret: str, body: bytes | str, *, content_type: str,
                   timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature(signing_secret, ts, body), "User-Agent": USER_AGENT}


def encode(kind: str, payload: dict[str, Any]) -> tuple[bytes, str]:
    """The request body and content type Slack uses for a delivery kind."""
    if kind == EVENTS_API or payload.get("type") == "url_verification":
        return json.dumps(payload).encode(), "application/json"
    if kind == INTERACTIVE:
        return urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    return urlencode({k: str(v) for k, v in payload.items()}).encode(), "application/x-www-form-urlencoded"


def parse_answer(body: bytes, content_type: str) -> Any:
    """The app's answer body: a dict for JSON, {"text": ...} for plain text, None when empty."""
    if not body.strip():
        return None
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return {"text": text}
    return {"text": text}


class HttpTransport:
    def __init__(self, emu: SlackEmulator) -> None:
        self.emu = emu
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(trust_env=False)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def post(self, kind: str, payload: dict[str, Any], *, timeout: float,
                   extra_headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        url = self.emu.settings.request_url
        if not url:
            raise RuntimeError("http_mode is on but no request_url is configured")
        body, content_type = encode(kind, payload)
        headers = signed_headers(self.emu.settings.signing_secret, body, content_type=content_type)
        headers.update(extra_headers or {})
        assert self.session is not None
        async with self.session.post(url, data=body, headers=headers, allow_redirects=False,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.read(), resp.headers.get("Content-Type", "")

    async def attempt(self, d: Delivery, attempt: Attempt, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        attempt.transport = f"http:{self.emu.settings.request_url}"
        extra = {}
        if attempt.number:
            extra = {"X-Slack-Retry-Num": str(attempt.number), "X-Slack-Retry-Reason": attempt.retry_reason}
        try:
            status, body, content_type = await self.post(d.kind, d.payload, extra_headers=extra,
                                                         timeout=max(0.01, deadline - loop.time()))
        except TimeoutError:
            attempt.outcome = "http_timeout"
            return
        except aiohttp.ClientError as e:
            attempt.outcome = "connection_failed"
            attempt.transport += f" ({type(e).__name__})"
            return
        if 200 <= status < 300:
            if not await self.emu.deliveries.ack(d, parse_answer(body, content_type)) and d.state == "pending":
                attempt.outcome = "http_timeout"  # a late answer, as Slack sees it
        else:
            attempt.outcome = "http_error"
            attempt.transport += f" (HTTP {status})"
