"""The audit trail: Redis stream round trip, time windows, `--since` parsing, JSON log lines."""

from __future__ import annotations

import json
import time

import pytest
from redis import Redis

from bot.domain.durations import DurationError, parse_duration
from bot.engine.audit import AUDIT_STREAM, audit, configure_logging, format_audit, read_audit

pytest_plugins = ["tests.redis_fixtures"]


def test_round_trip(r: Redis) -> None:
    entry_id = audit(r, "request", user="U1", text="drain node01", approvers=["U2", "U3"], ignored=None)
    entries = read_audit(r, 60)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["id"] == entry_id
    assert entry["event"] == "request" and entry["user"] == "U1" and entry["text"] == "drain node01"
    assert json.loads(entry["approvers"]) == ["U2", "U3"]
    assert "ignored" not in entry
    assert abs(float(entry["ts"]) - time.time()) < 5

    text = format_audit(entries)
    assert text.endswith('request        user=U1 text="drain node01" approvers="[\\"U2\\", \\"U3\\"]"')
    assert text[:10] == time.strftime("%Y-%m-%d", time.gmtime(float(entry["ts"])))
    assert format_audit([]) == "No audit records in that period."


def test_since_selects_by_stream_time(r: Redis) -> None:
    now = time.time()
    for age, name in [(2 * 3600, "old"), (10 * 60, "recent")]:
        r.xadd(AUDIT_STREAM, {"event": name, "ts": f"{now - age:.3f}"}, id=f"{int((now - age) * 1000)}-0")
    audit(r, "new")
    assert [e["event"] for e in read_audit(r, parse_duration("1h"))] == ["recent", "new"]
    assert [e["event"] for e in read_audit(r, parse_duration("1d"))] == ["old", "recent", "new"]
    assert [e["event"] for e in read_audit(r, parse_duration("5m"))] == ["new"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800), ("1h", 3600), ("2d", 172800), ("45s", 45), ("1w", 604800), ("1h30m", 5400), (" 2H ", 7200),
])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1", "1x", "-1h", "1.5h", "1h foo", "0m", "one hour"])
def test_parse_duration_rejects_bad_input_with_a_usage_hint(text: str) -> None:
    with pytest.raises(DurationError) as error:
        parse_duration(text)
    assert str(error.value).startswith(f'"{text}" is not a duration')
    assert "like 30m, 1h or 2d" in str(error.value)


def test_audit_also_writes_a_json_log_line(r: Redis, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    audit(r, "decision", job="j-1a2b3c4d", by="U2", approved=True)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "decision" and line["audit"] is True
    assert line["job"] == "j-1a2b3c4d" and line["by"] == "U2" and line["approved"] is True
    assert line["level"] == "info" and line["timestamp"].endswith("Z")
