"""One thread message per job, edited in place as the worker's events arrive.

Workers never talk to Slack: they append events to the Redis stream `kubemaint:events`.
The publisher here follows the stream, and edits a job's message from the job's current
record (worded by bot/contract/reports.py), at most once per interval per job and within a
shared budget (bot/chat/throttle.py).
The final state is never dropped: it waits for the throttle like any other edit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from redis import Redis

from bot.chat.throttle import EditThrottle
from bot.contract.reports import job_view, progress_text
from bot.engine.store import EVENTS_STREAM, decode_hash, get_job

log = structlog.get_logger("kubemaint.progress")
MESSAGE_TTL = 7 * 24 * 3600
MESSAGE_WAIT_SECONDS = 60.0  # how long events wait for their job's message to be posted


def _message_key(job_id: str) -> str:
    return f"kubemaint:job-message:{job_id}"


def remember_message(redis: Redis, job_id: str, channel: str, ts: str) -> None:
    redis.hset(_message_key(job_id), mapping={"channel": channel, "ts": ts})
    redis.expire(_message_key(job_id), MESSAGE_TTL)


def _message_of(redis: Redis, job_id: str) -> dict[str, str]:
    return decode_hash(redis.hgetall(_message_key(job_id)))


class ProgressPublisher:
    def __init__(self, redis: Redis, chat, throttle: EditThrottle, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.chat = chat
        self.throttle = throttle
        self.clock = clock
        self.wall_clock = wall_clock
        self.dirty: dict[str, float] = {}  # job id -> when it changed
        self.last_id = "$"

    def run(self, stop: threading.Event, *, idle: Callable[[], None] | None = None) -> None:
        """Follow the stream until `stop` is set; `idle()` runs about once a second (expiry sweeps)."""
        self.last_id = self._latest_id()
        next_idle = 0.0
        while not stop.is_set():
            try:
                self.poll(block_ms=200)
                if idle is not None and self.clock() >= next_idle:
                    idle()
                    next_idle = self.clock() + 1.0
            except Exception:  # a bad event or a Slack hiccup must not end progress for every job
                log.exception("progress.error")
                stop.wait(0.5)

    def _latest_id(self) -> str:
        latest = self.redis.xrevrange(EVENTS_STREAM, count=1)
        return latest[0][0].decode() if latest else "0-0"

    def poll(self, block_ms: int = 0) -> None:
        block = block_ms if not self.dirty else min(block_ms, 100)
        for _stream, entries in self.redis.xread({EVENTS_STREAM: self.last_id}, block=block or None) or []:
            for entry_id, fields in entries:
                self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                job = decode_hash(fields).get("job")
                if job:
                    self.dirty.setdefault(job, self.clock())
        self.flush()

    def flush(self) -> None:
        now = self.clock()
        for job_id in list(self.dirty):
            if self.throttle.wait_time(job_id, now) > 0:
                continue
            del self.dirty[job_id]
            self._edit(job_id, now)

    def _edit(self, job_id: str, now: float) -> None:
        message = _message_of(self.redis, job_id)
        record = get_job(self.redis, job_id)
        if record is None:
            return
        if not message.get("ts"):
            # The bot queues a job before it posts the job's message: try again shortly.
            if self.wall_clock() - record.spec.created_at < MESSAGE_WAIT_SECONDS:
                self.dirty.setdefault(job_id, now)
            return
        self.chat.update(message["channel"], message["ts"], progress_text(job_view(record, self.wall_clock())))
        self.throttle.record(job_id, now)
        if not record.active:
            self.throttle.forget(job_id)
