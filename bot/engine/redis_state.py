"""Is this still the Redis we wrote to? And is it set up to keep what we write?

Redis holds every job, lock and approval. A Redis that restarts without persistence comes back
empty, and a worker would then find its job gone. The epoch marker tells "Redis lost its data"
apart from "another run owns this job": every process writes it if missing at start and
remembers its value; a process that later finds it missing or different knows the data it
relied on is gone.
"""

from __future__ import annotations

import secrets
import time

from redis import Redis
from redis.exceptions import RedisError, ResponseError

EPOCH_KEY = "kubemaint:epoch"


def epoch(redis: Redis) -> str:
    """The marker's value, written first if this Redis has none (a new or emptied one)."""
    redis.set(EPOCH_KEY, f"{time.time():.0f}-{secrets.token_hex(4)}", nx=True)
    value = redis.get(EPOCH_KEY)
    return value.decode() if isinstance(value, bytes) else str(value)


def lost_since(redis: Redis, known: str) -> bool:
    """Did Redis lose its data since the marker read `known`? (Call `epoch` to mark it again.)"""
    current = redis.get(EPOCH_KEY)
    return (current.decode() if isinstance(current, bytes) else current) != known


def persistence_warnings(redis: Redis) -> list[str]:
    """What in this Redis's set-up could lose kubemaint's state. Raises RedisError if unreachable."""
    warnings = []
    persistence = redis.info("persistence")
    if not int(persistence.get("aof_enabled", 0)):
        try:
            save = (redis.config_get("save") or {}).get("save", "")
        except ResponseError:  # CONFIG disabled (managed Redis): only INFO tells
            save = "unknown"
        if save:
            warnings.append("Redis has append-only persistence off: a crash or restart loses what changed since its "
                            f"last RDB snapshot (save {save}). Set appendonly yes and appendfsync always.")
        else:
            warnings.append("Redis has no persistence (no append-only file, no snapshots): a restart loses every "
                            "job, lock and approval. Set appendonly yes and appendfsync always.")
    elif (fsync := _config(redis, "appendfsync")) not in ("always", None):
        warnings.append(f"Redis syncs its append-only file {fsync}: a crash can lose up to 2 s of writes it "
                        "already acknowledged (an approval, a chat edit, a step done). Set appendfsync always "
                        "(kubemaint writes little: see docs/benchmarks.md).")
    policy = str(redis.info("memory").get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        warnings.append(f"Redis's maxmemory-policy is {policy}: when memory runs short it may evict jobs, locks "
                        "and approvals. Set maxmemory-policy noeviction.")
    return warnings


def _config(redis: Redis, name: str) -> str | None:
    """A CONFIG value; None where CONFIG is disabled (managed Redis)."""
    try:
        return (redis.config_get(name) or {}).get(name)
    except ResponseError:
        return None


def check(redis: Redis) -> list[str]:
    """`persistence_warnings`, or why they could not be read."""
    try:
        return persistence_warnings(redis)
    except RedisError as error:
        return [f"cannot check Redis's persistence: {error}"]
