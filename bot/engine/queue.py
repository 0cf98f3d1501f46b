"""Submitting, pausing, cancelling and resuming jobs: what the bot calls; and starting scheduled jobs when
their time comes: what every worker's sweeper calls.

Every call here is one optimistic transaction (WATCH the job, check its state, MULTI, write, EXEC), and the
RQ enqueue rides in the same MULTI, so a job's state and its place in the RQ queue never disagree.

Jobs that start later (`submit(..., start_at=ts)`, or a step that raised `JobPaused(until=ts)`) wait in
the state `scheduled`, in the sorted set `kubemaint:jobs:scheduled` scored by start_at. The sweeper thread
of every worker looks at its head at least every `Timings.schedule_poll` seconds (0.5 s) and sleeps until
the head's start_at when that is sooner; `start_due_jobs` then moves each due job to `queued` and into the
RQ queue in one WATCH/MULTI transaction on the job (concurrent sweepers: exactly one wins, the others see
`queued` and leave it), so the job's state, its schedule entry and its place in the queue change together.
The decision compares start_at with the worker's time.time() (as the bot's clock set it), never Redis' TIME.

Why not RQ's scheduler (`Queue.enqueue_at`, `ScheduledJobRegistry`, `Worker(with_scheduler=True)`), as of
rq 3.0: enqueue_at can ride our MULTI (schedule_job takes a pipeline), but the move to the queue cannot.
RQ's scheduler reads the due ids, then enqueues them in a pipeline of its own that knows nothing of our
job hash (its source says so: "TODO: try to use Lua script to make get_jobs_to_schedule() and
remove_jobs() atomic"), so the job would sit in the queue while its state still says scheduled, and a
`cancel` between its read and its write would still be enqueued. Its times are whole seconds (scores and
`current_timestamp()` are `calendar.timegm(...)`): a job can be queued up to a second early, plus a poll
of 1 s late. And only one worker per queue runs the scheduler, under a lock of 61 s; when that worker is
killed, the others try for the lock only in their maintenance pass, every 600 s by default: a scheduled
job would be up to 10 minutes late after a worker crash. The sweepers already run in every worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError
from rq import Queue

from bot.domain.ids import is_job_id
from bot.engine.audit import audit
from bot.engine.ending import Ending, EndKind
from bot.engine.model import JobSpec
from bot.engine.store import (
    ACTIVE_JOBS,
    EVENTS_MAXLEN,
    EVENTS_STREAM,
    JOBS_INDEX,
    JOBS_INDEX_MAX,
    PAUSE_FIELDS,
    SCHEDULED_JOBS,
    JobRecord,
    JobState,
    Ops,
    StepState,
    data_key,
    event_fields,
    finished_ops,
    get_job,
    job_key,
    steps_key,
    text,
)

QUEUE_NAME = "kubemaint"
RUN_JOB = "bot.engine.runner.run_job"  # by name: the bot never imports the runner
DEFAULT_JOB_TIMEOUT = "2h"  # RQ kills a run after this; the job can then be resumed
RESULT_TTL = 24 * 3600


class ScheduleError(RuntimeError):
    """Due jobs that could not be started (the others were): the sweeper logs it and tries again later."""


class ChangeKind(StrEnum):
    NOT_A_JOB_ID = "not_a_job_id"
    UNKNOWN = "unknown"  # no such job, or it expired
    CANCEL_REQUESTED = "cancel_requested"  # running: it stops at its next safe point
    ALREADY_REQUESTED = "already_requested"  # running, and someone asked before
    CANCELLED = "cancelled"  # queued, scheduled, paused, failed or halted: cancelled at once (see the ending)
    ALREADY_OVER = "already_over"  # succeeded or cancelled: nothing to cancel
    NOT_RESUMABLE = "not_resumable"  # only failed, halted, paused and scheduled jobs resume
    RESUMED = "resumed"  # queued again (a scheduled job: queued now instead of at its start_at)
    PAUSE_REQUESTED = "pause_requested"  # running: it pauses at its next safe point
    PAUSE_ALREADY_REQUESTED = "pause_already_requested"  # running, and someone asked before
    PAUSED = "paused"  # queued: paused at once, before it started
    NOT_PAUSABLE = "not_pausable"  # only queued and running jobs pause (and not one that is being cancelled)
    PAUSE_WITHDRAWN = "pause_withdrawn"  # `resume` of a running job asked to pause: it goes on


@dataclass(frozen=True)
class Change:
    """The answer to `cancel` / `pause` / `resume`, as data; bot/contract/reports.py words it for the chat."""

    job_id: str
    accepted: bool
    kind: ChangeKind
    state: str | None = None  # the job's state after the call
    state_before: str | None = None
    record: JobRecord | None = None  # the job (after the change, when one was made)


def check_client(redis: Redis) -> None:
    if redis.get_connection_kwargs().get("decode_responses"):
        raise ValueError("RQ needs a Redis client without decode_responses (use Redis.from_url(url))")


def enqueue_run(pipe: Pipeline, redis: Redis, job_id: str, *, queue_name: str = QUEUE_NAME,
                job_timeout: str | int = DEFAULT_JOB_TIMEOUT, description: str = "") -> None:
    """Queue `run_job(job_id)` on `pipe` (already in MULTI). The RQ job id is the job id, and any stale copy
    of it is removed from the queue first, so the queue holds each job at most once."""
    queue = Queue(queue_name, connection=redis)
    pipe.lrem(queue.key, 0, job_id)
    pipe.zrem(queue.failed_job_registry.key, job_id)  # a resumed run is not a failed RQ job any more
    queue.enqueue_call(RUN_JOB, args=(job_id,), job_id=job_id, timeout=job_timeout, result_ttl=RESULT_TTL,
                       description=description or job_id, pipeline=pipe)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def submit(redis: Redis, spec: JobSpec, *, queue_name: str = QUEUE_NAME,
           job_timeout: str | int = DEFAULT_JOB_TIMEOUT, start_at: float | None = None) -> str:
    """Store the spec and queue the job; returns its id. Submitting the same id again does nothing.

    With `start_at` (a time.time() timestamp) still to come, the job is stored `scheduled` instead, and a
    worker's sweeper queues it at that time (`start_due_jobs`); `resume` starts it sooner, `cancel` drops it.
    """
    check_client(redis)
    key = job_key(spec.id)
    later = False
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    pipe.reset()
                    return spec.id
                now = time.time()
                later = start_at is not None and start_at > now
                pipe.multi()
                fields = {"spec": spec.to_json(), "created_at": spec.created_at, "updated_at": now,
                          "queue": queue_name}
                if later:
                    ops = Ops().hset(key, {**fields, "state": JobState.SCHEDULED, "start_at": start_at})
                    ops.event(event_fields(spec.id, JobState.SCHEDULED,
                                           detail=f"scheduled: {spec.command_text}, starts at {_utc(start_at)}"))
                    ops.zadd(SCHEDULED_JOBS, spec.id, start_at)
                else:
                    ops = Ops().hset(key, {**fields, "state": JobState.QUEUED, "queued_at": now})
                    ops.event(event_fields(spec.id, JobState.QUEUED, detail=f"queued: {spec.command_text}"))
                ops.apply_to(pipe)
                pipe.zadd(JOBS_INDEX, {spec.id: spec.created_at})
                pipe.zremrangebyrank(JOBS_INDEX, 0, -(JOBS_INDEX_MAX + 1))
                if not later:
                    pipe.sadd(ACTIVE_JOBS, spec.id)
                    enqueue_run(pipe, redis, spec.id, queue_name=queue_name, job_timeout=job_timeout,
                                description=spec.command_text)
                pipe.execute()
                break
            except WatchError:
                continue
    audit(redis, "job.scheduled" if later else "job.queued", job=spec.id, verb=spec.verb,
          command=spec.command_text, requester=spec.requester, approvers=spec.approvers, locks=spec.locks,
          steps=spec.step_names(), **({"start_at": start_at} if later else {}))
    return spec.id


def start_due_jobs(redis: Redis, *, now: float | None = None, limit: int = 100) -> list[str]:
    """Queue the scheduled jobs whose start_at has come (by this process's clock); returns their ids.

    Every worker's sweeper calls it; each job is moved by exactly one of them (see the module's doc)."""
    check_client(redis)
    now = time.time() if now is None else now
    started, problems = [], []
    for raw_id in redis.zrangebyscore(SCHEDULED_JOBS, "-inf", now, start=0, num=limit):
        job_id = text(raw_id)
        try:
            if _start_scheduled(redis, job_id, now):
                started.append(job_id)
        except RedisError:
            raise
        except Exception as exc:  # one unreadable job must not hold up the others due with it
            problems.append(f"{job_id}: {type(exc).__name__}: {exc}")
    if problems:
        raise ScheduleError(f"could not start {len(problems)} due job(s): {'; '.join(problems)}")
    return started


def next_start(redis: Redis) -> float | None:
    """The earliest start_at in the schedule, if any (the sweeper sleeps until then at most)."""
    head = redis.zrange(SCHEDULED_JOBS, 0, 0, withscores=True)
    return float(head[0][1]) if head else None


def _start_scheduled(redis: Redis, job_id: str, now: float) -> bool:
    key = job_key(job_id)
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                record = get_job(redis, job_id)
                if record is None or record.state != JobState.SCHEDULED:
                    # Left behind by a job that expired: every other change of state takes it out itself.
                    # Under the WATCH, so a job scheduled again meanwhile keeps its entry.
                    pipe.multi()
                    pipe.zrem(SCHEDULED_JOBS, job_id)
                    pipe.execute()
                    return False
                if record.start_at is not None and record.start_at > now:
                    # Not due by the job's own start_at: its entry's score must agree, or the sweepers
                    # would look at it again and again.
                    pipe.multi()
                    pipe.zadd(SCHEDULED_JOBS, {job_id: record.start_at})
                    pipe.execute()
                    return False
                pausing = record.ending is not None and record.ending.kind == EndKind.PAUSED
                detail = ("continuing as planned after the pause" if pausing
                          else f"start time {_utc(record.start_at or now)} reached")
                pipe.multi()
                pipe.zrem(SCHEDULED_JOBS, job_id)
                pipe.hdel(key, "start_at", "finished_at", "ending", *PAUSE_FIELDS)
                pipe.hset(key, mapping={"state": JobState.QUEUED, "queued_at": now, "updated_at": now,
                                        "recoveries": 0})
                pipe.xadd(EVENTS_STREAM, event_fields(job_id, JobState.QUEUED, detail=detail),
                          maxlen=EVENTS_MAXLEN, approximate=True)
                pipe.sadd(ACTIVE_JOBS, job_id)
                enqueue_run(pipe, redis, job_id, queue_name=record.queue or QUEUE_NAME,
                            description=record.spec.command_text)
                pipe.execute()
                break
            except WatchError:
                continue
    audit(redis, "job.started_as_scheduled", job=job_id, start_at=record.start_at, late_by=round(now - (
        record.start_at or now), 3))
    return True


def cancel(redis: Redis, job_id: str, by: str) -> Change:
    """Ask a job to stop.

    queued / scheduled -> cancelled at once (a scheduled one leaves the schedule). running -> a flag the
    runner honours at the next safe point (between steps, or inside a long step that checks
    `ctx.cancelled()`). failed / halted / paused -> aborted: cancelled for good, so it cannot be resumed.
    succeeded / cancelled -> refused.
    """
    change = _transact(redis, job_id, lambda pipe, record: _cancel_in(pipe, redis, record, by))
    if change.accepted:
        audit(redis, "job.cancel", job=job_id, by=by, state_before=change.state_before, result=change.state)
    return change


def _transact(redis: Redis, job_id: str, change: Callable[[Pipeline, JobRecord], Change]) -> Change:
    """Run `change(pipe, record)` on the job under WATCH, retrying if the job changed meanwhile.

    `change` queues its writes after `pipe.multi()` when it accepts; otherwise nothing is written.
    """
    if not is_job_id(job_id):
        return Change(job_id, False, ChangeKind.NOT_A_JOB_ID)
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(job_key(job_id))
                record = get_job(redis, job_id)
                if record is None:
                    pipe.reset()
                    return Change(job_id, False, ChangeKind.UNKNOWN)
                result = change(pipe, record)
                if result.accepted and pipe.explicit_transaction:
                    pipe.execute()
                else:
                    pipe.reset()
                return result
            except WatchError:
                continue


def _cancel_in(pipe: Pipeline, redis: Redis, record: JobRecord, by: str) -> Change:
    job_id, now, before = record.id, time.time(), str(record.state)
    state = record.state
    if state == JobState.RUNNING:
        if record.cancel_requested_by:
            return Change(job_id, True, ChangeKind.ALREADY_REQUESTED, JobState.RUNNING, before, record)
        pipe.multi()
        ops = Ops().hset(job_key(job_id), {"cancel_requested_by": by, "cancel_requested_at": now, "updated_at": now})
        ops.event(event_fields(job_id, JobState.RUNNING, record.current_step, "",
                               f"cancel requested by {by}: stopping at the next safe point"))
        ops.apply_to(pipe)
        return Change(job_id, True, ChangeKind.CANCEL_REQUESTED, JobState.RUNNING, before, record)
    if state in (JobState.QUEUED, JobState.SCHEDULED, JobState.FAILED, JobState.HALTED, JobState.PAUSED):
        not_done = record.steps_not_done()
        if state in (JobState.QUEUED, JobState.SCHEDULED):
            ending = Ending(EndKind.CANCELLED_QUEUED, by=by)
        else:
            ending = Ending(EndKind.ABORTED, by=by, was=str(state))
        pipe.multi()
        ops = Ops()
        for step in not_done:
            step.state, step.finished_at = StepState.SKIPPED, step.finished_at or now
            step.detail = step.detail or "skipped: job cancelled"
            ops.hset(steps_key(job_id), {step.name: step.to_json()})
            ops.event(event_fields(job_id, JobState.CANCELLED, step.name, StepState.SKIPPED, step.detail))
        ops.hset(job_key(job_id), {"ending": ending.to_json(), "cancel_requested_by": by, "cancel_requested_at": now})
        finished_ops(ops, job_id, JobState.CANCELLED, now)
        ops.event(event_fields(job_id, JobState.CANCELLED, detail=str(ending.kind)))
        ops.apply_to(pipe)
        pipe.lrem(Queue(record.queue or QUEUE_NAME, connection=redis).key, 0, job_id)
        pipe.zrem(SCHEDULED_JOBS, job_id)
        record.state, record.ending, record.finished_at = JobState.CANCELLED, ending, now
        return Change(job_id, True, ChangeKind.CANCELLED, JobState.CANCELLED, before, record)
    return Change(job_id, False, ChangeKind.ALREADY_OVER, str(state), before, record)


def pause(redis: Redis, job_id: str, by: str) -> Change:
    """Ask a job to pause.

    running -> a flag the runner honours at the next safe point between steps (or inside a long step that
    checks `ctx.pause_requested()` and raises `JobPaused`): the job becomes `paused`, the interrupted step
    pending with its checkpoint, the locks released. queued -> paused at once, before it starts. Anything
    else (or a running job already being cancelled) -> refused; `resume` continues a paused job.
    """
    change = _transact(redis, job_id, lambda pipe, record: _pause_in(pipe, redis, record, by))
    if change.accepted and change.kind != ChangeKind.PAUSE_ALREADY_REQUESTED:
        audit(redis, "job.pause", job=job_id, by=by, state_before=change.state_before, result=change.state)
    return change


def _pause_in(pipe: Pipeline, redis: Redis, record: JobRecord, by: str) -> Change:
    job_id, now, before = record.id, time.time(), str(record.state)
    if record.state == JobState.RUNNING and not record.cancel_requested_by:
        if record.pause_requested_by:
            return Change(job_id, True, ChangeKind.PAUSE_ALREADY_REQUESTED, JobState.RUNNING, before, record)
        pipe.multi()
        ops = Ops().hset(job_key(job_id), {"pause_requested_by": by, "pause_requested_at": now, "updated_at": now})
        ops.event(event_fields(job_id, JobState.RUNNING, record.current_step, "",
                               f"pause requested by {by}: pausing at the next safe point"))
        ops.apply_to(pipe)
        record.pause_requested_by, record.pause_requested_at = by, now
        return Change(job_id, True, ChangeKind.PAUSE_REQUESTED, JobState.RUNNING, before, record)
    if record.state == JobState.QUEUED:
        next_step = next((s for s in record.steps if s.state != StepState.DONE), record.steps[0])
        ending = Ending(EndKind.PAUSED, step=next_step.name, by=by)
        pipe.multi()
        ops = Ops()
        for step in record.steps_in(StepState.RUNNING):  # left running by a run that died: it waits again
            step.state, step.detail = StepState.PENDING, "paused before it ran again (its checkpoint is kept)"
            ops.hset(steps_key(job_id), {step.name: step.to_json()})
            ops.event(event_fields(job_id, JobState.PAUSED, step.name, StepState.PENDING, step.detail))
        ops.hset(job_key(job_id), {"ending": ending.to_json(), "current_step": ""})
        finished_ops(ops, job_id, JobState.PAUSED, now)
        ops.event(event_fields(job_id, JobState.PAUSED, detail=str(ending.kind)))
        ops.apply_to(pipe)
        pipe.lrem(Queue(record.queue or QUEUE_NAME, connection=redis).key, 0, job_id)
        record.state, record.ending, record.finished_at = JobState.PAUSED, ending, now
        return Change(job_id, True, ChangeKind.PAUSED, JobState.PAUSED, before, record)
    return Change(job_id, False, ChangeKind.NOT_PAUSABLE, before, before, record)


def resume(redis: Redis, job_id: str, by: str, *, queue_name: str | None = None,
           job_timeout: str | int = DEFAULT_JOB_TIMEOUT) -> Change:
    """Run a failed, halted or paused job again: done steps are skipped, the first unfinished step runs again
    (from its checkpoint). A scheduled job is queued now instead of at its start_at."""
    check_client(redis)

    def change(pipe: Pipeline, record: JobRecord) -> Change:
        before = str(record.state)
        if record.state == JobState.RUNNING and record.pause_requested_by and not record.cancel_requested_by:
            # Changed one's mind before the safe point came: the run reads the flag again and goes on.
            pipe.multi()
            pipe.hdel(job_key(job_id), *PAUSE_FIELDS)
            pipe.xadd(EVENTS_STREAM, event_fields(job_id, JobState.RUNNING, record.current_step, "",
                                                  f"pause withdrawn by {by}"), maxlen=EVENTS_MAXLEN, approximate=True)
            return Change(job_id, True, ChangeKind.PAUSE_WITHDRAWN, JobState.RUNNING, before, record)
        if record.state not in (JobState.FAILED, JobState.HALTED, JobState.PAUSED, JobState.SCHEDULED):
            return Change(job_id, False, ChangeKind.NOT_RESUMABLE, before, before, record)
        now = time.time()
        key = job_key(job_id)
        pipe.multi()
        for k in (key, steps_key(job_id), data_key(job_id)):
            pipe.persist(k)
        pipe.zrem(SCHEDULED_JOBS, job_id)
        pipe.hdel(key, "cancel_requested_by", "cancel_requested_at", "finished_at", "ending", "start_at",
                  *PAUSE_FIELDS)
        pipe.hset(key, mapping={"state": JobState.QUEUED, "queued_at": now, "updated_at": now, "recoveries": 0})
        pipe.xadd(EVENTS_STREAM, event_fields(job_id, JobState.QUEUED, detail=f"resumed by {by}"),
                  maxlen=EVENTS_MAXLEN, approximate=True)
        pipe.sadd(ACTIVE_JOBS, job_id)
        enqueue_run(pipe, redis, job_id, queue_name=queue_name or record.queue or QUEUE_NAME,
                    job_timeout=job_timeout, description=record.spec.command_text)
        return Change(job_id, True, ChangeKind.RESUMED, JobState.QUEUED, before, record)

    result = _transact(redis, job_id, change)
    if result.accepted and result.record is not None:
        next_step = next((s.name for s in result.record.steps_not_done()), None)
        audit(redis, "job.resume", job=job_id, by=by, state_before=result.state_before, next_step=next_step,
              kind=str(result.kind))
    return result
