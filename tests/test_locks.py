"""Locks: one writer per target. Unit-level against a real redis-server, then with real workers."""

from __future__ import annotations

import threading
import time

import pytest
from redis import Redis

from bot.contract.reports import ending_text
from bot.engine import JobSpec, Step, get_job, read_events, resume, submit
from bot.engine.locks import LockBusy, LockHolder, acquire, lock_key, read_locks, refresh, release, try_acquire
from bot.engine.store import runner_key
from tests.jobs_support import Workers, calls, wait_for, wait_for_state, wait_for_step

pytest_plugins = ["tests.redis_fixtures"]


def holder(job: str, run: str, command: str = "cordon node01") -> LockHolder:
    return LockHolder(job, run, "w1", 4242, command, time.time())


def alive(r: Redis, h: LockHolder) -> LockHolder:
    """Give `h` a live runner heartbeat, as a running job has."""
    r.set(runner_key(h.job), h.run, px=60_000)
    return h


def test_all_or_none_and_a_clear_refusal(r: Redis) -> None:
    first = alive(r, holder("j-aaaaaaaa", "run-a"))
    assert try_acquire(r, ["node:node01"], first, ttl=15) is None
    second = alive(r, holder("j-bbbbbbbb", "run-b", "drain node02"))

    busy = try_acquire(r, ["node:node02", "node:node01"], second, ttl=15)
    assert isinstance(busy, LockBusy) and busy.holder == first
    assert str(busy).startswith("node01 is locked by job j-aaaaaaaa (cordon node01) since ")
    assert not r.exists(lock_key("node:node02"))  # none: the free lock was not taken either
    assert read_locks(r, ["node:node01", "node:node02"]) == {"node:node01": first}
    assert str(try_acquire(r, ["cluster", "node:node01"], second, 15)).startswith("node01 is locked")


def test_a_live_holder_is_never_stolen_and_release_only_frees_ones_own(r: Redis) -> None:
    first = alive(r, holder("j-aaaaaaaa", "run-a"))
    assert try_acquire(r, ["cluster"], first, ttl=15) is None
    other = alive(r, holder("j-bbbbbbbb", "run-b"))
    assert try_acquire(r, ["cluster"], other, ttl=15) is not None
    assert release(r, ["cluster"], other) == 0
    assert read_locks(r, ["cluster"])["cluster"] == first
    assert release(r, ["cluster"], first) == 1
    assert try_acquire(r, ["cluster"], other, ttl=15) is None


def test_a_resumed_job_retakes_its_own_lock(r: Redis) -> None:
    old_run = holder("j-aaaaaaaa", "run-1")
    assert try_acquire(r, ["node:node01"], alive(r, old_run), ttl=15) is None
    new_run = alive(r, holder("j-aaaaaaaa", "run-2"))  # the same job, claimed again after a crash
    assert try_acquire(r, ["node:node01"], new_run, ttl=15) is None
    assert read_locks(r, ["node:node01"])["node:node01"] == new_run


def test_a_dead_holders_lock_is_recovered_at_once(r: Redis) -> None:
    # Dead: its heartbeat is gone (SIGKILL), or the job is now run by someone else (it was resumed).
    gone = holder("j-aaaaaaaa", "run-a")
    assert try_acquire(r, ["node:node01"], gone, ttl=15) is None
    superseded = holder("j-cccccccc", "run-old")
    assert try_acquire(r, ["node:node02"], superseded, ttl=15) is None
    r.set(runner_key("j-cccccccc"), "run-new", px=60_000)

    taker = alive(r, holder("j-bbbbbbbb", "run-b"))
    assert try_acquire(r, ["node:node01", "node:node02"], taker, ttl=15) is None
    assert set(read_locks(r, ["node:node01", "node:node02"]).values()) == {taker}


def test_an_unreadable_lock_is_not_stolen(r: Redis) -> None:
    r.set(lock_key("node:node01"), "someone else's", px=60_000)
    busy = try_acquire(r, ["node:node01"], alive(r, holder("j-bbbbbbbb", "run-b")), ttl=15)
    assert busy is not None and "unreadable lock value" in str(busy)


def test_refresh_keeps_a_lock_beyond_its_ttl_and_notices_a_loss(r: Redis) -> None:
    me = alive(r, holder("j-aaaaaaaa", "run-a"))
    # A TTL well above the refresh period, so a busy machine's pauses do not lose the lock.
    assert try_acquire(r, ["node:node01"], me, ttl=0.8) is None
    until = time.monotonic() + 2.5  # three TTLs
    while time.monotonic() < until:
        assert refresh(r, ["node:node01"], me, ttl=0.8) == []
        time.sleep(0.1)
    assert read_locks(r, ["node:node01"])["node:node01"] == me
    wait_for(lambda: not r.exists(lock_key("node:node01")), timeout=5, message="the unrefreshed lock to expire")
    assert refresh(r, ["node:node01"], me, ttl=0.8) == ["node:node01"]


def test_acquire_waits_up_to_its_deadline(r: Redis) -> None:
    first = alive(r, holder("j-aaaaaaaa", "run-a"))
    assert try_acquire(r, ["node:node01"], first, ttl=15) is None
    second = alive(r, holder("j-bbbbbbbb", "run-b"))
    waits: list[LockBusy] = []

    started = time.monotonic()
    with pytest.raises(LockBusy):
        acquire(r, ["node:node01"], second, ttl=15, wait=0.3, on_wait=waits.append, poll=0.05)
    assert time.monotonic() - started >= 0.3 and len(waits) == 1

    threading.Timer(0.2, release, args=(r, ["node:node01"], first)).start()
    assert acquire(r, ["node:node01"], second, ttl=15, wait=10, poll=0.05)
    assert not acquire(r, ["node:node01"], first, ttl=15, wait=10, should_stop=lambda: True, poll=0.05)


# -- with workers ----------------------------------------------------------------------------------


def spec_on_node01(*steps: Step, command: str) -> JobSpec:
    return JobSpec.create("test", command, "U1", list(steps), locks=["node:node01"])


def test_a_second_job_on_the_same_node_fails_fast_with_the_holder(r: Redis, workers: Workers) -> None:
    workers.start("--lock-wait", "0")
    workers.start("--lock-wait", "0")
    first = spec_on_node01(Step("hold", "test.wait_for_key", {"key": "test:go"}), command="block node01")
    submit(r, first)
    wait_for_step(r, first.id, "hold", "running")

    second = spec_on_node01(Step("x", "test.record"), command="cordon node01")
    submit(r, second)
    job = wait_for_state(r, second.id, "failed")
    assert ending_text(job).startswith(f"Not started: node01 is locked by job {first.id} (block node01) since ")
    assert ending_text(job).endswith(f"Nothing was changed; not done: 'x'. `resume {second.id}` to try again, "
                                f"or `cancel {second.id}` to drop it.")
    assert "x" not in calls(r)
    assert get_job(r, first.id).state == "running"  # the holder was not disturbed

    r.set("test:go", "1")
    wait_for_state(r, first.id, "succeeded")
    assert resume(r, second.id, "U1").accepted
    wait_for_state(r, second.id, "succeeded")
    assert calls(r)[-1] == "x"


def test_a_second_job_waits_for_the_lock_then_runs(r: Redis, workers: Workers) -> None:
    workers.start()
    workers.start()
    first = spec_on_node01(Step("hold", "test.wait_for_key", {"key": "test:go"}), command="block node01")
    submit(r, first)
    wait_for_step(r, first.id, "hold", "running")
    second = spec_on_node01(Step("x", "test.record"), command="cordon node01")
    submit(r, second)
    waiting = wait_for(lambda: [e for e in read_events(r, second.id) if e["detail"].startswith("waiting")],
                       message="the second job to wait for the lock")
    assert f"waiting up to 30s: node01 is locked by job {first.id} (block node01)" in waiting[0]["detail"]
    assert get_job(r, second.id).step("x").state == "pending"

    r.set("test:go", "1")
    second_job = wait_for_state(r, second.id, "succeeded")
    first_job = get_job(r, first.id)
    assert second_job.step("x").started_at >= first_job.step("hold").finished_at
    assert calls(r) == ["start:hold", "end:hold", "x"]


def test_a_lock_is_refreshed_beyond_its_ttl_during_a_long_step(r: Redis, workers: Workers) -> None:
    workers.start("--lock-ttl", "1")
    spec = spec_on_node01(Step("hold", "test.wait_for_key", {"key": "test:go"}), command="block node01")
    submit(r, spec)
    wait_for_step(r, spec.id, "hold", "running")
    until = time.monotonic() + 3.0  # three TTLs: without refreshes the lock would be gone
    while time.monotonic() < until:
        current = read_locks(r, ["node:node01"]).get("node:node01")
        assert current is not None and current.job == spec.id
        assert 0 < r.pttl(lock_key("node:node01")) <= 1000
        time.sleep(0.05)
    r.set("test:go", "1")
    wait_for_state(r, spec.id, "succeeded")
    assert not r.exists(lock_key("node:node01"))


def test_a_job_that_loses_its_lock_halts_at_a_safe_point(r: Redis, workers: Workers) -> None:
    workers.start("--lock-ttl", "1")
    spec = spec_on_node01(Step("hold", "test.wait_for_key", {"key": "test:go"}), Step("x", "test.record"),
                          command="block node01")
    submit(r, spec)
    wait_for_step(r, spec.id, "hold", "running")
    r.delete(lock_key("node:node01"))  # expired while the refresher was starved, say
    job = wait_for_state(r, spec.id, "halted")
    assert ending_text(job).startswith("Halted at a safe point during step 'hold': lost the lock on node01")
    assert f"`resume {spec.id}` to continue from 'hold'" in ending_text(job)
    assert [(s.name, s.state) for s in job.steps] == [("hold", "pending"), ("x", "pending")]
    r.set("test:go", "1")
    assert resume(r, spec.id, "U1").accepted
    wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == ["start:hold", "start:hold", "end:hold", "x"]


def test_a_dead_holders_lock_does_not_delay_the_next_job(r: Redis, workers: Workers) -> None:
    # Left by a job whose worker died: 15 s of TTL left, but no heartbeat.
    dead = holder("j-deadbeef", "run-dead", "drain node01")
    r.set(lock_key("node:node01"), dead.to_json(), px=15_000)
    workers.start()
    spec = spec_on_node01(Step("x", "test.record"), command="cordon node01")
    started = time.monotonic()
    submit(r, spec)
    wait_for_state(r, spec.id, "succeeded", timeout=10)
    assert time.monotonic() - started < 5
    assert not [e for e in read_events(r, spec.id) if e["detail"].startswith("waiting")]
