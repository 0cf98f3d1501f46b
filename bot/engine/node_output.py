"""What node commands printed, kept with their job: the last `KEPT` commands of a job with their
redacted output tails (`kubemaint:job:{id}:node-output`, a list of JSON entries), for `job ID` and for
whoever investigates a failed step. The audit trail records that a command ran; this keeps what it said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis import Redis

from bot.engine.store import FINISHED_JOB_TTL

KEPT = 50  # per job: an upgrade of a big cluster runs thousands of commands; the last ones explain a failure


def node_output_key(job_id: str) -> str:
    return f"kubemaint:job:{job_id}:node-output"


def keep_node_output(redis: Redis, job_id: str, entry: Mapping[str, Any]) -> None:
    """Append one command's entry (node, command, exit_code, duration_s, outcome, stdout_tail, stderr_tail)."""
    key = node_output_key(job_id)
    with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, json.dumps(dict(entry)))
        pipe.ltrim(key, -KEPT, -1)
        pipe.expire(key, FINISHED_JOB_TTL)  # as long as a finished job stays readable
        pipe.execute()


def node_outputs(redis: Redis, job_id: str, last: int = KEPT) -> list[dict[str, Any]]:
    """The job's last `last` node commands, oldest first."""
    return [json.loads(raw) for raw in redis.lrange(node_output_key(job_id), -last, -1)]
