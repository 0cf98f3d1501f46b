"""Actions for the pause and schedule tests (workers load them with `--import tests.pause_actions`).

Like tests/jobs_actions.py they record what they do in `test:calls` and wait on Redis keys set by the test.
"""

from __future__ import annotations

import time

from redis import Redis

from bot.engine.actions import JobPaused, StepContext, action
from tests.jobs_actions import CALLS


def _redis(ctx: StepContext) -> Redis:
    return ctx.resources["redis"]


@action("test.rollout")
def rollout(ctx: StepContext, nodes: list[str]) -> str:
    """A rollout node by node, as `reboot --needed` runs: node N starts once `test:go:N` exists and ends once
    `test:finish:N` exists. While it waits to start a node it honours a pause; a node under way always ends."""
    r = _redis(ctx)
    done = list(ctx.checkpoint_data.get("done", []))
    r.rpush(CALLS, f"start:{ctx.step}")
    for node in nodes:
        if node in done:
            continue
        while not r.exists(f"test:go:{node}"):
            if ctx.pause_requested():
                raise JobPaused()
            ctx.stop_if_cancelled()
            time.sleep(0.02)
        r.rpush(CALLS, f"begin:{node}")
        while not r.exists(f"test:finish:{node}"):
            time.sleep(0.02)  # the node under way finishes whatever is asked meanwhile
        r.rpush(CALLS, f"end:{node}")
        done.append(node)
        ctx.checkpoint_data["done"] = done
    return f"{len(nodes)} nodes done"


@action("test.window")
def window(ctx: StepContext, nodes: list[str], after: float) -> str:
    """Does the first node, then finds the maintenance window over: it continues `after` seconds later."""
    r = _redis(ctx)
    done = list(ctx.checkpoint_data.get("done", []))
    r.rpush(CALLS, f"start:{ctx.step}@{time.time():.3f}")
    for node in nodes:
        if node in done:
            continue
        if done and not ctx.checkpoint_data.get("waited"):
            ctx.checkpoint_data["waited"] = True
            until = time.time() + after
            ctx.checkpoint_data["until"] = until
            raise JobPaused("the maintenance window ended", until=until)
        r.rpush(CALLS, f"node:{node}")
        done.append(node)
        ctx.checkpoint_data["done"] = done
    return f"{len(nodes)} nodes done"
