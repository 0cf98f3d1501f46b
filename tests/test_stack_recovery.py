"""The whole stack recovers as compose runs it (`restart: always`, Redis with an append-only file):
a killed bot or worker is restarted within 5 s and is then back at work (connected, registered,
running jobs), a Redis killed and restarted keeps the queue and the workers, and a click on a card while
the bot is down shows the clicking user Slack's warning.

Real processes (bot, workers, Redis, lab cluster); every wait is on a condition with a deadline.
The 5 s bound is the supervisor's: the new process runs. How long it then takes to import and connect
depends on the machine's load (about 2.5 s on an idle 2-core machine, more while the whole suite runs
in parallel), so that wait has a deadline that does not race the load; the measured times are printed
(`pytest -s`) for the record.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from rq import Worker

from bot.chat import approval_store
from bot.domain.ids import new_job_id
from lab.stack import worker_name
from lab.testing import wait_until
from tests.chat_driver import ALICE, BOB, VICTOR, Chat, Stack, buttons

pytestmark = pytest.mark.runs_long(59)

RESTART_BOUND = 5.0  # seconds from the kill until the supervisor's new process runs
BACK_AT_WORK = 30.0  # seconds from the kill until it is connected or registered again, even under load


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(mode="socket", time_scale=0.05, workers=2) as running:
        yield running


@pytest.fixture
def chat(stack: Stack) -> Chat:
    return Chat(stack, timeout=30).reset()


def registered(chat: Chat) -> set[str]:
    return {w.name for w in Worker.all(connection=chat.redis)}


def working_since(stack: Stack, chat: Chat, index: int, since: datetime) -> bool:
    """Worker `index`'s current process runs and has sent RQ a heartbeat (it does on every try to
    reach Redis, and while it waits for jobs) since `since`."""
    name = worker_name(index, stack.restarts(f"worker{index}"))
    worker = next((w for w in Worker.all(connection=chat.redis) if w.name == name), None)
    return (stack.worker_procs[index].poll() is None and worker is not None
            and worker.last_heartbeat is not None and worker.last_heartbeat > since)


def restarted(stack: Stack, name: str, restarts: int, killed_pid: int) -> None:
    """Wait (at most RESTART_BOUND) until the supervisor runs a new process for `name`."""
    def running_again() -> bool:
        proc = stack.supervisor.proc(name)
        return stack.restarts(name) == restarts + 1 and proc.pid != killed_pid and proc.poll() is None

    wait_until(running_again, timeout=RESTART_BOUND, message=f"the supervisor to start {name} again")


def test_a_killed_bot_is_restarted_within_5_seconds_and_connects_again(stack: Stack, chat: Chat):
    client = stack.slack.client
    before = {c["id"] for c in client.connections(live_only=True)}
    restarts = stack.restarts("bot")
    killed_at = time.monotonic()
    killed = stack.bot.pid
    os.kill(killed, signal.SIGKILL)  # the bot alone, as the OOM killer picks it; the supervisor notices
    restarted(stack, "bot", restarts, killed)
    client.wait_for_connection(timeout=BACK_AT_WORK, exclude=before)
    print(f"\nbot: Socket Mode connection back {time.monotonic() - killed_at:.2f}s after SIGKILL")
    assert "exited with -9" in (stack.workdir / "bot.log").read_text()
    assert "controlplane" in chat.ask("status", user=VICTOR).reply["text"]


def test_a_killed_worker_is_restarted_within_5_seconds_registers_again_and_runs_jobs(stack: Stack, chat: Chat):
    restarts = stack.restarts("worker0")
    killed_at = time.monotonic()
    killed = stack.worker_procs[0].pid
    os.kill(killed, signal.SIGKILL)
    restarted(stack, "worker0", restarts, killed)
    # A restarted worker needs a new name: RQ refuses the old one while its key lives (lab/stack.py).
    wait_until(lambda: worker_name(0, restarts + 1) in registered(chat), timeout=BACK_AT_WORK,
               message="worker 0 to register again")
    print(f"\nworker: registered in RQ again {time.monotonic() - killed_at:.2f}s after SIGKILL")
    assert "exited with -9" in (stack.workdir / "worker0.log").read_text()
    chat.ask("uncordon node01", user=ALICE).wait("succeeded", timeout=60)


def test_redis_killed_and_restarted_keeps_the_queue_and_the_workers(stack: Stack, chat: Chat):
    """An idle RQ worker retries a lost connection with back-off (rq/worker/base.py,
    dequeue_job_and_maintain_ttl); one caught elsewhere quits and the supervisor brings it back."""
    chat.ask("uncordon node01", user=ALICE).wait("succeeded", timeout=60)
    jobs_before = {j.spec.id: j.state for j in chat.jobs()}
    logs = [stack.workdir / f"worker{i}.log" for i in range(len(stack.worker_procs))]
    offsets = [log.stat().st_size for log in logs]
    restarts = [stack.restarts(f"worker{i}") for i in range(len(logs))]

    stack.kill_redis()
    killed_at = time.monotonic()

    def down_for_seconds(i: int) -> bool:
        """A few seconds of outage as worker i sees it: RQ's back-off (1 s, 2 s, then 4 s) has reached
        4 s, or the worker quit and is being restarted."""
        seen = logs[i].read_text(errors="replace")[offsets[i]:]
        return "retrying in 4 seconds" in seen or stack.restarts(f"worker{i}") > restarts[i]

    wait_until(lambda: all(down_for_seconds(i) for i in range(len(logs))), timeout=30,
               message="every worker to have been cut off from Redis for a few seconds")
    outage = time.monotonic() - killed_at
    stack.restart_redis()
    back_at = datetime.now(UTC)
    wait_until(lambda: all(working_since(stack, chat, i, back_at) for i in range(len(logs))), timeout=60,
               message="every worker to be alive and talking to Redis again")
    after = [stack.restarts(f"worker{i}") - restarts[i] for i in range(len(logs))]
    print(f"\nredis: down {outage:.1f}s; workers back {time.monotonic() - killed_at - outage:.2f}s after the "
          f"restart; supervisor restarts per worker: {after}")
    assert {j.spec.id: j.state for j in chat.jobs() if j.spec.id in jobs_before} == jobs_before  # all kept
    chat.ask("uncordon node01", user=ALICE).wait("succeeded", timeout=60)


def test_a_click_while_the_bot_is_down_warns_and_a_later_click_counts(stack: Stack, chat: Chat):
    cordon = chat.ask("cordon node01", user=ALICE)
    before = {c["id"] for c in stack.slack.client.connections(live_only=True)}
    stack.kill("bot", restart=False)
    stack.slack.client.wait_for(lambda: not stack.slack.client.connections(live_only=True), timeout=10,
                                what="the bot's connection to close")
    missed = stack.slack.client.click(BOB, chat.channel, cordon.reply["ts"], "approve")
    assert (missed["delivered"], missed["error"]) == (False, "dispatch_failed")
    assert missed["shown"].startswith("⚠️") and "did not respond" in missed["shown"]
    assert not stack.lab.get("/api/v1/nodes/node01")["spec"].get("unschedulable")

    stack.supervisor.release("bot")
    stack.slack.client.wait_for_connection(timeout=BACK_AT_WORK, exclude=before)
    clicked = stack.slack.client.click(BOB, chat.channel, cordon.reply["ts"], "approve")
    assert clicked["delivered"] is True and clicked["shown"] is None
    cordon.wait("succeeded", timeout=60)
    assert stack.lab.get("/api/v1/nodes/node01")["spec"]["unschedulable"] is True


def test_a_card_whose_request_redis_forgot_loses_its_buttons_on_the_next_click(stack: Stack, chat: Chat):
    cordon = chat.ask("cordon node01", user=ALICE)
    request_id = next(e["value"] for b in cordon.reply["blocks"] for e in b.get("elements") or []
                      if e.get("action_id") == "approve")
    chat.redis.delete(f"kubemaint:approval:{request_id}")  # what a Redis that lost its data no longer has
    since = max((c["id"] for c in stack.slack.client.calls()), default=0)
    cordon.click("approve", BOB)
    told = chat.wait_ephemeral(BOB, since=since)
    assert "This request no longer exists" in told["args"]["text"]
    card = chat.wait_for(lambda: (m := stack.slack.client.message(chat.channel, cordon.reply["ts"]))
                         and not buttons(m) and m, timeout=30, what="the dead card to lose its buttons")
    shown = " ".join(b["text"]["text"] for b in card["blocks"] if b.get("text"))
    assert "kubemaint no longer knows this request" in shown and "asks to run `cordon node01`" in shown
    assert not stack.lab.get("/api/v1/nodes/node01")["spec"].get("unschedulable")


def test_an_approval_cut_short_before_its_job_was_queued_is_finished_once(stack: Stack, chat: Chat):
    """Redis went away after the approving click stored its decision but before the job was queued."""
    cordon = chat.ask("cordon node01", user=ALICE)
    request_id = next(e["value"] for b in cordon.reply["blocks"] for e in b.get("elements") or []
                      if e.get("action_id") == "approve")
    jobs_before = {j.spec.id for j in chat.jobs()}
    with approval_store.deciding(chat.redis, request_id):  # as a click does
        pending = approval_store.load(chat.redis, request_id)
        pending.request = replace(pending.request, approvals=((BOB, time.time()),))
        pending.job_id = new_job_id()
        approval_store.save(chat.redis, pending, still_pending=True)
    # Nobody clicks again: the background sweep queues the job, under the id the decision stored.
    assert "succeeded" in cordon.wait_progress("succeeded", timeout=30)["text"]
    assert {j.spec.id for j in chat.jobs()} - jobs_before == {pending.job_id}
    chat.wait_for(lambda: not buttons(stack.slack.client.message(chat.channel, cordon.reply["ts"])), timeout=30,
                  what="the approved card to lose its buttons")
    assert approval_store.load(chat.redis, request_id).submitted
    assert stack.lab.get("/api/v1/nodes/node01")["spec"]["unschedulable"] is True
    chat.ask("uncordon node01", user=ALICE).wait("succeeded", timeout=60)


def test_stop_leaves_nothing_running_even_right_after_a_kill(tmp_path):
    with Stack(workers=1, workdir=tmp_path / "stack") as stack:
        stack.kill("worker0")  # the supervisor may be restarting it while stop() runs
        children = list(stack.supervisor.children.values())
    pids = {c.proc.pid for c in children} | {p for c in children for e in c.history for p in
                                             (e["pid"], e.get("new_pid")) if p}
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
