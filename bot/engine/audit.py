"""The audit trail: every request, decision, step and result, in a Redis stream and as a JSON log line.

The stream `kubemaint:audit` answers `kubemaint audit --since 1h`: its entry ids are millisecond
timestamps, so a time window is one XRANGE. The JSON log lines are the durable copy (ship them with the
rest of the logs); the stream is capped at about AUDIT_MAXLEN entries.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from redis import Redis

AUDIT_STREAM = "kubemaint:audit"
AUDIT_MAXLEN = 100_000

_configured = False


class _StderrLoggerFactory:
    """Resolves sys.stderr at each logger creation (so tests that swap it see the lines); stdout stays free
    for command output such as `kubemaint audit`."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "INFO") -> None:
    """JSON log lines on stderr for structlog loggers. Safe to call more than once: only the first call acts."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _configured = True


def _stream_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def audit(redis: Redis, event: str, **fields: Any) -> str:
    """Record `event` (e.g. "request", "decision", "job.step", "job.result") with its fields; returns the entry id.

    None values are left out; non-string values are stored as JSON.
    """
    present = {k: v for k, v in fields.items() if v is not None}
    entry = {"event": event, "ts": f"{time.time():.3f}"}
    entry.update({k: _stream_value(v) for k, v in present.items() if k not in entry})
    entry_id = redis.xadd(AUDIT_STREAM, entry, maxlen=AUDIT_MAXLEN, approximate=True)
    structlog.get_logger("kubemaint.audit").info(event, audit=True, **present)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_audit(redis: Redis, since_seconds: float, *, now: float | None = None, limit: int | None = None
               ) -> list[dict[str, str]]:
    """Audit entries of the last `since_seconds`, oldest first; each has its stream `id` and fields."""
    start_ms = max(0, int(((now if now is not None else time.time()) - since_seconds) * 1000))
    entries = redis.xrange(AUDIT_STREAM, min=f"{start_ms}-0", max="+", count=limit)
    records = []
    for entry_id, fields in entries:
        record = {"id": _decode(entry_id)}
        record.update({_decode(k): _decode(v) for k, v in fields.items()})
        records.append(record)
    return records


def _quote(value: str) -> str:
    return json.dumps(value) if (not value or any(c.isspace() or c in "\"=" for c in value)) else value


def format_audit(entries: Sequence[Mapping[str, str]]) -> str:
    """One line per entry: UTC time, event, then key=value pairs in recorded order."""
    if not entries:
        return "No audit records in that period."
    lines = []
    for entry in entries:
        ts = float(entry.get("ts") or int(entry.get("id", "0-0").split("-")[0]) / 1000)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"
        pairs = " ".join(f"{k}={_quote(v)}" for k, v in entry.items() if k not in ("id", "event", "ts"))
        lines.append(f"{when}  {entry.get('event', '?'):<14} {pairs}".rstrip())
    return "\n".join(lines)
