"""Pause, resume and jobs that start later, against a real redis-server and real RQ workers in subprocesses.

What a user notices: `pause` stops a job at a safe point with its locks free and `resume` goes on without
repeating what was done; a job scheduled for later starts at its time (not before, and well within a second
after), also when the worker it was submitted beside died, and its thread's message says when it starts.
"""

from __future__ import annotations

import threading
import time

import pytest
from redis import Redis
from rq import Queue

from bot.chat.progress import MESSAGE_TTL, ProgressPublisher, remember_message
from bot.chat.throttle import EditThrottle
from bot.contract.reports import change_text, ending_text, job_view, jobs_text, progress_text
from bot.engine import JobSpec, Step, cancel, get_job, list_jobs, pause, read_events, resume, submit
from bot.engine.queue import QUEUE_NAME, start_due_jobs
from bot.engine.store import ACTIVE_JOBS, SCHEDULED_JOBS, JobRecord, StepRecord, read_checkpoint_data
from lab.redis_server import RedisServer
from tests.fake_clock import Clock
from tests.jobs_support import Workers, calls, wait_for, wait_for_state, wait_for_step

pytestmark = pytest.mark.runs_long(28)

pytest_plugins = ["tests.redis_fixtures"]

WITH_PAUSE_ACTIONS = ("--import", "tests.pause_actions")
ON_TIME = 1.0  # a scheduled job starts at most this long after its time (the sweepers look every 0.5 s)


def spec_of(*steps: Step, locks: tuple[str, ...] = (), command: str = "test job") -> JobSpec:
    return JobSpec.create("test", command, "U_REQ", list(steps), approvers=["U_APP"], channel="C1",
                          thread_ts="1700000000.000100", locks=locks)


def record(name: str) -> Step:
    return Step(name, "test.record")


def block(name: str, key: str) -> Step:
    return Step(name, "test.wait_for_key", {"key": key})


def rq_queue_ids(r: Redis) -> list[str]:
    return Queue(QUEUE_NAME, connection=r).get_job_ids()


def lock_held(r: Redis, target: str) -> bool:
    return bool(r.exists(f"kubemaint:lock:{target}"))


# -- pause between steps -------------------------------------------------------------------------------


def test_pause_stops_between_steps_frees_the_locks_and_resume_goes_on_without_repeating(
        r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(record("a"), block("wait", "test:go"), record("c"), locks=("node:node01",))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")

    asked = pause(r, spec.id, "U_OPS")
    assert asked.accepted and change_text(asked) == (
        f"Pausing {spec.id} (test job) (now in step 'wait'): it pauses at the next safe point, once the current "
        f"step is done (a rollout step stops between nodes); then `resume {spec.id}` continues it.")
    again = pause(r, spec.id, "U_OTHER")
    assert again.accepted and "was already requested by U_OPS" in change_text(again)
    assert lock_held(r, "node:node01") and get_job(r, spec.id).state == "running"  # the step under way goes on

    r.set("test:go", "1")
    job = wait_for_state(r, spec.id, "paused")
    assert [(s.name, s.state) for s in job.steps] == [("a", "done"), ("wait", "done"), ("c", "pending")]
    assert "c" not in calls(r)
    assert not lock_held(r, "node:node01") and not r.sismember(ACTIVE_JOBS, spec.id)
    assert ending_text(job) == (
        f"⏸ Paused by U_OPS after 'wait': `resume {spec.id}` continues with 'c', `cancel {spec.id}` stops it. "
        "Its lock on node01 is released meanwhile.")
    text = progress_text(job_view(job, time.time()))
    assert text.startswith(f"⏸️ Job `{spec.id}` · `test job` · paused")
    assert text.endswith(f"Its lock on node01 is released meanwhile.\nNext: `resume {spec.id}`")
    refused = pause(r, spec.id, "U_OPS")
    assert not refused.accepted and change_text(refused) == (
        f"Cannot pause {spec.id} (test job): it is already paused: `resume {spec.id}` continues it, "
        f"`cancel {spec.id}` stops it.")

    # Meanwhile the node is free for another job.
    other = spec_of(record("other"), locks=("node:node01",), command="other job")
    submit(r, other)
    wait_for_state(r, other.id, "succeeded")

    resumed = resume(r, spec.id, "U_OPS")
    assert resumed.accepted and "continues at 'c'" in change_text(resumed)
    job = wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == ["a", "start:wait", "end:wait", "other", "c"]
    assert [(s.name, s.runs) for s in job.steps] == [("a", 1), ("wait", 1), ("c", 1)]
    assert not lock_held(r, "node:node01")


def test_a_rollout_step_finishes_its_node_then_pauses_and_resumes_from_its_checkpoint(
        r: Redis, workers: Workers) -> None:
    workers.start(*WITH_PAUSE_ACTIONS)
    spec = spec_of(Step("reboot nodes", "test.rollout", {"nodes": ["n1", "n2", "n3"]}), record("after"),
                   locks=("cluster",), command="reboot --needed")
    r.set("test:go:n1", "1")
    submit(r, spec)
    wait_for(lambda: "begin:n1" in calls(r), message="node n1 to begin")

    assert pause(r, spec.id, "U_OPS").accepted
    r.set("test:finish:n1", "1")  # n1 was under way: it finishes; n2 does not begin
    job = wait_for_state(r, spec.id, "paused")
    assert calls(r) == ["start:reboot nodes", "begin:n1", "end:n1"]
    assert job.step("reboot nodes").state == "pending"
    assert job.step("reboot nodes").detail == "paused at a safe point (its checkpoint is kept)"
    assert read_checkpoint_data(r, spec.id, "reboot nodes") == {"done": ["n1"]}
    assert not lock_held(r, "cluster")
    assert ending_text(job) == (
        f"⏸ Paused by U_OPS during 'reboot nodes': `resume {spec.id}` continues 'reboot nodes' from its "
        f"checkpoint, `cancel {spec.id}` stops it. Its lock on the cluster is released meanwhile.")

    for node in ("n2", "n3"):
        r.set(f"test:go:{node}", "1")
        r.set(f"test:finish:{node}", "1")
    assert resume(r, spec.id, "U_OPS").accepted
    job = wait_for_state(r, spec.id, "succeeded")
    assert calls(r)[3:] == ["start:reboot nodes", "begin:n2", "end:n2", "begin:n3", "end:n3", "after"]
    assert [(s.name, s.runs) for s in job.steps] == [("reboot nodes", 2), ("after", 1)]


def test_a_queued_job_pauses_before_it_starts(r: Redis, workers: Workers) -> None:
    spec = spec_of(record("a"), record("b"))
    submit(r, spec)
    paused = pause(r, spec.id, "U_OPS")
    assert paused.accepted and change_text(paused) == (
        f"{spec.id} (test job): ⏸ Paused by U_OPS before 'a': `resume {spec.id}` continues with 'a', "
        f"`cancel {spec.id}` stops it.")
    assert get_job(r, spec.id).state == "paused" and rq_queue_ids(r) == []

    workers.start()
    resume(r, spec.id, "U_OPS")
    wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == ["a", "b"]


def test_a_job_waiting_for_a_busy_lock_pauses_without_taking_it(r: Redis, workers: Workers) -> None:
    workers.start()
    workers.start()
    holder = spec_of(block("hold", "test:go"), locks=("node:node01",), command="drain node01")
    submit(r, holder)
    wait_for_step(r, holder.id, "hold", "running")
    waiting = spec_of(record("b"), locks=("node:node01",), command="cordon node01")
    submit(r, waiting)
    wait_for(lambda: any(e["detail"].startswith("waiting up to") for e in read_events(r, waiting.id)),
             message="the second job to wait for the lock")

    assert pause(r, waiting.id, "U_OPS").accepted
    job = wait_for_state(r, waiting.id, "paused")
    assert ending_text(job).startswith(f"⏸ Paused by U_OPS before 'b': `resume {waiting.id}` continues with 'b'")
    assert get_job(r, holder.id).state == "running"  # the holder keeps its lock and goes on
    r.set("test:go", "1")
    wait_for_state(r, holder.id, "succeeded")
    resume(r, waiting.id, "U_OPS")
    wait_for_state(r, waiting.id, "succeeded")
    assert calls(r) == ["start:hold", "end:hold", "b"]


def test_pause_is_refused_for_a_finished_job_and_resume_withdraws_a_pending_pause(
        r: Redis, workers: Workers) -> None:
    workers.start()
    done = spec_of(record("a"))
    submit(r, done)
    wait_for_state(r, done.id, "succeeded")
    refused = pause(r, done.id, "U_OPS")
    assert not refused.accepted and change_text(refused) == f"Cannot pause {done.id} (test job): it already succeeded."
    assert "not a job id" in change_text(pause(r, "node01", "U_OPS"))

    spec = spec_of(block("wait", "test:go"), record("b"))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")
    assert pause(r, spec.id, "U_OPS").accepted
    withdrawn = resume(r, spec.id, "U_OPS")
    assert withdrawn.accepted and change_text(withdrawn) == (
        f"{spec.id} (test job) goes on: the pause U_OPS asked for is withdrawn.")
    r.set("test:go", "1")
    wait_for_state(r, spec.id, "succeeded")
    assert calls(r)[-1] == "b"


def test_cancel_of_a_paused_job_is_for_good(r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(record("a"), block("wait", "test:go"), record("c"))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")
    pause(r, spec.id, "U_OPS")
    r.set("test:go", "1")
    wait_for_state(r, spec.id, "paused")

    cancelled = cancel(r, spec.id, "U_BOSS")
    assert cancelled.accepted and change_text(cancelled) == (
        f"{spec.id} (test job): Aborted by U_BOSS while it was paused: it will not be resumed. Done: 'a', 'wait'. "
        "Skipped: 'c'.")
    assert get_job(r, spec.id).state == "cancelled"
    assert "it was cancelled" in change_text(resume(r, spec.id, "U_OPS"))


# -- jobs that start later -----------------------------------------------------------------------------


def test_a_job_submitted_for_later_starts_at_its_time_not_before(r: Redis, workers: Workers) -> None:
    workers.start()
    workers.start()
    start_at = time.time() + 3
    spec = spec_of(record("a"), record("b"))
    submit(r, spec, start_at=start_at)

    job = get_job(r, spec.id)
    assert job.state == "scheduled" and job.start_at == pytest.approx(start_at)
    assert rq_queue_ids(r) == [] and not r.sismember(ACTIVE_JOBS, spec.id)
    when = time.strftime("%a %H:%M UTC", time.gmtime(start_at))
    assert jobs_text([job_view(j, time.time()) for j in list_jobs(r)]).splitlines()[1] == (
        f"🕘 `{spec.id}` `test job` · scheduled, starts {when}")
    shown = progress_text(job_view(job, start_at - 2))
    assert shown.splitlines()[0] == f"🕘 Job `{spec.id}` · `test job` · scheduled"
    assert shown.endswith(f"🕘 Starts at {when} (in 2.0s): `resume {spec.id}` starts it now, "
                          f"`cancel {spec.id}` drops it.")

    job = wait_for_state(r, spec.id, "succeeded", timeout=20)
    late = job.started_at - start_at
    print(f"\nscheduled job started {late:+.3f}s after its start_at")
    assert 0 <= late < ON_TIME
    assert calls(r) == ["a", "b"] and r.zcard(SCHEDULED_JOBS) == 0


def test_resume_starts_a_scheduled_job_now_and_cancel_drops_one_for_good(r: Redis, workers: Workers) -> None:
    workers.start()
    now = time.time()
    early = spec_of(record("early"), command="early job")
    dropped = spec_of(record("dropped"), command="dropped job")
    later = spec_of(record("later"), command="later job")
    submit(r, early, start_at=now + 3600)
    submit(r, dropped, start_at=now + 1)
    submit(r, later, start_at=now + 2)

    started = resume(r, early.id, "U_OPS")
    assert started.accepted and change_text(started).startswith(f"Starting {early.id} (early job) now instead of at ")
    wait_for_state(r, early.id, "succeeded")

    not_yet = pause(r, dropped.id, "U_OPS")
    assert not not_yet.accepted and change_text(not_yet).startswith(
        f"Cannot pause {dropped.id} (dropped job): it has not started; it starts at ")
    gone = cancel(r, dropped.id, "U_OPS")
    assert gone.accepted and change_text(gone) == (
        f"{dropped.id} (dropped job): Cancelled by U_OPS before it started: nothing was changed.")
    assert r.zscore(SCHEDULED_JOBS, dropped.id) is None
    wait_for_state(r, later.id, "succeeded")  # the sweepers have passed the cancelled job's time
    assert calls(r) == ["early", "later"] and get_job(r, dropped.id).state == "cancelled"


def test_a_step_that_pauses_until_a_time_is_scheduled_and_continues_then(r: Redis, workers: Workers) -> None:
    workers.start(*WITH_PAUSE_ACTIONS)
    spec = spec_of(Step("upgrade nodes", "test.window", {"nodes": ["n1", "n2"], "after": 3.0}), record("after"),
                   locks=("cluster",), command="os-upgrade --all")
    submit(r, spec)
    job = wait_for_state(r, spec.id, "scheduled")
    until = read_checkpoint_data(r, spec.id, "upgrade nodes")["until"]
    assert job.start_at == pytest.approx(until) and r.zscore(SCHEDULED_JOBS, spec.id) == pytest.approx(until)
    assert job.step("upgrade nodes").state == "pending" and not lock_held(r, "cluster")
    when = time.strftime("%a %H:%M UTC", time.gmtime(until))
    text = progress_text(job_view(job, until - 2))
    assert text.splitlines()[0] == f"🕘 Job `{spec.id}` · `os-upgrade --all` · scheduled"
    assert (f"⏸ Paused: the maintenance window ended; continues at {when}, in 2.0s (`resume {spec.id}` now, "
            f"`cancel {spec.id}` stops it). Its lock on the cluster is released meanwhile.") in text
    assert jobs_text([job_view(job, until - 2)]).endswith(f"· scheduled, continues {when}")
    assert ending_text(job) == (
        f"⏸ Paused: the maintenance window ended; continues at {when} (`resume {spec.id}` now, `cancel {spec.id}` "
        "stops it). Its lock on the cluster is released meanwhile.")

    job = wait_for_state(r, spec.id, "succeeded", timeout=20)
    continued = float(next(c for c in calls(r)[1:] if c.startswith("start:")).split("@")[1])
    print(f"\npaused step continued {continued - until:+.3f}s after its time")
    assert until <= continued < until + ON_TIME + 1  # + the run's start-up (claim, locks) before the step
    assert [c.split("@")[0] for c in calls(r)] == ["start:upgrade nodes", "node:n1", "start:upgrade nodes",
                                                   "node:n2", "after"]
    assert [(s.name, s.runs) for s in job.steps] == [("upgrade nodes", 2), ("after", 1)]
    assert job.ending.kind == "succeeded" and job.start_at is None


def test_a_scheduled_job_survives_a_killed_worker_and_a_redis_restart(
        r: Redis, workers: Workers, redis_server: RedisServer) -> None:
    first = workers.start()
    start_at = time.time() + 4
    spec = spec_of(record("a"))
    submit(r, spec, start_at=start_at)
    first.kill_hard()
    redis_server.kill()
    redis_server.restart()  # with its append-only file, as production runs it
    r.connection_pool.disconnect()
    assert get_job(r, spec.id).state == "scheduled"
    workers.start(name="w2")
    job = wait_for_state(r, spec.id, "succeeded", timeout=30)
    assert job.worker == "w2" and job.started_at >= start_at
    assert calls(r) == ["a"]


# -- the pieces, without workers -------------------------------------------------------------------------

THURSDAY_9 = 1796288400.0  # Thu 2026-12-03 09:00 UTC


def test_when_a_scheduled_job_starts_is_said_by_weekday_within_the_week_and_by_date_beyond() -> None:
    spec = spec_of(record("a"), command="reboot --needed")
    job = JobRecord(spec, "scheduled", start_at=THURSDAY_9, updated_at=THURSDAY_9 - 2 * 86400,
                    steps=[StepRecord("a", "test.record", {})])
    soon = job_view(job, THURSDAY_9 - 2 * 86400)
    assert progress_text(soon).splitlines()[-1] == (
        f"🕘 Starts at Thu 09:00 UTC (in 48h 00m): `resume {spec.id}` starts it now, `cancel {spec.id}` drops it.")
    assert jobs_text([soon]).splitlines()[1] == f"🕘 `{spec.id}` `reboot --needed` · scheduled, starts Thu 09:00 UTC"
    far = job_view(job, THURSDAY_9 - 9 * 86400)
    assert far.starts == "starts Thu 2026-12-03 09:00 UTC"
    overdue = job_view(job, THURSDAY_9 + 20)
    assert "(due: waiting for a worker to queue it)" in overdue.result
    assert overdue.waiting == "due at 09:00:00 UTC, waiting for a worker to queue it"



def test_sweepers_racing_for_a_due_job_queue_it_exactly_once(r: Redis) -> None:
    for _ in range(5):
        spec = spec_of(record("a"))
        submit(r, spec, start_at=time.time() + 60)
        assert start_due_jobs(r, now=time.time() + 59) == []  # not due yet
        barrier = threading.Barrier(4)
        results: list[list[str]] = []

        def race(barrier: threading.Barrier = barrier, results: list = results) -> None:
            client = Redis(connection_pool=r.connection_pool)
            barrier.wait()
            results.append(start_due_jobs(client, now=time.time() + 61))

        threads = [threading.Thread(target=race) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(job for result in results for job in result) == [spec.id]
        assert rq_queue_ids(r).count(spec.id) == 1 and r.zscore(SCHEDULED_JOBS, spec.id) is None
        job = get_job(r, spec.id)
        assert job.state == "queued" and r.sismember(ACTIVE_JOBS, spec.id)
        r.delete(Queue(QUEUE_NAME, connection=r).key)


class Chat:
    def __init__(self) -> None:
        self.updates: list[tuple[str, str, str]] = []

    def update(self, channel, ts, text, *, blocks=None) -> None:
        self.updates.append((channel, ts, text))

    def post(self, channel, text, *, thread_ts=None, blocks=None) -> str:
        return "1700000100.000001"


def test_a_scheduled_jobs_message_says_when_it_starts_and_is_kept_until_it_has_run(r: Redis) -> None:
    wall = Clock(time.time())
    chat = Chat()
    publisher = ProgressPublisher(r, chat, EditThrottle(per_job_interval=0, per_minute=1000), wall_clock=wall)
    publisher.start()
    spec = spec_of(record("a"), command="reboot --needed")
    start_at = wall.now + 10 * 86400  # beyond the message's usual week
    submit(r, spec, start_at=start_at)
    remember_message(r, spec.id, "C1", "1700000000.000200")
    publisher.poll()
    assert f"🕘 Starts at {time.strftime('%a %Y-%m-%d %H:%M UTC', time.gmtime(start_at))}" in chat.updates[-1][2]
    assert r.ttl(f"kubemaint:job-message:{spec.id}") > 10 * 86400 + MESSAGE_TTL - 60
    assert spec.id in publisher.followed  # not over: followed like a running job

    assert start_due_jobs(r, now=start_at + 0.1) == [spec.id]
    publisher.poll()
    assert chat.updates[-1][2].splitlines()[0] == f"🕒 Job `{spec.id}` · `reboot --needed` · queued"
