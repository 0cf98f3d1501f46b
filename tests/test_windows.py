"""Maintenance windows: open or not at a moment, when the next one opens, overnight windows, the
daylight-saving nights, and every bad input refused with what is expected."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.windows import WindowError, next_opening, open_until, parse_days, parse_window

BERLIN_NIGHTS = {"days": "mon-fri", "start": "22:00", "end": "04:00", "time_zone": "Europe/Berlin"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_overnight_window_is_open_from_its_start_day_into_the_next_morning():
    window = parse_window(BERLIN_NIGHTS)
    # 2026-12-04 is a Friday; Berlin is UTC+1 in December.
    assert window.open_at(utc("2026-12-04 20:59")) is None
    assert window.open_at(utc("2026-12-04 21:00")) == utc("2026-12-05 03:00")
    assert window.open_at(utc("2026-12-05 02:59")) == utc("2026-12-05 03:00"), "Friday's window runs into Saturday"
    assert window.open_at(utc("2026-12-05 03:00")) is None
    assert window.open_at(utc("2026-12-05 21:30")) is None, "no window starts on Saturday"


def test_the_next_window_after_friday_night_is_monday_night():
    window = parse_window(BERLIN_NIGHTS)
    assert window.next_start(utc("2026-12-05 01:00")) == utc("2026-12-07 21:00")
    assert window.next_start(utc("2026-12-07 21:00")) == utc("2026-12-08 21:00"), "the one open now is not next"


def test_a_window_keeps_its_local_hours_across_daylight_saving():
    sunday = parse_window({"days": "sun", "start": "01:00", "end": "05:00", "time_zone": "Europe/Berlin"})
    # 2026-03-29: clocks go from 02:00 to 03:00 in Berlin; the window is 01:00 CET to 05:00 CEST, 3 hours.
    assert sunday.open_at(utc("2026-03-29 00:00")) == utc("2026-03-29 03:00")
    assert sunday.next_start(utc("2026-03-28 12:00")) == utc("2026-03-29 00:00")


def test_several_windows_the_earliest_opening_and_the_latest_end():
    windows = [parse_window(BERLIN_NIGHTS),
               parse_window({"days": "sat,sun", "start": "10:00", "end": "18:00", "time_zone": "UTC"})]
    assert next_opening(windows, utc("2026-12-05 04:00")) == utc("2026-12-05 10:00")
    assert open_until(windows, utc("2026-12-05 12:00")) == utc("2026-12-05 18:00")
    assert open_until(windows, utc("2026-12-05 19:00")) is None
    assert next_opening([], utc("2026-12-05 04:00")) is None


@pytest.mark.parametrize(("days", "expected"), [
    ("mon-fri", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), (["Sat", "sunday"], {5, 6}), ("daily", set(range(7))),
    ("fri-mon", {4, 5, 6, 0}),
])
def test_days_as_people_write_them(days, expected):
    assert parse_days(days) == frozenset(expected)


@pytest.mark.parametrize(("change", "message"), [
    ({"days": "funday"}, "days: 'funday' is not a day"),
    ({"days": ""}, "days: '' is not a day"),
    ({"start": "25:00"}, "start: '25:00' is not a time of day; use HH:MM"),
    ({"end": "4pm"}, "end: '4pm' is not a time of day"),
    ({"end": "22:00"}, "start and end are both 22:00: a window needs a length"),
    ({"time_zone": "Mars/Olympus"}, "time_zone: 'Mars/Olympus' is not an IANA time zone"),
    ({"time_zone": "../../etc/passwd"}, "is not an IANA time zone"),
    ({"length": "1h"}, "unknown key length; a window has days, start, end, time_zone"),
])
def test_bad_windows_are_refused_saying_what_is_expected(change, message):
    with pytest.raises(WindowError) as caught:
        parse_window({**BERLIN_NIGHTS, **change})
    assert message in str(caught.value)


def test_a_window_without_its_keys_says_which_are_missing():
    with pytest.raises(WindowError) as caught:
        parse_window({"days": "mon"})
    assert str(caught.value).startswith("missing start, end, time_zone; e.g. {days: mon-fri")
