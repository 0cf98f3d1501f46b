"""One writer per target: a Redis key per lock (`node:node01`, `cluster`), with a TTL and a recorded holder.

A lock's value names its holder: job id, run token, worker name, pid, command and since when. The running
job refreshes its locks (compare-and-refresh in Lua) well inside the TTL. A holder is *dead* when its key
expired or when its run no longer owns the job (the job's runner heartbeat is gone or belongs to another
run): a dead holder's lock is taken over at once; a live holder's lock is never stolen. A job re-takes the
locks of its own earlier run (a resumed job). Taking several locks is all or none.

Contention policy: the runner waits for a busy lock up to a deadline (`Timings.lock_wait`, 30 s by default;
0 = fail fast), posting one "waiting for ..." event, then fails the job with the holder's description and
without having changed anything. A short wait lets back-to-back commands on one node (cordon, then drain)
run in order; a long-running holder (an upgrade) gets a clear refusal instead of a silently stuck job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from redis import Redis

from bot.engine.store import runner_key, text

LOCK_PREFIX = "kubemaint:lock:"

_ACQUIRE_LUA = """
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local expected = ARGV[i + 2]
  if (current == false and expected ~= '') or (current ~= false and current ~= expected) then return i end
end
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
return 0
"""

_REFRESH_LUA = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) else table.insert(lost, i) end
end
return lost
"""

_RELEASE_LUA = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key); released = released + 1 end
end
return released
"""


def lock_key(target: str) -> str:
    return LOCK_PREFIX + target


def qualify(target: str, cluster: str) -> str:
    """A plan's lock target ("node:node01", "cluster") as cluster `cluster`'s own ("prod/node:node01"): with
    several clusters, two clusters' node01 are two nodes. An unnamed single cluster's targets stay as they are."""
    return f"{cluster}/{target}" if cluster else target


def describe_target(target: str) -> str:
    cluster, _, own = target.rpartition("/")
    kind, _, name = own.partition(":")
    if own == "cluster":
        return f"cluster {cluster}" if cluster else "the cluster"
    described = name if kind == "node" and name else own
    return f"{described} in {cluster}" if cluster else described


def format_since(ts: float, now: float | None = None) -> str:
    ago = max(0, int((now or time.time()) - ts))
    if ago < 120:
        age = f"{ago}s ago"
    elif ago < 7200:
        age = f"{ago // 60}m ago"
    else:
        age = f"{ago // 3600}h ago"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) + f" ({age})"


@dataclass(frozen=True)
class LockHolder:
    job: str
    run: str
    worker: str
    pid: int
    command: str
    since: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> LockHolder:
        try:
            data = json.loads(raw)
            return cls(str(data["job"]), str(data["run"]), str(data["worker"]), int(data["pid"]),
                       str(data["command"]), float(data["since"]))
        except (ValueError, KeyError, TypeError):
            # Not ours: never treat it as dead (its TTL, if any, will free it).
            return cls("unknown", "", "unknown", 0, f"unreadable lock value {text(raw)[:60]!r}", time.time())


class LockBusy(Exception):
    """A target is held by another live job."""

    def __init__(self, target: str, holder: LockHolder) -> None:
        self.target = target
        self.holder = holder
        super().__init__(f"{describe_target(target)} is locked by job {holder.job} ({holder.command}) "
                         f"since {format_since(holder.since)}")


def holder_alive(redis: Redis, holder: LockHolder) -> bool:
    """Alive = the holder's run still owns its job (its runner heartbeat carries the holder's run token)."""
    if holder.job == "unknown":
        return True
    return text(redis.get(runner_key(holder.job))) == holder.run


def read_locks(redis: Redis, targets: Iterable[str]) -> dict[str, LockHolder]:
    """Current holders of `targets` (live or not), e.g. for the bot to say "node01 is busy" before enqueueing."""
    wanted = sorted(set(targets))
    values = redis.mget([lock_key(t) for t in wanted]) if wanted else []
    return {t: LockHolder.from_json(v) for t, v in zip(wanted, values, strict=True) if v is not None}


def try_acquire(redis: Redis, targets: Iterable[str], me: LockHolder, ttl: float) -> LockBusy | None:
    """Take every target or none; returns the first live holder in the way, or None when all are ours."""
    wanted = sorted(set(targets))
    if not wanted:
        return None
    keys = [lock_key(t) for t in wanted]
    script = redis.register_script(_ACQUIRE_LUA)
    while True:
        expected = []
        for target, raw in zip(wanted, redis.mget(keys), strict=True):
            if raw is None:
                expected.append("")
                continue
            holder = LockHolder.from_json(raw)
            if holder.job != me.job and holder_alive(redis, holder):
                return LockBusy(target, holder)
            expected.append(text(raw))  # free, ours from an earlier run, or a dead holder's: take it over
        if script(keys=keys, args=[me.to_json(), int(ttl * 1000), *expected]) == 0:
            return None
        # A value changed between the read and the script: look again.


def acquire(redis: Redis, targets: Iterable[str], me: LockHolder, ttl: float, wait: float, *,
            on_wait: Callable[[LockBusy], None] | None = None, should_stop: Callable[[], bool] | None = None,
            poll: float = 0.2) -> bool:
    """Take all `targets`, waiting up to `wait` seconds for live holders.

    Returns False if `should_stop()` became true while waiting; raises LockBusy when the deadline passes.
    """
    deadline = time.monotonic() + wait
    waited = False
    while True:
        busy = try_acquire(redis, targets, me, ttl)
        if busy is None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise busy
        if not waited and on_wait is not None:
            on_wait(busy)
        waited = True
        if should_stop is not None and should_stop():
            return False
        time.sleep(min(poll, remaining))


def refresh(redis: Redis, targets: Iterable[str], me: LockHolder, ttl: float) -> list[str]:
    """Extend our locks; returns the targets that are no longer ours."""
    wanted = sorted(set(targets))
    if not wanted:
        return []
    script = redis.register_script(_REFRESH_LUA)
    lost = script(keys=[lock_key(t) for t in wanted], args=[me.to_json(), int(ttl * 1000)])
    return [wanted[int(i) - 1] for i in lost]


def release(redis: Redis, targets: Iterable[str], me: LockHolder) -> int:
    """Delete the locks we hold (never someone else's); returns how many were released."""
    wanted = sorted(set(targets))
    if not wanted:
        return 0
    script = redis.register_script(_RELEASE_LUA)
    return int(script(keys=[lock_key(t) for t in wanted], args=[me.to_json()]))
