"""A clock a test sets by hand: `clock()` is `clock.now` (epoch seconds), moved with `clock.now += 60`."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
