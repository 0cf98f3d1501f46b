"""Cron schedules: which expressions are accepted, and which slot is due.

A schedule is a standard five-field cron expression (`0 */6 * * *`) or one of the `@hourly`-style
aliases, read in UTC. Six- and seven-field forms (seconds, years) are refused: a backup every
second is never what was meant. Slots are whole minutes, as in cron.
"""

from __future__ import annotations

import math

from croniter import CroniterError, croniter

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FORM = 'use five fields "minute hour day-of-month month day-of-week" (e.g. "0 */6 * * *" for every 6 hours) ' \
        "or one of " + ", ".join(ALIASES)


class ScheduleError(ValueError):
    """Not a schedule kubemaint accepts; the message says what is wrong and shows the form."""


def check_cron(expression: str) -> str:
    """The expression, normalised (single spaces), or ScheduleError."""
    normalised = " ".join(expression.split())
    fields = normalised.split(" ") if normalised else []
    if normalised.lower() in ALIASES:
        return normalised.lower()
    if len(fields) != 5:
        raise ScheduleError(f"{len(fields)} field{'s' if len(fields) != 1 else ''}: {_FORM}" if fields else
                            f"empty: {_FORM}")
    if not croniter.is_valid(normalised):
        raise ScheduleError(f"not a valid cron expression: {_FORM}")
    try:
        croniter(normalised, 0).get_next(float)
    except CroniterError:  # "0 0 31 2 *": valid field by field, but no such day
        raise ScheduleError("this expression never fires (no date matches it)") from None
    return normalised


def due_slot(cron: str, last_slot: float | None, now: float) -> float | None:
    """The latest slot of `cron` at or before `now` and after `last_slot` (epoch seconds, UTC), or None.

    Several slots missed in a row (the bot was down) give only the latest: one late backup, not a burst.
    """
    try:
        # croniter's get_prev is strictly before its start: start a second past `now` so a slot at
        # exactly `now` counts (slots are whole minutes, so nothing between is skipped).
        latest = croniter(cron, math.floor(now) + 1).get_prev(float)
    except CroniterError as error:
        raise ScheduleError(f"not a valid cron expression: {error}") from None
    if last_slot is not None and latest <= last_slot:
        return None
    return latest


def next_slot(cron: str, now: float) -> float:
    """The first slot after `now`: when the scheduler next has something to do."""
    return croniter(cron, now).get_next(float)
