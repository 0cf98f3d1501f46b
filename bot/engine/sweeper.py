"""Crash recovery: every worker runs a sweeper thread that re-enqueues jobs whose runner died.

RQ notices a dead worker's job only in its maintenance pass (every 600 s by default) and then fails it. We
need a resume within a minute, from the checkpoint, so each worker process looks every `sweep_interval`
seconds at the active jobs (`kubemaint:jobs:active`):

- `running` with no runner heartbeat (it expires `heartbeat_ttl` after the run's last refresh): the run died.
  Re-enqueue it (state back to `queued`, `recoveries` + 1) in one WATCH/MULTI transaction with the RQ
  enqueue, so when several sweepers see it at once exactly one wins. After `max_recoveries` deaths in a row
  the job is halted instead (a step that kills its worker every time must not loop forever).
- `queued`, no heartbeat, and absent from the RQ queue for `lost_job_grace` seconds: a worker took it off the
  queue and died before claiming it. Re-enqueue it the same way.

Even a double enqueue would be harmless: a run first claims the job with SET NX on its heartbeat key, so a
second copy finds it busy (or finished) and does nothing.

The same thread starts scheduled jobs when their time comes (queue.start_due_jobs; why not RQ's scheduler is
said there): it looks at the schedule's head at least every `schedule_poll` seconds and sleeps no longer
than until the head is due, so a job starts well within a second of its start_at whichever worker is alive.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError
from rq import Queue

from bot.engine import redis_state
from bot.engine.audit import audit
from bot.engine.ending import Ending, EndKind
from bot.engine.queue import QUEUE_NAME, enqueue_run, next_start, start_due_jobs
from bot.engine.runner import Timings
from bot.engine.store import (
    ACTIVE_JOBS,
    JobRecord,
    JobState,
    Ops,
    StepState,
    event_fields,
    finished_ops,
    get_job,
    job_key,
    runner_key,
    steps_key,
    text,
)

log = structlog.get_logger("kubemaint.sweeper")
T = TypeVar("T")


class Sweeper(threading.Thread):
    def __init__(self, redis: Redis, worker_name: str, timings: Timings | None = None) -> None:
        super().__init__(name="kubemaint-sweeper", daemon=True)
        self.redis = redis  # its own client: this thread runs beside forking work horses
        self.worker_name = worker_name
        self.timings = timings or Timings()
        self.suspects: dict[str, float] = {}
        self._known_epoch = ""
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)

    def run(self) -> None:
        # A little jitter keeps the sweepers of workers started together from running in lockstep.
        delay = random.uniform(0, self.timings.sweep_interval / 4)
        next_sweep = time.monotonic() + delay
        while not self._stopping.wait(delay):
            # Each part on its own: a job the schedule cannot start must not keep dead runs from being found.
            started = self._guarded("sweeper.schedule_failed", lambda: start_due_jobs(self.redis))
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.timings.sweep_interval
                self._guarded("sweeper.failed", self._sweep)
            if started is None:  # Redis unreachable, or a job that cannot be started: look again later
                delay = self.timings.sweep_interval
            else:
                delay = self._guarded("sweeper.schedule_failed", lambda at=next_sweep: self._until_next(at))
                delay = self.timings.sweep_interval if delay is None else delay

    def _sweep(self) -> None:
        if self._known_epoch and redis_state.lost_since(self.redis, self._known_epoch):
            # The runs notice their own jobs; this says it once per worker for the operators.
            log.error("redis.data_lost", worker=self.worker_name)
            audit(self.redis, "redis.data_lost", worker=self.worker_name)
        self._known_epoch = redis_state.epoch(self.redis)
        sweep_once(self.redis, self.worker_name, self.timings, self.suspects)

    def _guarded(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except RedisError as exc:
            log.warning("sweeper.redis_error", error=str(exc))
        except Exception:
            log.exception(what)
        return None

    def _until_next(self, next_sweep: float) -> float:
        """Sleep until the next sweep, the next look at the schedule, or the schedule's head, whichever is first."""
        delay = min(max(0.0, next_sweep - time.monotonic()), self.timings.schedule_poll)
        head = next_start(self.redis)
        if head is not None:
            delay = min(delay, max(0.0, head - time.time()))
        return delay


def sweep_once(redis: Redis, worker_name: str, timings: Timings, suspects: dict[str, float] | None = None
               ) -> list[tuple[str, str]]:
    """One pass; returns (job id, what was done) for each job acted on."""
    suspects = {} if suspects is None else suspects
    acted = []
    seen = set()
    for raw_id in redis.smembers(ACTIVE_JOBS):
        job_id = text(raw_id)
        seen.add(job_id)
        state, queue_name = (text(v) for v in redis.hmget(job_key(job_id), "state", "queue"))
        if state not in (JobState.QUEUED, JobState.RUNNING):
            redis.srem(ACTIVE_JOBS, job_id)  # finished (or expired) but still listed: tidy up
            continue
        if redis.exists(runner_key(job_id)):
            suspects.pop(job_id, None)
            continue
        if state == JobState.RUNNING:
            result = _recover(redis, job_id, worker_name, timings)
        else:
            queue = Queue(queue_name or QUEUE_NAME, connection=redis)
            if redis.lpos(queue.key, job_id) is not None:
                suspects.pop(job_id, None)
                continue
            first_seen = suspects.setdefault(job_id, time.monotonic())
            if time.monotonic() - first_seen < timings.lost_job_grace:
                continue
            result = _requeue_lost(redis, job_id, worker_name)
            suspects.pop(job_id, None)
        if result:
            acted.append((job_id, result))
    for job_id in list(suspects):
        if job_id not in seen:
            del suspects[job_id]
    return acted


def release_dead_run(redis: Redis, job_id: str, worker_name: str, pid: int) -> bool:
    """Called by a worker whose work horse `pid` died (OOM killer, segfault): free that run's heartbeat now,
    so the next sweep resumes the job instead of waiting out the TTL. Only that exact run is touched."""
    with redis.pipeline() as pipe:
        try:
            pipe.watch(job_key(job_id), runner_key(job_id))
            state, worker, run_pid, run = (text(v) for v in pipe.hmget(job_key(job_id), "state", "worker", "pid",
                                                                        "run"))
            if state != JobState.RUNNING or worker != worker_name or run_pid != str(pid) or \
                    text(pipe.get(runner_key(job_id))) != run:
                pipe.reset()
                return False
            pipe.multi()
            pipe.delete(runner_key(job_id))
            pipe.execute()
        except WatchError:
            return False
    log.warning("sweeper.horse_died", job=job_id, pid=pid, worker=worker_name)
    return True


def _watch_unowned(pipe: Pipeline, redis: Redis, job_id: str, state: JobState) -> JobRecord | None:
    """WATCH the job and its runner key; the job if it is in `state` with no live run, else None
    (and the WATCH dropped)."""
    pipe.watch(job_key(job_id), runner_key(job_id))
    record = get_job(redis, job_id)
    if record is None or record.state != state or pipe.exists(runner_key(job_id)):
        pipe.reset()
        return None
    return record


def _recover(redis: Redis, job_id: str, worker_name: str, timings: Timings) -> str | None:
    with redis.pipeline() as pipe:
        try:
            record = _watch_unowned(pipe, redis, job_id, JobState.RUNNING)
            if record is None:
                return None
            now = time.time()
            dead = f"{record.worker or 'its worker'} (pid {record.pid})"
            step = record.current_step
            where = f"during step '{step}'" if step else "before its first step"
            pipe.multi()
            if record.recoveries >= timings.max_recoveries:
                ending = Ending(EndKind.WORKER_DIED, step=step, worker=dead, deaths=record.recoveries + 1)
                message = str(ending.kind)
                ops = Ops()
                if step:
                    interrupted = record.step(step)
                    interrupted.state = StepState.PENDING
                    interrupted.detail = f"interrupted: {dead} died {record.recoveries + 1} times in a row"
                    ops.hset(steps_key(job_id), {step: interrupted.to_json()})
                    ops.event(event_fields(job_id, JobState.HALTED, step, interrupted.state, interrupted.detail))
                ops.hset(job_key(job_id), {"ending": ending.to_json(), "current_step": ""})
                finished_ops(ops, job_id, JobState.HALTED, now)
                ops.event(event_fields(job_id, JobState.HALTED, detail=message))
                ops.apply_to(pipe)
                result = "halted"
            else:
                message = (f"{dead} stopped responding {where}; resuming from the last checkpoint "
                           f"(recovery {record.recoveries + 1} of at most {timings.max_recoveries}).")
                ops = Ops().hset(job_key(job_id), {
                    "state": JobState.QUEUED, "recoveries": record.recoveries + 1, "queued_at": now,
                    "updated_at": now})
                ops.event(event_fields(job_id, JobState.QUEUED, step, "", message))
                ops.apply_to(pipe)
                enqueue_run(pipe, redis, job_id, queue_name=record.queue or QUEUE_NAME,
                            description=f"{record.spec.command_text} (resumed)")
                result = "requeued"
            pipe.execute()
        except WatchError:
            return None  # another sweeper (or the job itself) got there first
    log.warning("sweeper.recovered", job=job_id, result=result, dead=dead, step=step, sweeper=worker_name)
    audit(redis, "job.recovered" if result == "requeued" else "job.halted", job=job_id, dead_worker=record.worker,
          dead_pid=record.pid, step=step or None, sweeper=worker_name, message=message)
    return result


def _requeue_lost(redis: Redis, job_id: str, worker_name: str) -> str | None:
    with redis.pipeline() as pipe:
        try:
            record = _watch_unowned(pipe, redis, job_id, JobState.QUEUED)
            if record is None:
                return None
            queue_name = record.queue or QUEUE_NAME
            if pipe.lpos(Queue(queue_name, connection=redis).key, job_id) is not None:
                pipe.reset()
                return None
            now = time.time()
            pipe.multi()
            ops = Ops().hset(job_key(job_id), {"queued_at": now, "updated_at": now})
            ops.event(event_fields(job_id, JobState.QUEUED, detail="re-queued: it had left the queue without starting"))
            ops.apply_to(pipe)
            enqueue_run(pipe, redis, job_id, queue_name=queue_name,
                        description=record.spec.command_text)
            pipe.execute()
        except WatchError:
            return None
    audit(redis, "job.requeued", job=job_id, sweeper=worker_name)
    return "requeued-lost"
