"""Jobs in Redis: spec, job state, per-step checkpoints, progress events, and the reads behind `jobs` / `job ID`.

Layout (all keys start with `kubemaint:`):

    kubemaint:job:{id}          hash: spec (JSON), state, ending (JSON, once it ended), worker, pid, run, attempts,
                                recoveries, cancel_requested_by/_at, pause_requested_by/_at, current_step, start_at
                                (while scheduled), queued_at, started_at, updated_at, finished_at, alive_at (the
                                running run's last heartbeat)
    kubemaint:job:{id}:steps    hash: step name -> JSON {state, detail, started_at, finished_at, runs}
    kubemaint:job:{id}:data     hash: step name -> JSON dict (the action's `checkpoint_data`); "@job" -> the
                                job-level data steps share (`ctx.job_data`)
    kubemaint:job:{id}:runner   string with a short TTL: the run token of the process running the job
    kubemaint:jobs              sorted set: job ids by creation time (for `jobs`)
    kubemaint:jobs:active       set: job ids queued or running (what the sweeper watches)
    kubemaint:jobs:scheduled    sorted set: scheduled job ids by start_at (the sweepers queue each one when due)
    kubemaint:events            stream: job, state, step, step_state, detail, ts

While a job runs, every write about it goes through `fenced()`: a Lua script that applies the writes only if
the runner key still holds the writer's token. A process that lost its job (frozen past the heartbeat TTL,
then resumed elsewhere) can therefore never overwrite the new runner's checkpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis import Redis

from bot.domain.ids import is_job_id
from bot.engine.ending import Ending
from bot.engine.model import JobSpec

EVENTS_STREAM = "kubemaint:events"
EVENTS_MAXLEN = 10_000
JOBS_INDEX = "kubemaint:jobs"
ACTIVE_JOBS = "kubemaint:jobs:active"
SCHEDULED_JOBS = "kubemaint:jobs:scheduled"
JOBS_INDEX_MAX = 1_000
# Finished jobs stay readable for `job ID` this long; the audit stream keeps the record beyond that.
FINISHED_JOB_TTL = 30 * 24 * 3600


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HALTED = "halted"
    PAUSED = "paused"  # stopped at a safe point on request; waits for `resume` or `cancel`
    SCHEDULED = "scheduled"  # waits for its start_at (a first start, or a pause that continues by itself)


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


# Queued or running: a run is to come or under way. Every other state is the end of a run (or a wait
# before the first): failed, halted, paused and scheduled jobs can be resumed, succeeded and cancelled
# ones are over for good. A scheduled job also starts by itself at its start_at.
ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})


def job_key(job_id: str) -> str:
    return f"kubemaint:job:{job_id}"


def steps_key(job_id: str) -> str:
    return f"kubemaint:job:{job_id}:steps"


def data_key(job_id: str) -> str:
    return f"kubemaint:job:{job_id}:data"


def runner_key(job_id: str) -> str:
    return f"kubemaint:job:{job_id}:runner"


def text(value: Any) -> str:
    """Redis replies as str whether or not the client decodes responses."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    raw = text(value)
    return float(raw) if raw else None


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


# -- records ---------------------------------------------------------------------------------------


@dataclass
class StepRecord:
    name: str
    action: str
    args: dict[str, Any]
    state: str = StepState.PENDING
    detail: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    runs: int = 0  # how many times the step was started: >1 means it was re-run after a crash or a resume

    def to_json(self) -> str:
        return json.dumps({"state": str(self.state), "detail": self.detail, "started_at": self.started_at,
                           "finished_at": self.finished_at, "runs": self.runs})


@dataclass
class JobRecord:
    spec: JobSpec
    state: str
    ending: Ending | None = None  # how the last run ended; None while queued or running the first time
    worker: str = ""
    pid: int | None = None
    run: str = ""
    attempts: int = 0
    recoveries: int = 0
    current_step: str = ""
    queue: str = ""
    cancel_requested_by: str = ""
    cancel_requested_at: float | None = None
    pause_requested_by: str = ""
    pause_requested_at: float | None = None
    start_at: float | None = None  # while scheduled: when it is queued
    queued_at: float | None = None
    started_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    alive_at: float | None = None  # the running run's last heartbeat
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def steps_in(self, *states: str) -> list[StepRecord]:
        return [s for s in self.steps if s.state in states]

    def steps_not_done(self) -> list[StepRecord]:
        return [s for s in self.steps if s.state != StepState.DONE]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def _step_records(spec: JobSpec, raw_steps: Mapping[str, str]) -> list[StepRecord]:
    records = []
    for step in spec.steps:
        record = StepRecord(step.name, step.action, dict(step.args))
        raw = raw_steps.get(step.name)
        if raw:
            data = json.loads(raw)
            record.state = data.get("state") or StepState.PENDING
            record.detail = data.get("detail") or ""
            record.started_at = data.get("started_at")
            record.finished_at = data.get("finished_at")
            record.runs = int(data.get("runs") or 0)
        records.append(record)
    return records


def _job_record(raw_job: Mapping[str, str], raw_steps: Mapping[str, str]) -> JobRecord | None:
    if not raw_job.get("spec"):
        return None
    spec = JobSpec.from_json(raw_job["spec"])
    pid = raw_job.get("pid")
    return JobRecord(
        spec=spec, state=raw_job.get("state") or JobState.QUEUED,
        ending=Ending.from_json(raw_job["ending"]) if raw_job.get("ending") else None,
        worker=raw_job.get("worker", ""), pid=int(pid) if pid else None, run=raw_job.get("run", ""),
        attempts=int(raw_job.get("attempts") or 0), recoveries=int(raw_job.get("recoveries") or 0),
        current_step=raw_job.get("current_step", ""), queue=raw_job.get("queue", ""),
        cancel_requested_by=raw_job.get("cancel_requested_by", ""),
        cancel_requested_at=_float(raw_job.get("cancel_requested_at")),
        pause_requested_by=raw_job.get("pause_requested_by", ""),
        pause_requested_at=_float(raw_job.get("pause_requested_at")),
        start_at=_float(raw_job.get("start_at")),
        queued_at=_float(raw_job.get("queued_at")), started_at=_float(raw_job.get("started_at")),
        updated_at=_float(raw_job.get("updated_at")), finished_at=_float(raw_job.get("finished_at")),
        alive_at=_float(raw_job.get("alive_at")),
        steps=_step_records(spec, raw_steps),
    )


def get_job(redis: Redis, job_id: str) -> JobRecord | None:
    """One job with its steps (for `job ID`), or None if the id is unknown or expired."""
    if not is_job_id(job_id):
        return None
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_key(job_id))
        pipe.hgetall(steps_key(job_id))
        raw_job, raw_steps = pipe.execute()
    return _job_record(decode_hash(raw_job), decode_hash(raw_steps))


def list_jobs(redis: Redis, limit: int = 20, states: Iterable[str] | None = None) -> list[JobRecord]:
    """Most recent jobs first (for `jobs`); `states` filters, e.g. {"queued", "running"}."""
    wanted = set(states) if states is not None else None
    ids = [text(i) for i in redis.zrevrange(JOBS_INDEX, 0, -1 if wanted else max(limit - 1, 0))]
    records: list[JobRecord] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        with redis.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hgetall(job_key(job_id))
                pipe.hgetall(steps_key(job_id))
            replies = pipe.execute()
        for i in range(len(chunk)):
            record = _job_record(decode_hash(replies[2 * i]), decode_hash(replies[2 * i + 1]))
            if record is not None and (wanted is None or record.state in wanted):
                records.append(record)
                if len(records) >= limit:
                    return records
    return records


def read_checkpoint_data(redis: Redis, job_id: str, step_name: str) -> dict[str, Any]:
    raw = redis.hget(data_key(job_id), step_name)
    return json.loads(raw) if raw else {}


# -- events ----------------------------------------------------------------------------------------


def event_fields(job_id: str, state: str, step: str = "", step_state: str = "", detail: str = "") -> dict[str, str]:
    return {"job": job_id, "state": str(state), "step": step, "step_state": str(step_state), "detail": detail,
            "ts": f"{time.time():.3f}"}


def read_events(redis: Redis, job_id: str | None = None, after: str = "-", count: int | None = None
                ) -> list[dict[str, str]]:
    """Events in stream order (each with its stream `id`), optionally only one job's."""
    entries = redis.xrange(EVENTS_STREAM, min=after, max="+", count=count)
    events = []
    for entry_id, fields in entries:
        event = decode_hash(fields)
        if job_id is None or event.get("job") == job_id:
            event["id"] = text(entry_id)
            events.append(event)
    return events


# -- fenced writes ---------------------------------------------------------------------------------

# KEYS[1] is the runner key, ARGV[1] the writer's token, ARGV[2] a JSON list of operations whose
# second element is an index into KEYS. A tiny interpreter keeps each checkpoint one atomic script.
_FENCED_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, op in ipairs(cjson.decode(ARGV[2])) do
  local name, key = op[1], KEYS[op[2]]
  if name == 'hset' then redis.call('HSET', key, unpack(op, 3))
  elseif name == 'xadd' then redis.call('XADD', key, 'MAXLEN', '~', op[3], '*', unpack(op, 4))
  elseif name == 'hdel' then redis.call('HDEL', key, unpack(op, 3))
  elseif name == 'srem' then redis.call('SREM', key, op[3])
  elseif name == 'zadd' then redis.call('ZADD', key, op[3], op[4])
  elseif name == 'expire' then redis.call('EXPIRE', key, op[3])
  elseif name == 'del' then redis.call('DEL', key)
  end
end
return 1
"""


class Ops:
    """Writes to apply atomically, either fenced by a run token or inside a MULTI block."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ops: list[list[Any]] = []

    def _key(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 2  # KEYS[1] is the runner key

    def hset(self, key: str, mapping: Mapping[str, Any]) -> Ops:
        flat: list[Any] = [self._key(key)]
        for k, v in mapping.items():
            flat += [k, "" if v is None else str(v)]
        self.ops.append(["hset", *flat])
        return self

    def event(self, fields: Mapping[str, str]) -> Ops:
        flat: list[Any] = []
        for k, v in fields.items():
            flat += [k, v]
        self.ops.append(["xadd", self._key(EVENTS_STREAM), EVENTS_MAXLEN, *flat])
        return self

    def hdel(self, key: str, *fields: str) -> Ops:
        self.ops.append(["hdel", self._key(key), *fields])
        return self

    def srem(self, key: str, member: str) -> Ops:
        self.ops.append(["srem", self._key(key), member])
        return self

    def zadd(self, key: str, member: str, score: float) -> Ops:
        self.ops.append(["zadd", self._key(key), repr(float(score)), member])
        return self

    def expire(self, key: str, seconds: int) -> Ops:
        self.ops.append(["expire", self._key(key), int(seconds)])
        return self

    def delete(self, key: str) -> Ops:
        self.ops.append(["del", self._key(key)])
        return self

    def apply_to(self, pipe: Any) -> None:
        """Queue the same writes on a pipeline (for callers that are not the runner: submit, cancel, sweep)."""
        for op in self.ops:
            name, key = op[0], self.keys[op[1] - 2]
            if name == "hset":
                pipe.hset(key, mapping=dict(zip(op[2::2], op[3::2], strict=True)))
            elif name == "xadd":
                pipe.xadd(key, dict(zip(op[3::2], op[4::2], strict=True)), maxlen=op[2], approximate=True)
            elif name == "hdel":
                pipe.hdel(key, *op[2:])
            elif name == "srem":
                pipe.srem(key, op[2])
            elif name == "zadd":
                pipe.zadd(key, {op[3]: float(op[2])})
            elif name == "expire":
                pipe.expire(key, op[2])
            elif name == "del":
                pipe.delete(key)


def fenced(redis: Redis, job_id: str, token: str, ops: Ops) -> bool:
    """Apply `ops` only if `token` still owns the job; False means another run owns it now."""
    script = redis.register_script(_FENCED_LUA)
    return bool(script(keys=[runner_key(job_id), *ops.keys], args=[token, json.dumps(ops.ops)]))


PAUSE_FIELDS = ("pause_requested_by", "pause_requested_at")


def finished_ops(ops: Ops, job_id: str, state: str, now: float) -> Ops:
    """The bookkeeping every terminal or resumable end shares (a pause too: a paused job left alone
    expires like a failed one)."""
    ops.hset(job_key(job_id), {"state": state, "finished_at": now, "updated_at": now})
    ops.srem(ACTIVE_JOBS, job_id)
    ops.hdel(job_key(job_id), *PAUSE_FIELDS)  # a pause asked of this run is answered by its end
    for key in (job_key(job_id), steps_key(job_id), data_key(job_id)):
        ops.expire(key, FINISHED_JOB_TTL)  # `resume` persists them again
    return ops


def scheduled_ops(ops: Ops, job_id: str, start_at: float, now: float) -> Ops:
    """A run that ends to continue at `start_at` by itself: out of the active set, into the schedule.
    Its keys keep no TTL: the job must still be there when its time comes."""
    ops.hset(job_key(job_id), {"state": JobState.SCHEDULED, "start_at": start_at, "finished_at": now,
                               "updated_at": now})
    ops.srem(ACTIVE_JOBS, job_id)
    ops.hdel(job_key(job_id), *PAUSE_FIELDS)
    ops.zadd(SCHEDULED_JOBS, job_id, start_at)
    return ops
