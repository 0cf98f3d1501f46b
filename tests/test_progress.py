"""The progress publisher: what a job's thread is told when no event says it, a worker that
stopped beating and a Redis that lost its data."""

from __future__ import annotations

import pytest
from redis import Redis

from bot.chat.progress import ProgressPublisher, remember_message
from bot.chat.throttle import EditThrottle
from bot.engine import JobSpec, Step, submit
from bot.engine.ending import Ending, EndKind
from bot.engine.store import job_key
from tests.fake_clock import Clock

pytest_plugins = ["tests.redis_fixtures"]


class Chat:
    def __init__(self) -> None:
        self.updates: list[tuple[str, str, str]] = []
        self.posts: list[tuple[str, str, str | None]] = []

    def update(self, channel, ts, text, *, blocks=None) -> None:
        self.updates.append((channel, ts, text))

    def post(self, channel, text, *, thread_ts=None, blocks=None) -> str:
        self.posts.append((channel, text, thread_ts))
        return f"1700000100.{len(self.posts):06d}"


@pytest.fixture
def setting(r: Redis):
    chat, wall = Chat(), Clock(1_800_000_000.0)
    described: list[str] = []

    def describe(command: str):
        described.append(command)
        return ["node01 is cordoned; 3 pods the drain would evict are still on it: shop/a, shop/b, shop/c."], \
            "uncordon node01"

    publisher = ProgressPublisher(r, chat, EditThrottle(per_job_interval=0, per_minute=1000), wall_clock=wall,
                                  describe=describe, loss_grace=10)
    publisher.start()
    spec = JobSpec.create("drain", "drain node01 --force", "U1", [Step("cordon node01", "cordon", {"node": "node01"}),
                          Step("evict pods from node01", "drain.evict", {"node": "node01"})],
                          channel="C1", thread_ts="1799999999.000100")
    spec.created_at = wall.now
    submit(r, spec)
    remember_message(r, spec.id, "C1", "1799999999.000200")
    r.hset(job_key(spec.id), mapping={"state": "running", "started_at": wall.now, "alive_at": wall.now})
    publisher.dirty[spec.id] = 0.0
    publisher.flush()
    return publisher, chat, wall, spec, described


def test_a_running_job_whose_worker_stopped_beating_says_so_after_fifteen_seconds(setting, r: Redis):
    publisher, chat, wall, spec, _ = setting
    assert "Running for" in chat.updates[-1][2]
    wall.now += 10
    publisher.watch()
    publisher.flush()
    assert "worker lost" not in chat.updates[-1][2]
    wall.now += 6
    publisher.watch()
    publisher.flush()
    assert "⚠️ Worker lost at 08:00:00 UTC, waiting for a worker to resume it (for 16s)" in chat.updates[-1][2]
    r.hset(job_key(spec.id), "alive_at", wall.now)  # a worker took it over
    publisher.watch()
    publisher.dirty[spec.id] = 0.0
    publisher.flush()
    assert "worker lost" not in chat.updates[-1][2].lower()


def test_a_job_redis_forgot_is_told_in_its_thread_with_what_is_true_now(setting, r: Redis):
    publisher, chat, wall, spec, described = setting
    r.flushall()  # Redis restarted without its data; no worker had the job to write it back
    publisher.watch()
    assert chat.posts == []  # a worker may still write it back: wait the grace
    wall.now += 10
    publisher.watch()
    assert described == ["drain node01 --force"]
    channel, text, thread = chat.posts[-1]
    assert (channel, thread) == ("C1", "1799999999.000100")
    assert f"kubemaint's Redis lost its data (it restarted without it) before job `{spec.id}`" in text
    assert "kubemaint no longer knows this job. To finish: ask again, `drain node01 --force`." in text
    assert "Now: node01 is cordoned; 3 pods the drain would evict are still on it" in text
    assert "To undo: `uncordon node01`." in text
    assert chat.updates[-1][1] == "1799999999.000200"  # its progress message no longer says running
    assert "halted" in chat.updates[-1][2] and "lost its data" in chat.updates[-1][2]
    publisher.watch()
    assert len(chat.posts) == 1  # said once


def test_a_job_its_worker_wrote_back_is_told_with_resume(setting, r: Redis):
    publisher, chat, wall, spec, _ = setting
    r.flushall()
    publisher.watch()
    # What the worker does (bot/engine/runner.py _keep_from_memory), in short:
    r.hset(job_key(spec.id), mapping={"spec": spec.to_json(), "state": "halted", "finished_at": wall.now,
                                      "ending": Ending(EndKind.STATE_LOST, step="evict pods from node01").to_json()})
    publisher.dirty[spec.id] = 0.0
    publisher.flush()
    assert chat.updates[-1][1] == "1799999999.000200"  # the same message, though Redis forgot which it was
    assert "Redis lost its data during step 'evict pods from node01'" in chat.updates[-1][2]
    text = chat.posts[-1][1]
    assert f"its worker wrote the job back, halted, from its own memory. To finish: `resume {spec.id}`" in text
    wall.now += 10
    publisher.watch()
    assert len(chat.posts) == 1


def test_what_happened_while_the_bot_was_down_reaches_the_thread(setting, r: Redis):
    """A job that finished while no publisher ran: the next one goes on from the last event shown."""
    publisher, _, wall, spec, _ = setting
    publisher.poll()  # the first publisher has shown everything so far, then the bot stops
    r.hset(job_key(spec.id), mapping={"state": "succeeded", "finished_at": wall.now,
                                      "ending": Ending(EndKind.SUCCEEDED).to_json()})
    r.srem("kubemaint:jobs:active", spec.id)
    r.xadd("kubemaint:events", {"job": spec.id, "state": "succeeded"})
    later = Chat()
    restarted = ProgressPublisher(r, later, EditThrottle(per_job_interval=0, per_minute=1000), wall_clock=wall)
    restarted.start()
    restarted.poll()
    assert later.updates and "succeeded" in later.updates[-1][2].split("\n")[0]
