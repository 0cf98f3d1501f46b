"""Maintenance windows: when disruptive maintenance (reboots, OS upgrades) may start. Pure.

A window is a set of weekdays, a start and an end time in a time zone, as people write them:

    {days: "mon-fri", start: "22:00", end: "04:00", time_zone: "Europe/Berlin"}

The days are the days a window *starts* on: one that ends at or before its start runs overnight
(Friday 22:00 to Saturday 04:00). Times are wall-clock times in the zone, so a window keeps its
local hours across daylight-saving changes (it is an hour shorter or longer on those nights).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")
_KEYS = ("days", "start", "end", "time_zone")


class WindowError(ValueError):
    """A window that cannot be understood; the message says which part and what is expected."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # weekdays the window starts on, 0 = Monday
    start: time
    end: time
    zone: ZoneInfo

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def _opening(self, day: datetime) -> tuple[datetime, datetime]:
        """The window that starts on `day`'s date (in the zone): its start and end, as aware datetimes."""
        start = datetime.combine(day.date(), self.start, self.zone)
        end_date = day.date() + timedelta(days=1) if self.overnight else day.date()
        return start, datetime.combine(end_date, self.end, self.zone)

    def open_at(self, when: datetime) -> datetime | None:
        """The end of the window open at `when` (aware), or None when none is."""
        local = when.astimezone(self.zone)
        for back in (0, 1):  # an overnight window open now may have started yesterday
            day = local - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            start, end = self._opening(day)
            if start <= local < end:
                return end
        return None

    def next_start(self, when: datetime) -> datetime:
        """When the next window opens after `when` (the current one's start is not "next")."""
        local = when.astimezone(self.zone)
        for ahead in range(8):
            day = local + timedelta(days=ahead)
            if day.weekday() in self.days:
                start, _ = self._opening(day)
                if start > local:
                    return start
        raise AssertionError("a window with at least one day opens within 8 days")  # parse_window ensures a day

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {clock_time(self.start)}-{clock_time(self.end)} {self.zone.key}"


def clock_time(moment: time | datetime) -> str:
    """"22:00", or "22:00:30" when the seconds matter."""
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def parse_window(data: Mapping[str, object]) -> Window:
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise WindowError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; a window has "
                          f"{', '.join(_KEYS)}")
    missing = [key for key in _KEYS if key not in data]
    if missing:
        raise WindowError(f"missing {', '.join(missing)}; e.g. {{days: mon-fri, start: \"22:00\", end: \"04:00\", "
                          "time_zone: Europe/Berlin}")
    start, end = _time(data["start"], "start"), _time(data["end"], "end")
    if start == end:
        raise WindowError(f"start and end are both {start:%H:%M}: a window needs a length")
    return Window(parse_days(data["days"]), start, end, _zone(data["time_zone"]))


def parse_days(value: object) -> frozenset[int]:
    """'mon-fri', 'sat,sun', ['sat', 'sun'], 'daily'."""
    parts: Iterable[object] = value if isinstance(value, list) else str(value).split(",")
    found: set[int] = set()
    for part in parts:
        text = str(part).strip().lower()
        if text in ("daily", "every day"):
            found.update(range(7))
        elif "-" in text:
            first, _, last = text.partition("-")
            a, b = _day(first), _day(last)
            found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        else:
            found.add(_day(text))
    if not found:
        raise WindowError("days: name at least one day, e.g. mon-fri or sat,sun")
    return frozenset(found)


def _day(text: str) -> int:
    key = text.strip()[:3]
    if key not in DAYS or not text.strip().isalpha():
        raise WindowError(f"days: {text.strip()!r} is not a day; use {', '.join(DAYS)}, ranges like mon-fri, "
                          "or daily")
    return DAYS.index(key)


def _time(value: object, key: str) -> time:
    match = _TIME.fullmatch(str(value).strip())
    if not match:
        raise WindowError(f"{key}: {str(value)!r} is not a time of day; use HH:MM (24-hour), e.g. \"22:00\", or "
                          "HH:MM:SS")
    return time(int(match[1]), int(match[2]), int(match[3] or 0))


def _zone(value: object) -> ZoneInfo:
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"time_zone: {str(value)!r} is not an IANA time zone, e.g. UTC or Europe/Berlin") from None


def next_opening(windows: Iterable[Window], when: datetime) -> datetime | None:
    """The earliest start among `windows` after `when`; None without windows."""
    starts = [window.next_start(when) for window in windows]
    return min(starts) if starts else None


def open_until(windows: Iterable[Window], when: datetime) -> datetime | None:
    """When maintenance must stop, if a window is open at `when` (the latest end among the open ones)."""
    ends = [end for window in windows if (end := window.open_at(when)) is not None]
    return max(ends) if ends else None
