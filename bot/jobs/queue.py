"""Submitting, cancelling and resuming jobs: what the bot calls.

Every call here is one optimistic transaction (WATCH the job, check its state, MULTI, write, EXEC), and the
RQ enqueue rides in the same MULTI, so a job's state and its place in the RQ queue never disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq import Queue

from bot.audit import audit
from bot.jobs.locks import format_since
from bot.jobs.model import JobSpec, is_job_id
from bot.jobs.store import (
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
RUN_JOB = "bot.jobs.runner.run_job"  # by name: the bot never imports the runner
DEFAULT_JOB_TIMEOUT = "2h"  # RQ kills a run after this; the job can then be resumed
RESULT_TTL = 24 * 3600


@dataclass(frozen=True)
class Outcome:
    """The answer to `cancel` / `resume`: whether it was accepted, and one message for the chat."""

    accepted: bool
    message: str
    state: str | None = None


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
                    "spec": spec.to_json(), "state": JobState.QUEUED, "message": "Queued.",
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


def _unknown(job_id: str) -> Outcome:
    if not is_job_id(job_id):
        return Outcome(False, f"{job_id!r} is not a job id: job ids look like j-1a2b3c4d (see `jobs`).")
    return Outcome(False, f"No job {job_id}: it does not exist or has expired (see `jobs`).")


def _names(steps) -> str:
    return ", ".join(f"'{s.name}'" for s in steps) or "none"


def cancel(redis: Redis, job_id: str, by: str) -> Outcome:
    """Ask a job to stop.

    queued -> cancelled at once (nothing ran). running -> a flag the runner honours at the next safe point
    (between steps, or inside a long step that checks `ctx.cancelled()`). failed / halted -> aborted:
    cancelled for good, so it cannot be resumed. succeeded / cancelled -> refused with the reason.
    """
    outcome, record = _transact(redis, job_id, lambda pipe, record: _cancel_in(pipe, redis, record, by))
    if outcome.accepted and record is not None:
        audit(redis, "job.cancel", job=job_id, by=by, state_before=record.state, result=outcome.state)
    return outcome


def _transact(redis: Redis, job_id: str, change) -> tuple[Outcome, JobRecord | None]:
    """Run `change(pipe, record)` on the job under WATCH, retrying if the job changed meanwhile.

    `change` queues its writes after `pipe.multi()` when it accepts; otherwise nothing is written.
    """
    if not is_job_id(job_id):
        return _unknown(job_id), None
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(job_key(job_id))
                record = get_job(redis, job_id)
                if record is None:
                    pipe.reset()
                    return _unknown(job_id), None
                outcome = change(pipe, record)
                if outcome.accepted and pipe.explicit_transaction:
                    pipe.execute()
                else:
                    pipe.reset()
                return outcome, record
            except WatchError:
                continue


def _cancel_in(pipe: Pipeline, redis: Redis, record: JobRecord, by: str) -> Outcome:
    job_id, command, now = record.id, record.spec.command_text, time.time()
    state = record.state
    if state == JobState.RUNNING:
        if record.cancel_requested_by:
            return Outcome(True, f"Cancel of {job_id} ({command}) was already requested by {record.cancel_requested_by}"
                                 f"; it stops at the next safe point.", JobState.RUNNING)
        pipe.multi()
        ops = Ops().hset(job_key(job_id), {"cancel_requested_by": by, "cancel_requested_at": now, "updated_at": now})
        ops.event(event_fields(job_id, JobState.RUNNING, record.current_step, "",
                               f"cancel requested by {by}: stopping at the next safe point"))
        ops.apply_to(pipe)
        current = f" (now in step '{record.current_step}')" if record.current_step else ""
        return Outcome(True, f"Cancelling {job_id} ({command}){current}: it stops at the next safe point "
                             f"and skips the remaining steps.", JobState.RUNNING)
    if state in (JobState.QUEUED, JobState.FAILED, JobState.HALTED):
        done = record.steps_in(StepState.DONE)
        not_done = [s for s in record.steps if s.state != StepState.DONE]
        if state == JobState.QUEUED and not done:
            message = f"Cancelled by {by} before it started: nothing was changed."
        elif state == JobState.QUEUED:
            message = (f"Cancelled by {by} while waiting to resume. Done: {_names(done)}. "
                       f"Skipped: {_names(not_done)}.")
        else:
            message = (f"Aborted by {by} after it {state}: it will not be resumed. Done: {_names(done)}. "
                       f"Skipped: {_names(not_done)}.")
        pipe.multi()
        ops = Ops()
        for step in not_done:
            step.state, step.finished_at = StepState.SKIPPED, step.finished_at or now
            step.detail = step.detail or "skipped: job cancelled"
            ops.hset(steps_key(job_id), {step.name: step.to_json()})
            ops.event(event_fields(job_id, JobState.CANCELLED, step.name, StepState.SKIPPED, step.detail))
        ops.hset(job_key(job_id), {"message": message, "cancel_requested_by": by, "cancel_requested_at": now})
        finished_ops(ops, job_id, JobState.CANCELLED, now)
        ops.event(event_fields(job_id, JobState.CANCELLED, detail=message))
        ops.apply_to(pipe)
        pipe.lrem(Queue(record.queue or QUEUE_NAME, connection=redis).key, 0, job_id)
        return Outcome(True, f"{job_id} ({command}): {message}", JobState.CANCELLED)
    when = f" at {format_since(record.finished_at)}" if record.finished_at else ""
    return Outcome(False, f"{job_id} ({command}) already {state}{when}: nothing to cancel.", state)


def resume(redis: Redis, job_id: str, by: str, *, queue_name: str | None = None,
           job_timeout: str | int = DEFAULT_JOB_TIMEOUT) -> Outcome:
    """Run a failed or halted job again: done steps are skipped, the first unfinished step runs again."""
    check_client(redis)

    def change(pipe: Pipeline, record: JobRecord) -> Outcome:
        command = record.spec.command_text
        if record.state not in (JobState.FAILED, JobState.HALTED):
            why = {
                JobState.QUEUED: "it is already queued",
                JobState.RUNNING: "it is running",
                JobState.SUCCEEDED: "it already succeeded",
                JobState.CANCELLED: "it was cancelled; run the command again for a new job",
            }[JobState(record.state)]
            return Outcome(False, f"Cannot resume {job_id} ({command}): {why}.", record.state)
        next_step = next((s.name for s in record.steps if s.state != StepState.DONE), None)
        now = time.time()
        key = job_key(job_id)
        pipe.multi()
        for k in (key, steps_key(job_id), data_key(job_id)):
            pipe.persist(k)
        pipe.hdel(key, "cancel_requested_by", "cancel_requested_at", "finished_at")
        pipe.hset(key, mapping={"state": JobState.QUEUED, "queued_at": now, "updated_at": now,
                                "recoveries": 0, "message": f"Resumed by {by}; queued."})
        pipe.xadd(EVENTS_STREAM, event_fields(job_id, JobState.QUEUED, detail=f"resumed by {by}"),
                  maxlen=EVENTS_MAXLEN, approximate=True)
        pipe.sadd(ACTIVE_JOBS, job_id)
        enqueue_run(pipe, redis, job_id, queue_name=queue_name or record.queue or QUEUE_NAME,
                    job_timeout=job_timeout, description=command)
        return Outcome(True, f"Resuming {job_id} ({command}): done steps are kept; it continues at '{next_step}'.",
                       JobState.QUEUED)

    outcome, record = _transact(redis, job_id, change)
    if outcome.accepted and record is not None:
        next_step = next((s.name for s in record.steps if s.state != StepState.DONE), None)
        audit(redis, "job.resume", job=job_id, by=by, state_before=record.state, next_step=next_step)
    return outcome
