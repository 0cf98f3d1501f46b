"""Actions for the job engine tests, imported by the test workers (`--import tests.jobs_actions`).

They record what they do in the Redis list `test:calls` and wait on Redis keys, so tests control timing by
setting keys instead of sleeping.
"""

from __future__ import annotations

import os
import time

from redis import Redis

from bot.engine.actions import Resources, StepContext, action

CALLS = "test:calls"


def make_resources(cluster: str = "") -> Resources:
    """The worker's resources_factory in tests: what kube clients are in production."""
    return Resources(redis=Redis.from_url(os.environ["KUBEMAINT_TEST_REDIS_URL"]))


def _redis(ctx: StepContext) -> Redis:
    return ctx.resources["redis"]


def _wait(ctx: StepContext, key: str, timeout: float, check_cancel: bool = True) -> None:
    r = _redis(ctx)
    deadline = time.monotonic() + timeout
    polls = 0
    while not r.exists(key):
        if check_cancel:
            ctx.stop_if_cancelled()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} did not appear within {timeout}s")
        polls += 1
        if polls % 25 == 0:
            ctx.progress(f"waiting for {key}")
        time.sleep(0.02)


@action("test.record")
def record(ctx: StepContext, item: str | None = None) -> str:
    _redis(ctx).rpush(CALLS, item or ctx.step)
    return f"recorded {item or ctx.step}"


@action("test.whoami")
def whoami(ctx: StepContext) -> str:
    """What a step knows of its job: node commands are audited with it."""
    _redis(ctx).rpush(CALLS, f"{ctx.job_id} {ctx.requester}")
    return "asked"


@action("test.fail_unless")
def fail_unless(ctx: StepContext, key: str) -> str:
    r = _redis(ctx)
    r.rpush(CALLS, f"try:{ctx.step}")
    if not r.exists(key):
        raise RuntimeError(f"precondition {key} is not met")
    return f"{key} is set"


@action("test.wait_for_key")
def wait_for_key(ctx: StepContext, key: str, timeout: float = 60, check_cancel: bool = True) -> str:
    r = _redis(ctx)
    r.rpush(CALLS, f"start:{ctx.step}")
    _wait(ctx, key, timeout, check_cancel)
    r.rpush(CALLS, f"end:{ctx.step}")
    return f"{key} appeared"


@action("test.units")
def units(ctx: StepContext, count: int, pause_at: int, key: str) -> str:
    """Work in units, checkpointing after each one; before unit `pause_at` it waits for `key`."""
    r = _redis(ctx)
    r.rpush(CALLS, f"start:{ctx.step}")
    first = ctx.checkpoint_data.get("next", 0)
    for i in range(first, count):
        if i == pause_at:
            _wait(ctx, key, 60)
        r.rpush(CALLS, f"unit{i}")
        ctx.checkpoint_data["next"] = i + 1
        ctx.progress(f"{i + 1}/{count} units")
    return f"{count} units done (this run started at unit {first})"


@action("test.share")
def share(ctx: StepContext, key: str, value: str) -> str:
    ctx.job_data[key] = value
    return f"shared {key}={value}"


@action("test.read_shared")
def read_shared(ctx: StepContext, key: str) -> str:
    value = ctx.job_data.get(key)
    _redis(ctx).rpush(CALLS, f"read:{value}")
    return f"{key} is {value}"
