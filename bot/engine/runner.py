"""The step runner: claim a job, take its locks, run its steps in order, checkpoint each one.

`run_job(job_id)` is the RQ job function; it only hands the id to `StepRunner`. A run:

1. claims the job: a Lua script sets the runner heartbeat key (`SET NX` with a short TTL, value = a fresh run
   token) and moves the job to `running` in one step. A job that is already running (live heartbeat) or
   finished is left alone, so a duplicate enqueue never runs twice;
2. starts a keeper thread that refreshes the heartbeat (every 2 s, TTL 6 s) and the locks (every TTL/3) with
   compare-and-refresh scripts. If a refresh fails, or Redis has not answered for nearly a TTL, the run
   considers itself fenced off and stops at the next safe point;
3. builds the resources (the worker's `resources_factory`), takes all locks (all or none; see locks.py);
4. for each step not done: check for cancel and pause (a safe point), mark it running + event, call the
   action, mark it done + event. Every write is fenced by the run token (store.fenced), so a run that lost
   its job cannot overwrite the new run's checkpoints;
5. ends with one of: succeeded, failed (a step raised), cancelled (at a safe point, remaining steps skipped),
   halted (a lock was lost), paused (asked to, at a safe point: the interrupted step goes back to pending with
   its checkpoint) or scheduled (a step raised `JobPaused(until=...)`: it continues by itself then), records
   how it ended (`Ending`: the chat words it) and releases its locks.

A run killed at any moment leaves `running` with a heartbeat that expires; the sweeper (sweeper.py)
re-enqueues it and the next run skips done steps and re-runs the interrupted one (actions are idempotent).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from redis import ConnectionPool, Redis
from redis.exceptions import RedisError

from bot.engine import locks, redis_state
from bot.engine.actions import (
    CheckpointData,
    JobCancelled,
    JobPaused,
    Resources,
    ResourcesFactory,
    StepContext,
    get_action,
    invoke,
)
from bot.engine.audit import audit
from bot.engine.ending import Ending, EndKind
from bot.engine.metrics import JOBS, STEP_SECONDS
from bot.engine.model import JOB_DATA
from bot.engine.node_output import keep_node_output
from bot.engine.store import (
    EVENTS_MAXLEN,
    EVENTS_STREAM,
    JOBS_INDEX,
    JobRecord,
    JobState,
    Ops,
    StepRecord,
    StepState,
    data_key,
    event_fields,
    fenced,
    finished_ops,
    get_job,
    job_key,
    read_checkpoint_data,
    runner_key,
    scheduled_ops,
    steps_key,
    text,
)

log = structlog.get_logger("kubemaint.jobs")


@dataclass(frozen=True)
class Timings:
    """How fast crashes are noticed and locks expire. Defaults suit production; tests shorten some."""

    heartbeat_interval: float = 2.0  # the running job refreshes its heartbeat this often...
    heartbeat_ttl: float = 6.0  # ...and a run silent this long is dead: the sweeper resumes its job
    lock_ttl: float = 15.0  # locks are refreshed every lock_ttl / 3
    lock_wait: float = 30.0  # how long a job waits for a busy lock before failing (0 = fail fast)
    sweep_interval: float = 2.0  # each worker's sweeper looks for dead runs this often
    lost_job_grace: float = 15.0  # a queued job missing from the RQ queue this long is re-enqueued
    max_recoveries: int = 3  # after this many worker deaths in a row the job halts instead of resuming
    cancel_check_interval: float = 0.1  # ctx.cancelled() and ctx.pause_requested() ask Redis at most this often
    schedule_poll: float = 0.5  # the sweeper looks for scheduled jobs that are due at least this often

    @property
    def lock_refresh_interval(self) -> float:
        return self.lock_ttl / 3


@dataclass
class WorkerContext:
    """Set by run_worker in the worker process; forked work horses inherit it."""

    worker_name: str
    timings: Timings
    resources_factory: ResourcesFactory | None = None


_context: WorkerContext | None = None


def set_worker_context(context: WorkerContext | None) -> None:
    global _context
    _context = context


def run_job(job_id: str) -> str:
    """The RQ job function: a thin shell around the step runner. Returns the job's state after this run."""
    from rq import get_current_job

    rq_job = get_current_job()
    redis = rq_job.connection if rq_job is not None else Redis.from_url(os.environ["KUBEMAINT_REDIS_URL"])
    context = _context or WorkerContext(os.environ.get("RQ_WORKER_ID") or socket.gethostname(), Timings())
    return StepRunner(redis, job_id, context.worker_name, context.timings, context.resources_factory).run()


REDIS_RETURN_WAIT = 60.0  # how long a run that lost its job waits for Redis to answer again


class LostJob(Exception):
    """This run no longer owns the job: stop without writing anything."""


_CLAIM_LUA = """
local state = redis.call('HGET', KEYS[2], 'state')
if not state then return 'unknown' end
if state ~= 'queued' and state ~= 'running' then return state end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'busy' end
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'state', 'running', 'worker', ARGV[3], 'pid', ARGV[4], 'run', ARGV[1],
           'updated_at', ARGV[5], 'alive_at', ARGV[5])
if redis.call('HEXISTS', KEYS[2], 'started_at') == 0 then redis.call('HSET', KEYS[2], 'started_at', ARGV[5]) end
return 'ok'
"""

# Also notes when the run was last alive, so a job whose worker died can say since when.
_HEARTBEAT_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], 'alive_at', ARGV[3])
  return 1
end
return 0
"""

_RELEASE_RUNNER_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _short_timeout_client(redis: Redis, timings: Timings) -> Redis:
    """A client of the same server whose calls give up within a heartbeat interval: a hung Redis must not
    keep the keeper from noticing, in time, that it can no longer vouch for the run."""
    pool = redis.connection_pool
    kwargs = dict(pool.connection_kwargs)
    timeout = max(0.5, timings.heartbeat_interval)
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


class Keeper(threading.Thread):
    """Refreshes the run's heartbeat and locks; notices when either is lost."""

    def __init__(self, redis: Redis, job_id: str, token: str, timings: Timings) -> None:
        super().__init__(name=f"keeper-{job_id}", daemon=True)
        self.redis = _short_timeout_client(redis, timings)
        self.job_id, self.token, self.timings = job_id, token, timings
        self.lost_job = threading.Event()
        self.lost_lock = threading.Event()
        self.lost_targets: list[str] = []
        self._stopping = threading.Event()
        self._locks: tuple[list[str], locks.LockHolder] | None = None
        self._lock_ok_at = self._next_lock = 0.0

    def watch_locks(self, targets: Iterable[str], holder: locks.LockHolder) -> None:
        """Start refreshing `targets` (call once they are taken)."""
        now = time.monotonic()
        self._lock_ok_at, self._next_lock = now, now + self.timings.lock_refresh_interval
        self._locks = (list(targets), holder)

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)
        self.redis.connection_pool.disconnect()

    def run(self) -> None:
        t = self.timings
        interval = min(t.heartbeat_interval, t.lock_refresh_interval)
        heartbeat = self.redis.register_script(_HEARTBEAT_LUA)
        last_beat = time.monotonic()
        while not self._stopping.wait(interval):
            now = time.monotonic()
            try:
                if not heartbeat(keys=[runner_key(self.job_id), job_key(self.job_id)],
                                 args=[self.token, int(t.heartbeat_ttl * 1000), f"{time.time():.3f}"]):
                    self.lost_job.set()
                    return
                last_beat = now
                if self._locks and now >= self._next_lock:
                    lost = locks.refresh(self.redis, self._locks[0], self._locks[1], t.lock_ttl)
                    if lost:
                        self.lost_targets = lost
                        self.lost_lock.set()
                        return
                    self._lock_ok_at, self._next_lock = now, now + t.lock_refresh_interval
            except RedisError as exc:
                log.warning("keeper.redis_error", job=self.job_id, error=str(exc))
            # Stop ourselves before our keys can expire, not after: by then someone else may have them.
            if time.monotonic() - last_beat > t.heartbeat_ttl - t.heartbeat_interval:
                self.lost_job.set()
                return
            if self._locks and time.monotonic() - self._lock_ok_at > t.lock_ttl - t.lock_refresh_interval:
                self.lost_targets = list(self._locks[0])
                self.lost_lock.set()
                return


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _timed(action: str, fn: Any, ctx: StepContext, args: dict[str, Any]) -> Any:
    """Run the action, its time observed by outcome: the runner's own writes around it are not the step's."""
    started, outcome = time.monotonic(), "failed"
    try:
        detail = invoke(fn, ctx, args)
        outcome = "done"
        return detail
    except (LostJob, JobCancelled, JobPaused):
        outcome = "stopped"
        raise
    finally:
        STEP_SECONDS.labels(action, outcome).observe(time.monotonic() - started)


class StepRunner:
    def __init__(self, redis: Redis, job_id: str, worker_name: str, timings: Timings | None = None,
                 resources_factory: ResourcesFactory | None = None) -> None:
        self.redis = redis
        self.job_id = job_id
        self.worker_name = worker_name
        self.timings = timings or Timings()
        self.resources_factory = resources_factory
        self.token = uuid.uuid4().hex
        self.pid = os.getpid()
        self.log = log.bind(job=job_id, worker=worker_name, run=self.token[:8])
        self.keeper = Keeper(redis, job_id, self.token, self.timings)
        self.record: JobRecord | None = None
        self.holder: locks.LockHolder | None = None
        self.resources: Any = None
        self._cancel_by = ""
        self._pause_by = ""
        self._flags_checked = 0.0
        self.epoch = ""
        self.job_data: CheckpointData | None = None

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> str:
        claim = self.redis.register_script(_CLAIM_LUA)
        outcome = claim(keys=[runner_key(self.job_id), job_key(self.job_id)],
                        args=[self.token, int(self.timings.heartbeat_ttl * 1000), self.worker_name, self.pid,
                              f"{time.time():.3f}"])
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if outcome != "ok":
            # unknown (expired), busy (a live run has it: a duplicate enqueue) or already finished.
            self.log.info("job.not_run", reason=outcome)
            return outcome
        self.keeper.start()
        try:
            self.epoch = redis_state.epoch(self.redis)
            self.record = get_job(self.redis, self.job_id)
            if self.record is None:  # the spec expired between the claim and now
                return "unknown"
            started, resources = self._start()
            if not started:
                return self.record.state
            return self._run_steps(resources)
        except (LostJob, RedisError) as stopped:
            if self._redis_lost_its_data():
                return self._keep_from_memory()
            if isinstance(stopped, RedisError):
                self.log.warning("job.redis_unreachable", error=str(stopped),
                                 detail="stopping; the sweeper resumes the job from its checkpoint")
            else:
                self.log.warning("job.lost", detail="another run owns this job now; stopping without writing")
            return "lost"
        finally:
            self.keeper.stop()
            try:
                if self.holder is not None and not self.keeper.lost_job.is_set():
                    locks.release(self.redis, self.record.spec.locks, self.holder)
                # Free the heartbeat at once if the run ended abnormally: the sweeper need not wait for the TTL.
                self.redis.register_script(_RELEASE_RUNNER_LUA)(keys=[runner_key(self.job_id)], args=[self.token])
            except RedisError:
                self.log.exception("job.cleanup_failed")  # the TTLs will free them
            close = getattr(self.resources, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    self.log.exception("resources.close_failed")

    def _start(self) -> tuple[bool, Any]:
        """Announce the run, build the resources and take the locks; (False, ...) if the job ended here."""
        record = self.record
        spec = record.spec
        done = record.steps_in(StepState.DONE)
        if record.attempts > 1 or done:
            detail = (f"resumed on {self.worker_name} (run {record.attempts}); "
                      f"{len(done)}/{len(spec.steps)} steps already done")
        else:
            detail = f"started on {self.worker_name}"
        self._write(Ops().event(event_fields(self.job_id, JobState.RUNNING, detail=detail)))
        audit(self.redis, "job.started", job=self.job_id, command=spec.command_text, worker=self.worker_name,
              pid=self.pid, attempt=record.attempts, done_steps=len(done))
        try:
            resources = self.resources = (self.resources_factory(spec.cluster) if self.resources_factory
                                          else Resources())
        except Exception as exc:
            self.log.exception("resources.failed")
            self._fail_before_steps(f"could not set up the worker's resources ({_reason(exc)})")
            return False, None
        self.holder = locks.LockHolder(self.job_id, self.token, self.worker_name, self.pid, spec.command_text,
                                       time.time())

        def waiting(busy: locks.LockBusy) -> None:
            self._write(Ops().event(event_fields(
                self.job_id, JobState.RUNNING,
                detail=f"waiting up to {self.timings.lock_wait:g}s: {busy}")))

        try:
            acquired = locks.acquire(self.redis, spec.locks, self.holder, self.timings.lock_ttl,
                                     self.timings.lock_wait, on_wait=waiting,
                                     should_stop=lambda: self._stop_requested() or self._pause_requested())
        except locks.LockBusy as busy:
            self.holder = None  # nothing of ours to release
            self._fail_before_steps(str(busy))
            return False, resources
        if not acquired:
            self._check_lost()
            if self._stop_requested():
                self._cancelled(next_index=self._first_not_done(), interrupted=False)
            else:
                self._paused(self._first_not_done(), interrupted=False)
            return False, resources
        self.keeper.watch_locks(spec.locks, self.holder)
        return True, resources

    def _run_steps(self, resources: Any) -> str:
        spec, record = self.record.spec, self.record
        job_data = self.job_data = CheckpointData(read_checkpoint_data(self.redis, self.job_id, JOB_DATA),
                                                  save=lambda values: self._save_data(JOB_DATA, values))
        for index, step in enumerate(spec.steps):
            step_record = record.steps[index]
            if step_record.state == StepState.DONE:
                continue
            if self._stop_requested(fresh=True):  # the safe point between steps
                return self._stop(index, interrupted=False)
            if self._pause_requested():  # read with the cancel flag just above
                return self._paused(index, interrupted=False)
            self._mark_running(step_record)
            try:
                fn = get_action(step.action)
                data = CheckpointData(read_checkpoint_data(self.redis, self.job_id, step.name),
                                      save=lambda values, name=step.name: self._save_data(name, values))
                ctx = StepContext(job_id=self.job_id, requester=spec.requester, step=step.name, resources=resources,
                                  log=self.log.bind(step=step.name), checkpoint_data=data, job_data=job_data,
                                  cancelled=self._stop_requested, pause_requested=self._pause_requested,
                                  node_output=lambda entry: keep_node_output(self.redis, self.job_id, entry),
                                  progress=lambda detail, rec=step_record: self._progress(rec, detail))
                detail = _timed(step.action, fn, ctx, step.args)
            except LostJob:
                raise
            except JobCancelled:
                return self._stop(index, interrupted=True)
            except JobPaused as paused:
                if self._stop_requested(fresh=True):  # a cancel asked meanwhile wins: it is the stronger word
                    return self._stop(index, interrupted=True)
                return self._paused(index, interrupted=True, reason=paused.reason, until=paused.until)
            except Exception as exc:
                self._check_lost()
                self.log.exception("step.failed", step=step.name)
                return self._failed(index, exc)
            self._mark_done(step_record, detail)
        return self._finish(JobState.SUCCEEDED, Ending(EndKind.SUCCEEDED), [])

    # -- stopping ----------------------------------------------------------------------------------

    def _stop_requested(self, fresh: bool = False) -> bool:
        """Should the job stop at this safe point? (cancel requested, or this run lost its job or a lock)

        Actions may ask in a tight loop, so their answer may be up to `cancel_check_interval` old; the runner's
        own check between steps is always `fresh`.
        """
        if self.keeper.lost_job.is_set() or self.keeper.lost_lock.is_set():
            return True
        self._read_flags(fresh)
        return bool(self._cancel_by)

    def _pause_requested(self, fresh: bool = False) -> bool:
        """Has someone asked to pause the job? Read (and cached) together with the cancel flag."""
        self._read_flags(fresh)
        return bool(self._pause_by)

    def _read_flags(self, fresh: bool) -> None:
        now = time.monotonic()
        if self._cancel_by or not (fresh or now - self._flags_checked >= self.timings.cancel_check_interval):
            return
        self._flags_checked = now
        try:
            cancel_by, pause_by = self.redis.hmget(job_key(self.job_id), "cancel_requested_by", "pause_requested_by")
        except RedisError:  # unreachable for a moment: the keeper decides when the run must stop
            return
        self._cancel_by = text(cancel_by)
        self._pause_by = text(pause_by)  # `resume` may withdraw it before the safe point

    def _check_lost(self) -> None:
        if self.keeper.lost_job.is_set():
            raise LostJob()

    def _stop(self, index: int, interrupted: bool) -> str:
        self._check_lost()
        if self.keeper.lost_lock.is_set():
            return self._halted_lost_lock(index, interrupted)
        return self._cancelled(index, interrupted)

    def _first_not_done(self) -> int:
        return next((i for i, s in enumerate(self.record.steps) if s.state != StepState.DONE), 0)

    def _cancelled(self, next_index: int, interrupted: bool) -> str:
        steps = self.record.steps
        now = time.time()
        changed = []
        for i, step in enumerate(steps[next_index:], start=next_index):
            if step.state == StepState.DONE:
                continue
            step.state, step.finished_at = StepState.SKIPPED, now
            if i == next_index and interrupted:
                step.detail = "interrupted at a safe point by the cancel (its checkpoint is kept)"
            else:
                step.detail = "skipped: job cancelled"
            changed.append(step)
        ending = Ending(EndKind.CANCELLED, step=steps[next_index].name, by=self._cancel_by, during=interrupted)
        return self._finish(JobState.CANCELLED, ending, changed)

    def _paused(self, index: int, interrupted: bool, reason: str = "", until: float | None = None) -> str:
        """Pause at this safe point: the step at `index` waits, pending, with its checkpoint; the locks go.
        With `until` the job is scheduled to continue by itself then; otherwise it waits for `resume`."""
        self._check_lost()
        if self.keeper.lost_lock.is_set():
            return self._halted_lost_lock(index, interrupted)
        step = self.record.steps[index]
        changed = []
        if step.state == StepState.RUNNING:  # interrupted now, or left running by a run that died
            step.state = StepState.PENDING
            step.detail = ("paused at a safe point (its checkpoint is kept)" if interrupted
                           else "paused before it ran again (its checkpoint is kept)")
            changed.append(step)
        ending = Ending(EndKind.PAUSED, step=step.name, by=self._pause_by, during=interrupted, reason=reason,
                        until=until or 0.0)
        if until is not None:
            return self._finish(JobState.SCHEDULED, ending, changed, until=until)
        return self._finish(JobState.PAUSED, ending, changed)

    def _halted_lost_lock(self, index: int, interrupted: bool) -> str:
        step = self.record.steps[index]
        targets = tuple(locks.describe_target(t) for t in self.keeper.lost_targets)
        changed = []
        if interrupted:
            step.state, step.detail = StepState.PENDING, f"interrupted: lost the lock on {', '.join(targets)}"
            changed.append(step)
        ending = Ending(EndKind.LOST_LOCK, step=step.name, during=interrupted, targets=targets)
        return self._finish(JobState.HALTED, ending, changed)

    def _failed(self, index: int, exc: BaseException) -> str:
        steps = self.record.steps
        step = steps[index]
        reason = _reason(exc)
        step.state, step.finished_at, step.detail = StepState.FAILED, time.time(), reason
        audit(self.redis, "job.step", job=self.job_id, step=step.name, state=str(step.state), detail=reason,
              runs=step.runs)
        return self._finish(JobState.FAILED, Ending(EndKind.FAILED, step=step.name, reason=reason), [step])

    def _fail_before_steps(self, why: str) -> None:
        self._finish(JobState.FAILED, Ending(EndKind.NOT_STARTED, reason=why), [])

    def _finish(self, state: JobState, ending: Ending, changed: list[StepRecord], until: float | None = None) -> str:
        self._check_lost()
        if self.holder is not None:
            # Locks go first: a crash between the two leaves a running job the sweeper finishes, never a
            # finished job holding a lock.
            locks.release(self.redis, self.record.spec.locks, self.holder)
            self.holder = None
        now = time.time()
        ops = Ops()
        for step in changed:
            ops.hset(steps_key(self.job_id), {step.name: step.to_json()})
            ops.event(event_fields(self.job_id, state, step.name, step.state, step.detail))
        ops.hset(job_key(self.job_id), {"ending": ending.to_json(), "current_step": ""})
        if until is None:
            finished_ops(ops, self.job_id, state, now)
        else:
            scheduled_ops(ops, self.job_id, until, now)
        ops.event(event_fields(self.job_id, state, detail=str(ending.kind)))
        ops.delete(runner_key(self.job_id))
        self._write(ops)
        self.record.state, self.record.ending = state, ending
        JOBS.labels(self.record.spec.verb, str(state)).inc()
        audit(self.redis, "job.result", job=self.job_id, command=self.record.spec.command_text, state=str(state),
              ending=ending.kind, step=ending.step or None, reason=ending.reason or None, worker=self.worker_name)
        self.log.info("job.finished", state=str(state))
        return str(state)

    # -- when Redis forgot the job -----------------------------------------------------------------

    def _redis_lost_its_data(self, wait: float = REDIS_RETURN_WAIT) -> bool:
        """After losing the job: did Redis restart without its data? Waits a while for an unreachable
        Redis to answer; one that comes back with the job is left to the sweeper, which resumes it."""
        if not self.epoch or self.record is None:
            return False
        deadline = time.monotonic() + wait
        while True:
            try:
                lost = redis_state.lost_since(self.redis, self.epoch)
            except RedisError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.5)
                continue
            if lost:
                redis_state.epoch(self.redis)  # mark this Redis, so the others notice too
            return lost

    def _keep_from_memory(self) -> str:
        """Redis came back empty while this run had the job: write the job back as this run knew it,
        halted, so that it is not silently dropped: `job`, `jobs`, `resume` and `cancel` work again
        and the bot tells its thread what happened (the locks are gone: a resume takes them again)."""
        record, now = self.record, time.time()
        current = next((s for s in record.steps if s.state == StepState.RUNNING), None)
        if current is not None:
            current.state, current.detail = StepState.PENDING, "interrupted: Redis lost its data"
        ending = Ending(EndKind.STATE_LOST, step=current.name if current else "")
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(self.job_id), mapping={
                "spec": record.spec.to_json(), "state": JobState.HALTED, "ending": ending.to_json(),
                "created_at": record.spec.created_at, "queued_at": record.queued_at or now,
                "started_at": record.started_at or now, "updated_at": now, "finished_at": now,
                "attempts": record.attempts, "worker": self.worker_name, "queue": record.queue or "",
            })
            pipe.hset(steps_key(self.job_id), mapping={s.name: s.to_json() for s in record.steps})
            if self.job_data is not None and len(self.job_data):
                pipe.hset(data_key(self.job_id), JOB_DATA, json.dumps(dict(self.job_data), sort_keys=True))
            pipe.zadd(JOBS_INDEX, {self.job_id: record.spec.created_at})
            pipe.xadd(EVENTS_STREAM, event_fields(self.job_id, JobState.HALTED, detail=str(ending.kind)),
                      maxlen=EVENTS_MAXLEN, approximate=True)
            pipe.execute()
        JOBS.labels(record.spec.verb, str(JobState.HALTED)).inc()
        self.log.error("job.state_lost", detail="Redis lost its data; the job was written back, halted")
        audit(self.redis, "job.state_lost", job=self.job_id, command=record.spec.command_text,
              step=ending.step or None, worker=self.worker_name)
        return str(JobState.HALTED)

    # -- checkpoints -------------------------------------------------------------------------------

    def _write(self, ops: Ops) -> None:
        if not fenced(self.redis, self.job_id, self.token, ops):
            self.keeper.lost_job.set()
            raise LostJob()

    def _mark_running(self, step: StepRecord) -> None:
        step.state, step.started_at, step.finished_at = StepState.RUNNING, time.time(), None
        step.runs += 1
        step.detail = "" if step.runs == 1 else f"re-running (run {step.runs}): checking what is already done"
        ops = Ops().hset(steps_key(self.job_id), {step.name: step.to_json()})
        ops.hset(job_key(self.job_id), {"current_step": step.name, "updated_at": step.started_at})
        ops.event(event_fields(self.job_id, JobState.RUNNING, step.name, StepState.RUNNING, step.detail))
        self._write(ops)

    def _mark_done(self, step: StepRecord, detail: str | None) -> None:
        step.state, step.finished_at = StepState.DONE, time.time()
        step.detail = detail or "done"
        ops = Ops().hset(steps_key(self.job_id), {step.name: step.to_json()})
        # Progress was made: a later crash starts a new count towards max_recoveries.
        ops.hset(job_key(self.job_id), {"updated_at": step.finished_at, "recoveries": 0})
        ops.event(event_fields(self.job_id, JobState.RUNNING, step.name, StepState.DONE, step.detail))
        self._write(ops)
        audit(self.redis, "job.step", job=self.job_id, step=step.name, state=str(step.state), detail=step.detail,
              runs=step.runs)

    def _progress(self, step: StepRecord, detail: str) -> None:
        step.detail = detail
        ops = Ops().hset(steps_key(self.job_id), {step.name: step.to_json()})
        ops.event(event_fields(self.job_id, JobState.RUNNING, step.name, StepState.RUNNING, detail))
        try:
            self._write(ops)
        except RedisError as error:  # a progress note is not worth failing a step for; the next one says more
            self.log.warning("step.progress_not_saved", error=str(error))

    def _save_data(self, step_name: str, values: dict[str, Any]) -> None:
        self._write(Ops().hset(data_key(self.job_id), {step_name: json.dumps(values, sort_keys=True)}))
