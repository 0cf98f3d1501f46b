"""Durations as people type them: `30s`, `10m`, `1h30m`, `2d`."""

from __future__ import annotations

import re

from bot.domain.text import quote_input

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d{1,9})([smhdw])")
_HINTS = {
    "smh": "use a number with s, m or h, like 30s, 10m or 1h",
    "smhdw": "use a whole number and a unit, like 30m, 1h or 2d (units: s, m, h, d, w)",
}


class DurationError(ValueError):
    """Not a duration; the message quotes the input and shows the form."""


def parse_duration(text: str, units: str = "smhdw", *, zero_ok: bool = False) -> int:
    """`1h30m` -> 5400 seconds. Only `units` are accepted (in any order, each part a whole number);
    zero is refused unless `zero_ok` (for callers with a message of their own). Raises
    DurationError with a usage hint."""
    raw = (text or "").strip().lower()
    hint = _HINTS.get(units) or f"use a whole number and a unit ({', '.join(units)})"
    parts = _PART.findall(raw)
    if not raw or _PART.sub("", raw) or any(unit not in units for _, unit in parts):
        raise DurationError(f'"{quote_input(text)}" is not a duration: {hint}')
    seconds = sum(int(amount) * UNIT_SECONDS[unit] for amount, unit in parts)
    if seconds <= 0 and not zero_ok:
        raise DurationError(f'"{quote_input(text)}" is not a duration: it must be longer than zero; {hint}')
    return seconds


def format_duration(seconds: int) -> str:
    """600 -> "10m", 5400 -> "1h30m": how durations are typed back (hours are the largest unit)."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{amount}{unit}" for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if amount)
    return text or "0s"
