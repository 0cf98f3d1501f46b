"""The job engine against a real redis-server and real RQ workers in subprocesses."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from redis import Redis
from rq import Queue

from bot.contract.reports import change_text, ending_text
from bot.domain.ids import is_job_id, new_job_id
from bot.engine import JobSpec, Step, cancel, get_job, list_jobs, read_events, resume, submit
from bot.engine.audit import read_audit
from bot.engine.queue import QUEUE_NAME, RUN_JOB
from bot.engine.runner import Timings
from bot.engine.store import job_key, read_checkpoint_data, runner_key
from bot.engine.sweeper import sweep_once
from tests.jobs_support import Workers, calls, wait_for, wait_for_state, wait_for_step

pytestmark = pytest.mark.runs_long(39)

pytest_plugins = ["tests.redis_fixtures"]


def spec_of(*steps: Step, locks: tuple[str, ...] = (), command: str = "test job") -> JobSpec:
    return JobSpec.create("test", command, "U_REQ", list(steps), approvers=["U_APP"], channel="C1",
                          thread_ts="1700000000.000100", locks=locks)


def record(name: str) -> Step:
    return Step(name, "test.record")


def block(name: str, key: str, check_cancel: bool = True) -> Step:
    return Step(name, "test.wait_for_key", {"key": key, "check_cancel": check_cancel})


def rq_queue_ids(r: Redis) -> list[str]:
    return Queue(QUEUE_NAME, connection=r).get_job_ids()


# -- the model -------------------------------------------------------------------------------------


def test_spec_round_trips_through_json_and_ids_have_the_chat_format() -> None:
    spec = JobSpec.create("drain", "drain node01", "U1", (Step("cordon node01", "cordon", {"node": "node01"}),),
                          approvers=("U2",), channel="C1", thread_ts=None, locks=("node:node01",))
    assert JobSpec.from_json(spec.to_json()) == spec
    assert is_job_id(spec.id) and len(spec.id) == 10
    assert all(is_job_id(new_job_id()) for _ in range(100))
    with pytest.raises(ValueError, match="unique"):
        spec_of(record("a"), record("a"))
    with pytest.raises(ValueError, match="job id"):
        JobSpec("job-1", "x", "x", "U1", [], "", None, [], [record("a")], 0.0)


# -- running steps ---------------------------------------------------------------------------------


def test_steps_share_job_data_that_survives_a_failed_run_and_a_resume(r: Redis, workers: Workers) -> None:
    """What one step learns (a drain's deadline, the pods it evicted), a later step reads through
    `ctx.job_data`, also in a later run of the job: the first step is not repeated."""
    workers.start()
    spec = spec_of(Step("learn", "test.share", {"key": "deadline", "value": "12:00"}),
                   Step("check", "test.fail_unless", {"key": "test:ok"}),
                   Step("use", "test.read_shared", {"key": "deadline"}))
    submit(r, spec)
    wait_for_state(r, spec.id, "failed")
    r.set("test:ok", "1")
    resume(r, spec.id, "U_OPS")
    job = wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == ["try:check", "try:check", "read:12:00"]
    assert [(s.name, s.runs) for s in job.steps] == [("learn", 1), ("check", 2), ("use", 1)]
    with pytest.raises(ValueError, match="reserved for job-level data"):
        spec_of(Step("@job", "test.record"))



def test_a_step_knows_its_job_and_who_asked_for_it(r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(Step("ask", "test.whoami"))
    submit(r, spec)
    wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == [f"{spec.id} U_REQ"]


def test_steps_run_in_order_are_checkpointed_and_announced_in_order(r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(record("a"), record("b"), record("c"), locks=("node:node01",))
    submit(r, spec)
    job = wait_for_state(r, spec.id, "succeeded")

    assert calls(r) == ["a", "b", "c"]
    assert ending_text(job) == "Succeeded: all 3 steps done."
    assert [(s.name, s.state, s.detail, s.runs) for s in job.steps] == [
        ("a", "done", "recorded a", 1), ("b", "done", "recorded b", 1), ("c", "done", "recorded c", 1)]
    assert all(s.started_at <= s.finished_at for s in job.steps)
    assert job.worker == "w1" and job.attempts == 1
    assert not r.exists("kubemaint:lock:node:node01") and not r.exists(runner_key(spec.id))

    events = [(e["state"], e["step"], e["step_state"]) for e in read_events(r, spec.id)]
    assert events == [
        ("queued", "", ""), ("running", "", ""),
        ("running", "a", "running"), ("running", "a", "done"),
        ("running", "b", "running"), ("running", "b", "done"),
        ("running", "c", "running"), ("running", "c", "done"),
        ("succeeded", "", ""),
    ]
    assert [j.id for j in list_jobs(r)] == [spec.id]

    audit = [(a["event"], a.get("step", ""), a.get("state", "")) for a in read_audit(r, 60) if a["job"] == spec.id]
    assert audit == [("job.queued", "", ""), ("job.started", "", ""), ("job.step", "a", "done"),
                     ("job.step", "b", "done"), ("job.step", "c", "done"), ("job.result", "", "succeeded")]


def test_failing_step_stops_the_job_and_a_resume_skips_done_steps(r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(record("a"), Step("check", "test.fail_unless", {"key": "test:ok"}), record("c"))
    submit(r, spec)
    job = wait_for_state(r, spec.id, "failed")

    assert calls(r) == ["a", "try:check"]
    assert [(s.name, s.state) for s in job.steps] == [("a", "done"), ("check", "failed"), ("c", "pending")]
    assert job.step("check").detail == "RuntimeError: precondition test:ok is not met"
    assert ending_text(job) == (
        "Failed at step 2/3 'check': RuntimeError: precondition test:ok is not met. Done: 'a'. "
        f"Not done: 'check', 'c'. Fix the cause, then `resume {spec.id}` to continue from 'check' "
        f"(done steps are not repeated), or `cancel {spec.id}` to abandon it.")
    assert read_events(r, spec.id)[-1]["state"] == "failed"

    r.set("test:ok", "1")
    outcome = resume(r, spec.id, "U_OPS")
    assert outcome.accepted and "continues at 'check'" in change_text(outcome)
    job = wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == ["a", "try:check", "try:check", "c"]  # 'a' did not run again
    assert [(s.name, s.runs) for s in job.steps] == [("a", 1), ("check", 2), ("c", 1)]
    assert not resume(r, spec.id, "U_OPS").accepted


def test_cancel_mid_step_stops_at_the_next_safe_point_and_skips_the_rest(r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(record("a"), block("wait", "test:never"), record("c"))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")

    outcome = cancel(r, spec.id, "U_CANCEL")
    assert outcome.accepted
    assert change_text(outcome) == (f"Cancelling {spec.id} (test job) (now in step 'wait'): it stops at the next "
                               "safe point and skips the remaining steps.")
    job = wait_for_state(r, spec.id, "cancelled")

    assert "c" not in calls(r) and "end:wait" not in calls(r)
    assert [(s.name, s.state) for s in job.steps] == [("a", "done"), ("wait", "skipped"), ("c", "skipped")]
    assert ending_text(job) == ("Cancelled by U_CANCEL at a safe point during step 'wait'. Done: 'a'. "
                           "Skipped: 'wait', 'c'.")
    tail = [(e["state"], e["step"], e["step_state"]) for e in read_events(r, spec.id)][-4:]
    assert tail == [("running", "wait", ""), ("cancelled", "wait", "skipped"), ("cancelled", "c", "skipped"),
                    ("cancelled", "", "")]

    again = cancel(r, spec.id, "U_CANCEL")
    assert not again.accepted and "already cancelled" in change_text(again)
    assert not cancel(r, "j-00000000", "U1").accepted
    assert "not a job id" in change_text(cancel(r, "node01", "U1"))


def test_cancel_waits_for_a_step_that_has_no_safe_point(r: Redis, workers: Workers) -> None:
    workers.start()
    spec = spec_of(block("wait", "test:go", check_cancel=False), record("b"))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")
    assert cancel(r, spec.id, "U_CANCEL").accepted
    r.set("test:go", "1")  # the step finishes; the runner stops before the next one
    job = wait_for_state(r, spec.id, "cancelled")
    assert [(s.name, s.state) for s in job.steps] == [("wait", "done"), ("b", "skipped")]
    assert "before step 'b'" in ending_text(job) and "b" not in calls(r)


def test_cancel_of_a_queued_job_is_immediate_and_it_never_runs(r: Redis) -> None:
    spec = spec_of(record("a"))
    submit(r, spec)
    assert rq_queue_ids(r) == [spec.id]
    outcome = cancel(r, spec.id, "U1")
    assert outcome.accepted and "before it started: nothing was changed" in change_text(outcome)
    assert get_job(r, spec.id).state == "cancelled"
    assert rq_queue_ids(r) == []


def test_duplicate_submissions_and_enqueues_execute_once(r: Redis, workers: Workers) -> None:
    spec = spec_of(block("wait", "test:go"), record("b"))
    assert submit(r, spec) == spec.id
    assert submit(r, spec) == spec.id
    assert rq_queue_ids(r) == [spec.id]
    # A second RQ job running the same kubemaint job, as a double enqueue would.
    Queue(QUEUE_NAME, connection=r).enqueue_call(RUN_JOB, args=(spec.id,), job_id=f"dup-{spec.id}")
    workers.start()
    workers.start()
    rq_jobs = [Queue(QUEUE_NAME, connection=r).fetch_job(i) for i in (spec.id, f"dup-{spec.id}")]
    # While one run holds the job (blocked in 'wait'), the other RQ job ends without doing anything.
    ended = wait_for(lambda: [j for j in rq_jobs if j.get_status(refresh=True) == "finished"],
                     message="one of the two runs to end")
    assert [j.return_value() for j in ended] == ["busy"]
    assert get_job(r, spec.id).step("wait").state == "running"

    r.set("test:go", "1")
    job = wait_for_state(r, spec.id, "succeeded")
    assert calls(r) == ["start:wait", "end:wait", "b"]
    wait_for(lambda: all(j.get_status(refresh=True) == "finished" for j in rq_jobs), message="both RQ jobs to end")
    assert sorted(j.return_value() for j in rq_jobs) == ["busy", "succeeded"]
    assert job.attempts == 1


# -- crash recovery --------------------------------------------------------------------------------


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_worker_killed_mid_step_is_resumed_by_another_worker_from_its_checkpoint(
        r: Redis, workers: Workers, worker_class: str) -> None:
    """Default timings (heartbeat 2 s / TTL 6 s, sweep every 2 s): the production figures. `simple` is what
    `kubemaint worker` runs (jobs in the worker process); `fork` is RQ's default (a work horse per job)."""
    workers.start("--worker-class", worker_class)
    workers.start("--worker-class", worker_class)
    spec = spec_of(record("a"), Step("units", "test.units", {"count": 4, "pause_at": 2, "key": "test:go"}),
                   record("c"), locks=("node:node01",))
    submit(r, spec)
    wait_for(lambda: "unit1" in calls(r) and read_checkpoint_data(r, spec.id, "units") == {"next": 2},
             message="two units done")
    first = get_job(r, spec.id)
    victim = workers.by_name(first.worker)
    survivor = next(w for w in workers.started if w is not victim)

    killed_at = time.time()
    victim.kill_hard(horse_pid=first.pid)
    r.set("test:go", "1")
    job = wait_for_state(r, spec.id, "succeeded", timeout=60)
    finished_after = time.time() - killed_at
    events = read_events(r, spec.id)
    recovered = next(e for e in events if e["state"] == "queued" and e["step"] == "units")
    resumed = next(e for e in events if e["state"] == "running" and e["detail"].startswith("resumed on"))
    print(f"\n[{worker_class}] SIGKILL -> sweeper re-enqueued after {float(recovered['ts']) - killed_at:.2f}s, "
          f"run resumed after {float(resumed['ts']) - killed_at:.2f}s, job finished after {finished_after:.2f}s")

    assert job.worker == survivor.name
    assert resumed["detail"] == f"resumed on {survivor.name} (run 2); 1/3 steps already done"
    assert finished_after < 60
    # Done steps did not run again; the interrupted step restarted from its checkpoint (unit 2).
    assert calls(r) == ["a", "start:units", "unit0", "unit1", "start:units", "unit2", "unit3", "c"]
    assert [(s.name, s.runs) for s in job.steps] == [("a", 1), ("units", 2), ("c", 1)]
    assert job.attempts == 2 and job.recoveries == 0  # reset: the resumed run made progress
    assert not r.exists("kubemaint:lock:node:node01")  # the resumed run re-took its own lock, then released it
    assert recovered["detail"].startswith(f"{victim.name} (pid {first.pid}) stopped responding during step 'units'")
    assert any(a["event"] == "job.recovered" for a in read_audit(r, 120) if a["job"] == spec.id)


def test_a_killed_work_horse_is_resumed_without_waiting_for_the_heartbeat_ttl(r: Redis, workers: Workers) -> None:
    """The OOM-killer case: only the forked horse dies; its parent frees the run at once."""
    worker = workers.start()
    spec = spec_of(record("a"), block("wait", "test:go"), record("c"))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")
    # The step is marked running just before its action starts: killed in between, the first run would leave no
    # "start:wait" behind, and the calls below would not tell the two runs apart.
    wait_for(lambda: "start:wait" in calls(r), timeout=30, message="the wait step's action to start")
    horse = get_job(r, spec.id).pid
    assert horse != worker.pid
    killed_at = time.time()
    os.kill(horse, signal.SIGKILL)
    r.set("test:go", "1")
    job = wait_for_state(r, spec.id, "succeeded", timeout=30)
    resumed = next(e for e in read_events(r, spec.id) if e["detail"].startswith("resumed on"))
    resumed_after = float(resumed["ts"]) - killed_at
    print(f"\nhorse SIGKILL -> run resumed after {resumed_after:.2f}s")
    assert resumed_after < Timings().heartbeat_ttl  # no TTL wait: at most one sweep interval
    assert calls(r) == ["a", "start:wait", "start:wait", "end:wait", "c"]
    assert (job.attempts, job.worker) == (2, worker.name)


def test_a_run_that_lost_its_heartbeat_stops_writing_and_the_job_resumes(r: Redis, workers: Workers) -> None:
    """Fencing: a run that can no longer prove it owns the job (frozen, partitioned) must not write."""
    workers.start("--heartbeat-interval", "0.5", "--heartbeat-ttl", "2", "--sweep-interval", "0.5")
    spec = spec_of(block("wait", "test:go"), record("b"))
    submit(r, spec)
    first = wait_for_step(r, spec.id, "wait", "running")
    r.delete(runner_key(spec.id))  # as if the run had been silent past the TTL
    wait_for(lambda: get_job(r, spec.id).attempts == 2, message="the job to be claimed by a new run")
    r.set("test:go", "1")
    job = wait_for_state(r, spec.id, "succeeded")
    assert job.run != first.run
    assert calls(r) == ["start:wait", "start:wait", "end:wait", "b"]
    assert job.step("wait").runs == 2
    states = {e["state"] for e in read_events(r, spec.id)}
    assert states == {"queued", "running", "succeeded"}  # the fenced-off run wrote no ending of its own


def _running_without_runner(r: Redis, recoveries: int = 0) -> JobSpec:
    """A job whose runner vanished mid-step (as after a SIGKILL), without waiting for a heartbeat to expire."""
    spec = spec_of(record("a"), record("b"))
    submit(r, spec)
    Queue(QUEUE_NAME, connection=r).remove(spec.id)
    r.hset(job_key(spec.id), mapping={"state": "running", "current_step": "b", "worker": "gone", "pid": 1,
                                      "recoveries": recoveries})
    return spec


def test_sweepers_racing_for_a_dead_job_enqueue_it_exactly_once(r: Redis) -> None:
    timings = Timings()
    for _ in range(5):
        spec = _running_without_runner(r)
        barrier = threading.Barrier(4)
        results: list[list[tuple[str, str]]] = []

        def sweep(name: str, barrier: threading.Barrier, results: list) -> None:
            barrier.wait()
            results.append(sweep_once(Redis(connection_pool=r.connection_pool), name, timings))

        threads = [threading.Thread(target=sweep, args=(f"s{i}", barrier, results)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acted = [a for result in results for a in result if a[0] == spec.id]
        assert acted == [(spec.id, "requeued")]
        assert rq_queue_ids(r).count(spec.id) == 1
        job = get_job(r, spec.id)
        assert (job.state, job.recoveries) == ("queued", 1)
        r.delete(Queue(QUEUE_NAME, connection=r).key)


def test_a_job_that_keeps_killing_its_worker_is_halted(r: Redis) -> None:
    spec = _running_without_runner(r, recoveries=Timings().max_recoveries)
    assert sweep_once(r, "s1", Timings()) == [(spec.id, "halted")]
    job = get_job(r, spec.id)
    assert job.state == "halted" and job.step("b").state == "pending"
    assert ending_text(job).startswith("Halted: the worker died during step 'b' 4 times in a row (last: gone (pid 1))")
    assert f"`resume {spec.id}`" in ending_text(job)
    assert rq_queue_ids(r) == []


def test_a_queued_job_lost_from_the_queue_is_requeued_after_a_grace_period(r: Redis) -> None:
    spec = spec_of(record("a"))
    submit(r, spec)
    Queue(QUEUE_NAME, connection=r).remove(spec.id)  # dequeued by a worker that died before claiming it
    suspects: dict[str, float] = {}
    assert sweep_once(r, "s1", Timings(lost_job_grace=0.2), suspects) == []
    wait_for(lambda: sweep_once(r, "s1", Timings(lost_job_grace=0.2), suspects), timeout=5,
             message="the lost job to be re-queued")
    assert rq_queue_ids(r) == [spec.id]


def test_a_job_redis_forgot_is_written_back_halted_by_its_worker(r: Redis, workers: Workers) -> None:
    """Redis restarted without its data (FLUSHALL is the same for the processes that stay connected)
    while a step ran: the run stops at its next safe point and writes the job back from memory,
    halted, with what was done; `resume` then finishes it."""
    workers.start()
    spec = spec_of(Step("learn", "test.share", {"key": "deadline", "value": "12:00"}), block("wait", "test:go"),
                   Step("use", "test.read_shared", {"key": "deadline"}))
    submit(r, spec)
    wait_for_step(r, spec.id, "wait", "running")
    r.flushall()
    job = wait_for_state(r, spec.id, "halted", timeout=30)
    assert job.ending.kind == "state_lost" and job.ending.step == "wait"
    assert [(s.name, s.state) for s in job.steps] == [("learn", "done"), ("wait", "pending"), ("use", "pending")]
    assert "Redis lost its data during step 'wait'" in ending_text(job)
    assert f"`resume {spec.id}` continues from 'wait'" in ending_text(job)
    assert [j.id for j in list_jobs(r)] == [spec.id]  # listed again in `jobs`
    r.set("test:go", "1")
    change_text(resume(r, spec.id, "U_OPS"))
    done = wait_for_state(r, spec.id, "succeeded", timeout=30)
    assert [(s.name, s.runs) for s in done.steps] == [("learn", 1), ("wait", 2), ("use", 1)]
    assert calls(r)[-1] == "read:12:00"  # the job data came back with the job
