"""Submitting, cancelling and resuming jobs: what the bot calls.

Every call here is one optimistic transaction (WATCH the job, check its state, MULTI, write, EXEC), and the
RQ enqueue rides in the same MULTI, so a job's state and its place in the RQ queue never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
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
)

QUEUE_NAME = "kubemaint"
RUN_JOB = "bot.engine.runner.run_job"  # by name: the bot never imports the runner
DEFAULT_JOB_TIMEOUT = "2h"  # RQ kills a run after this; the job can then be resumed
RESULT_TTL = 24 * 3600


class ChangeKind(StrEnum):
    NOT_A_JOB_ID = "not_a_job_id"
    UNKNOWN = "unknown"  # no such job, or it expired
    CANCEL_REQUESTED = "cancel_requested"  # running: it stops at its next safe point
    ALREADY_REQUESTED = "already_requested"  # running, and someone asked before
    CANCELLED = "cancelled"  # queued, failed or halted: cancelled at once (see the record's ending)
    ALREADY_OVER = "already_over"  # succeeded or cancelled: nothing to cancel
    NOT_RESUMABLE = "not_resumable"  # only failed and halted jobs resume
    RESUMED = "resumed"


@dataclass(frozen=True)
class Change:
    """The answer to `cancel` / `resume`, as data; bot/contract/reports.py words it for the chat."""

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


def submit(redis: Redis, spec: JobSpec, *, queue_name: str = QUEUE_NAME,
           job_timeout: str | int = DEFAULT_JOB_TIMEOUT) -> str:
    """Store the spec and queue the job; returns its id. Submitting the same id again does nothing."""
    check_client(redis)
    key = job_key(spec.id)
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    pipe.reset()
                    return spec.id
                now = time.time()
                pipe.multi()
                ops = Ops().hset(key, {
                    "spec": spec.to_json(), "state": JobState.QUEUED,
                    "created_at": spec.created_at, "queued_at": now, "updated_at": now, "queue": queue_name,
                })
                ops.event(event_fields(spec.id, JobState.QUEUED, detail=f"queued: {spec.command_text}"))
                ops.apply_to(pipe)
                pipe.zadd(JOBS_INDEX, {spec.id: spec.created_at})
                pipe.zremrangebyrank(JOBS_INDEX, 0, -(JOBS_INDEX_MAX + 1))
                pipe.sadd(ACTIVE_JOBS, spec.id)
                enqueue_run(pipe, redis, spec.id, queue_name=queue_name, job_timeout=job_timeout,
                            description=spec.command_text)
                pipe.execute()
                break
            except WatchError:
                continue
    audit(redis, "job.queued", job=spec.id, verb=spec.verb, command=spec.command_text, requester=spec.requester,
          approvers=spec.approvers, locks=spec.locks, steps=spec.step_names())
    return spec.id


def cancel(redis: Redis, job_id: str, by: str) -> Change:
    """Ask a job to stop.

    queued -> cancelled at once (nothing ran). running -> a flag the runner honours at the next safe point
    (between steps, or inside a long step that checks `ctx.cancelled()`). failed / halted -> aborted:
    cancelled for good, so it cannot be resumed. succeeded / cancelled -> refused.
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
    if state in (JobState.QUEUED, JobState.FAILED, JobState.HALTED):
        not_done = record.steps_not_done()
        if state == JobState.QUEUED:
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
        record.state, record.ending, record.finished_at = JobState.CANCELLED, ending, now
        return Change(job_id, True, ChangeKind.CANCELLED, JobState.CANCELLED, before, record)
    return Change(job_id, False, ChangeKind.ALREADY_OVER, str(state), before, record)


def resume(redis: Redis, job_id: str, by: str, *, queue_name: str | None = None,
           job_timeout: str | int = DEFAULT_JOB_TIMEOUT) -> Change:
    """Run a failed or halted job again: done steps are skipped, the first unfinished step runs again."""
    check_client(redis)

    def change(pipe: Pipeline, record: JobRecord) -> Change:
        before = str(record.state)
        if record.state not in (JobState.FAILED, JobState.HALTED):
            return Change(job_id, False, ChangeKind.NOT_RESUMABLE, before, before, record)
        now = time.time()
        key = job_key(job_id)
        pipe.multi()
        for k in (key, steps_key(job_id), data_key(job_id)):
            pipe.persist(k)
        pipe.hdel(key, "cancel_requested_by", "cancel_requested_at", "finished_at", "ending")
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
        audit(redis, "job.resume", job=job_id, by=by, state_before=result.state_before, next_step=next_step)
    return result
