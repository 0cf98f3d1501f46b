"""The job engine's Prometheus metrics (docs/operations.md, "Metrics").

Counted where they happen: in a worker, the job runs and steps it ran. The queue's gauges are not
kept here but read from Redis when scraped (`queue_stats`), so any process with Redis can report them.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from redis import Redis
from rq import Queue

from bot.engine.queue import QUEUE_NAME
from bot.engine.store import job_key

JOBS = Counter("kubemaint_jobs", "Job runs that ended, by the operation and the state they left the job in "
                                 "(succeeded, failed, cancelled, halted, paused, scheduled)", ["verb", "state"])
# Steps run from a fraction of a second (cordon) to an hour (an OS upgrade's reboot wait).
STEP_SECONDS = Histogram("kubemaint_step_duration_seconds", "How long a step's action ran, by action and outcome "
                         "(done, failed, stopped: cancelled or paused at a safe point)", ["action", "outcome"],
                         buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))


def queue_stats(redis: Redis, now: float | None = None) -> tuple[int, float]:
    """How many jobs wait in the queue, and how long the oldest has waited (0 when none does)."""
    key = Queue(QUEUE_NAME, connection=redis).key
    with redis.pipeline(transaction=False) as pipe:
        pipe.llen(key)
        pipe.lindex(key, 0)  # RQ pushes on the right: the left end is the oldest
        depth, oldest = pipe.execute()
    if not depth or oldest is None:
        return 0, 0.0
    queued_at = redis.hget(job_key(oldest.decode() if isinstance(oldest, bytes) else oldest), "queued_at")
    if queued_at is None:
        return int(depth), 0.0
    return int(depth), max(0.0, (time.time() if now is None else now) - float(queued_at))
