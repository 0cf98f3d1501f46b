"""One thread message per job, edited in place as the worker's events arrive.

Workers never talk to Slack: they append events to the Redis stream `kubemaint:events`.
The publisher here follows the stream, and edits a job's message from the job's current
record (worded by bot/contract/reports.py), at most once per interval per job and within a
shared budget (bot/chat/throttle.py).
The final state is never dropped: it waits for the throttle like any other edit.

A paused or scheduled job is not over: its message is followed like a running job's, kept at least as long
as the job waits (a job scheduled for next week is edited when it starts), and edited again when it runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from redis import Redis
from redis.exceptions import RedisError

from bot.chat.outbox import posted_ts
from bot.chat.throttle import EditThrottle
from bot.contract.reports import JobView, job_view, lost_job_text, progress_text, waiting_for_worker
from bot.engine import redis_state
from bot.engine.audit import audit
from bot.engine.ending import EndKind
from bot.engine.store import (
    ACTIVE_JOBS,
    EVENTS_STREAM,
    FINISHED_JOB_TTL,
    SCHEDULED_JOBS,
    JobRecord,
    JobState,
    decode_hash,
    get_job,
)

log = structlog.get_logger("kubemaint.progress")
MESSAGE_TTL = 7 * 24 * 3600
WAITING_STATES = frozenset({JobState.PAUSED, JobState.SCHEDULED})  # not over: the job goes on later
POSITION = "kubemaint:progress:position"  # the last event whose job's message is up to date
MESSAGE_WAIT_SECONDS = 60.0  # how long events wait for their job's message to be posted
# After Redis lost its data: how long a worker has to write back the job it was running before the
# job counts as forgotten (a worker waits for Redis, then writes at once).
LOSS_GRACE_SECONDS = 10.0


def _message_key(job_id: str) -> str:
    return f"kubemaint:job-message:{job_id}"


def remember_message(redis: Redis, job_id: str, channel: str, ts: str) -> None:
    redis.hset(_message_key(job_id), mapping={"channel": channel, "ts": ts})
    redis.hdel(_message_key(job_id), "quiet")  # a quiet job given a message (a failed scheduled one) is shown again
    redis.expire(_message_key(job_id), MESSAGE_TTL)


def quiet_job(redis: Redis, job_id: str, channel: str) -> None:
    """Mark a job that has no progress message and gets none: a scheduled backup, whose channel hears only
    of a failure (bot/chat/schedule.py). Without the mark the publisher would wait a minute for a message."""
    redis.hset(_message_key(job_id), mapping={"channel": channel, "quiet": "1"})
    redis.expire(_message_key(job_id), MESSAGE_TTL)


def _message_of(redis: Redis, job_id: str) -> dict[str, str]:
    return decode_hash(redis.hgetall(_message_key(job_id)))


@dataclass
class Followed:
    """What the publisher remembers of a job it is showing, so that it can still speak in the job's
    thread if Redis forgets the job (restarted without its data)."""

    channel: str
    ts: str  # the job's message: Slack's ts once known (an outbox ref until then)
    thread_ts: str | None  # where the request was made
    view: JobView  # as last shown


class ProgressPublisher:
    """Follows the job event stream and edits each job's message (throttled). About once a second it
    also looks for what no event announces: a running job whose worker stopped beating, and a Redis
    that lost its data (the epoch marker), after which it tells each affected thread what is true now."""

    def __init__(self, redis: Redis, chat, throttle: EditThrottle, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, *,
                 describe: Callable[[str], tuple[list[str], str | None]] | None = None,
                 loss_grace: float = LOSS_GRACE_SECONDS) -> None:
        self.redis = redis
        self.chat = chat
        self.throttle = throttle
        self.clock = clock
        self.wall_clock = wall_clock
        self.describe = describe  # command text -> (what is true now, the command that undoes it)
        self.loss_grace = loss_grace
        self.dirty: dict[str, float] = {}  # job id -> when it changed
        self.last_id = "$"
        self._saved_id = ""
        self.followed: dict[str, Followed] = {}
        self.epoch = ""
        self.lost_at: float | None = None  # when this publisher found Redis emptied
        self.told_lost: set[str] = set()
        self.stalled: set[str] = set()  # running jobs already shown as waiting for a worker

    def run(self, stop: threading.Event, *, idle: Callable[[], None] | None = None) -> None:
        """Follow the stream until `stop` is set; `idle()` runs about once a second (expiry sweeps)."""
        next_idle, redis_down = 0.0, False
        while not stop.is_set():
            try:
                if not self.epoch:
                    self.start()
                self.poll(block_ms=200)
                if self.clock() >= next_idle:
                    next_idle = self.clock() + 1.0
                    self.watch()
                    if idle is not None:
                        idle()
                redis_down = False
            except RedisError as error:  # said once per outage, not every half second
                if not redis_down:
                    log.warning("progress.redis_unreachable", error=str(error))
                redis_down = True
                stop.wait(0.5)
            except Exception:  # a bad event or a Slack hiccup must not end progress for every job
                log.exception("progress.error")
                stop.wait(0.5)

    def start(self) -> None:
        """Go on from the last event a publisher handled, so that what happened while the bot was down
        (a job that finished, say) still reaches its thread; and look at every unfinished job once."""
        saved = self.redis.get(POSITION)
        self.last_id = saved.decode() if saved else self._latest_id()
        self.epoch = redis_state.epoch(self.redis)
        for job_id in [*self.redis.smembers(ACTIVE_JOBS), *self.redis.zrange(SCHEDULED_JOBS, 0, -1)]:
            self.dirty.setdefault(job_id.decode() if isinstance(job_id, bytes) else job_id, self.clock())

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
        if self.last_id != self._saved_id and not self.dirty:  # everything up to here is shown (or queued)
            self.redis.set(POSITION, self.last_id)
            self._saved_id = self.last_id

    def flush(self) -> None:
        now = self.clock()
        for job_id in list(self.dirty):
            if self.throttle.wait_time(job_id, now) > 0:
                continue
            del self.dirty[job_id]
            self._edit(job_id, now)

    def watch(self) -> None:
        """What no event announces: stalled jobs, and a Redis that lost its data."""
        if self.epoch and redis_state.lost_since(self.redis, self.epoch):
            self.epoch = redis_state.epoch(self.redis)
            self.lost_at = self.wall_clock()
            log.error("redis.data_lost", jobs_followed=len(self.followed))
            audit(self.redis, "redis.data_lost", jobs_followed=len(self.followed))
        if self.lost_at is not None and self.wall_clock() - self.lost_at >= self.loss_grace:
            self._tell_forgotten_jobs()
        now = self.wall_clock()
        for job_id in list(self.followed):
            record = get_job(self.redis, job_id)
            stalled = record is not None and bool(waiting_for_worker(record, now))
            if stalled and job_id not in self.stalled:
                self.stalled.add(job_id)
                self.dirty.setdefault(job_id, self.clock())
            elif not stalled:
                self.stalled.discard(job_id)

    def _edit(self, job_id: str, now: float) -> None:
        record = get_job(self.redis, job_id)
        if record is None:
            return  # expired, or Redis lost it: `watch` tells the thread
        message = _message_of(self.redis, job_id)
        if message.get("quiet"):
            return
        followed = self.followed.get(job_id)
        if not message.get("ts"):
            if followed is not None:  # Redis lost the message's record, not us
                message = {"channel": followed.channel, "ts": followed.ts}
                remember_message(self.redis, job_id, followed.channel, followed.ts)
            elif record.ending is not None and record.ending.kind == EndKind.STATE_LOST:
                ts = self.chat.post(record.spec.channel, f"Job `{job_id}` · `{record.spec.command_text}`",
                                    thread_ts=record.spec.thread_ts if _is_slack_ts(record.spec.thread_ts) else None)
                message = {"channel": record.spec.channel, "ts": ts}
                remember_message(self.redis, job_id, record.spec.channel, ts)
            else:
                # The bot queues a job before it posts the job's message: try again shortly.
                if self.wall_clock() - record.spec.created_at < MESSAGE_WAIT_SECONDS:
                    self.dirty.setdefault(job_id, now)
                return
        view = job_view(record, self.wall_clock())
        if self.chat.update(message["channel"], message["ts"], progress_text(view)) is False:
            # Its message is recorded before it is queued, and the job may run ahead: try again shortly.
            if self.wall_clock() - record.spec.created_at < MESSAGE_WAIT_SECONDS:
                self.dirty.setdefault(job_id, now)
            return
        self.throttle.record(job_id, now)
        if record.state in WAITING_STATES:
            self._keep_message(job_id, record)
        if record.active or record.state in WAITING_STATES:
            known = posted_ts(self.redis, message["ts"]) or (followed.ts if followed else message["ts"])
            self.followed[job_id] = Followed(message["channel"], known, record.spec.thread_ts, view)
        else:
            self.followed.pop(job_id, None)
            self.throttle.forget(job_id)
        if record.ending is not None and record.ending.kind == EndKind.STATE_LOST and job_id not in self.told_lost:
            self._tell(job_id, record.spec.command_text, message["channel"], record.spec.thread_ts, kept=True)

    def _keep_message(self, job_id: str, record: JobRecord) -> None:
        """A waiting job's message outlives the wait: a scheduled one's until a week after its start, a paused
        one's as long as the job itself can be resumed."""
        wall = self.wall_clock()
        if record.state == JobState.SCHEDULED and record.start_at is not None:
            ttl = max(0.0, record.start_at - wall) + MESSAGE_TTL
        else:
            ttl = FINISHED_JOB_TTL
        self.redis.expire(_message_key(job_id), int(max(ttl, MESSAGE_TTL)))

    def _tell_forgotten_jobs(self) -> None:
        """After the grace a worker had to write its job back: the jobs Redis forgot for good."""
        self.lost_at = None
        for job_id, followed in list(self.followed.items()):
            if get_job(self.redis, job_id) is not None:
                continue  # written back by its worker: the normal edits tell it
            self.followed.pop(job_id)
            view = replace(followed.view, state="halted", waiting="",
                           result="kubemaint's Redis lost its data and, with it, this job (see below)")
            self.chat.update(followed.channel, followed.ts, progress_text(view))
            self._tell(job_id, view.command_text, followed.channel, followed.thread_ts, kept=False)

    def _tell(self, job_id: str, command: str, channel: str, thread_ts: str | None, *, kept: bool) -> None:
        self.told_lost.add(job_id)
        now_lines, undo = self.describe(command) if self.describe else ([], None)
        text = lost_job_text(job_id, command, kept=kept, now=now_lines, undo=undo)
        self.chat.post(channel, text, thread_ts=thread_ts if thread_ts else None)
        audit(self.redis, "job.lost_reported", job=job_id, command=command, kept=kept)


def _is_slack_ts(value: str | None) -> bool:
    return bool(value) and not value.startswith("m-")
