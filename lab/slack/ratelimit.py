"""Slack's rate limits as token buckets.

Defaults: `chat.postMessage` about one per second per channel with a short burst, `chat.update`
tier 3 (50 a minute per app). Beyond them the Web API answers HTTP 429 with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RateLimit:
    """`rate` tokens a second, at most `burst` saved up; `scope` is "channel" (per channel) or "app"."""

    rate: float
    burst: int = 1
    scope: str = "app"

    @classmethod
    def per_minute(cls, n: float, burst: int = 1, scope: str = "app") -> RateLimit:
        return cls(n / 60.0, burst, scope)

    @classmethod
    def parse(cls, spec: RateLimit | Mapping[str, Any]) -> RateLimit:
        """From a RateLimit or a dict: {"per_second"|"per_minute"|"rate", "burst", "scope"}."""
        if isinstance(spec, RateLimit):
            return spec
        if "per_minute" in spec:
            rate = float(spec["per_minute"]) / 60.0
        else:
            rate = float(spec.get("per_second", spec.get("rate", 1.0)))
        scope = spec.get("scope", "app")
        if scope not in ("app", "channel"):
            raise ValueError(f"scope must be app or channel, not {scope!r}")
        return cls(rate, int(spec.get("burst", 1)), scope)

    def to_dict(self) -> dict[str, Any]:
        return {"per_second": self.rate, "per_minute": self.rate * 60, "burst": self.burst, "scope": self.scope}


DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "chat.postMessage": RateLimit(1.0, 5, "channel"),
    "chat.update": RateLimit.per_minute(50, 10, "app"),
    # Tier 4 (100+ a minute) for both API steps of an upload.
    "files.getUploadURLExternal": RateLimit.per_minute(100, 10, "app"),
    "files.completeUploadExternal": RateLimit.per_minute(100, 10, "app"),
}


class RateLimiter:
    def __init__(self, limits: Mapping[str, RateLimit | Mapping[str, Any] | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits: dict[str, RateLimit] = {}
        self.configure(DEFAULT_RATE_LIMITS if limits is None else limits)
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, at)

    def configure(self, limits: Mapping[str, RateLimit | Mapping[str, Any] | None], *, replace: bool = True) -> None:
        """Set the limits per method; a None value removes a method's limit."""
        if replace:
            self.limits = {}
        for method, spec in limits.items():
            if spec is None:
                self.limits.pop(method, None)
            else:
                self.limits[method] = RateLimit.parse(spec)
        self.reset()

    def reset(self) -> None:
        self._buckets = {}

    def check(self, method: str, channel: str | None = None) -> int | None:
        """Take a token: None if the call may go ahead, else the seconds for `Retry-After` (at least 1)."""
        limit = self.limits.get(method)
        if limit is None:
            return None
        key = (method, (channel or "") if limit.scope == "channel" else "")
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        if limit.rate <= 0:
            return 60
        return max(1, math.ceil((1.0 - tokens) / limit.rate))
