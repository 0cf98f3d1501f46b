"""A worker SIGKILLed in any step of `restore etcd from ID` (with its work horse, as a node crash takes
both): another worker resumes the job from that step, re-runs it, and the restore still ends `succeeded`
with the deleted Deployment blue back, the API answering and etcd.yaml pointing at the restored data.

One stack for the module, the lab reset between cases. The moment to kill: the step must be running, and
stay running long enough. The first step only reads the backup store, so its file is swapped for a FIFO
(the read blocks until the file is put back); the steps on the control plane are slowed by a machine
fault (every SSH command waits), cleared at the kill. The fault is set once the step two before the one
to kill has begun (at the approvals when there is none on the control plane), and the case checks that
its step had not begun then: the steps before run at full speed, the one to kill is slowed from its
first command.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.engine.store import get_job
from lab.testing import wait_until
from tests.chat_driver import ALICE, BOB, CAROL, Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(136)

SLOW = {"latencyMs": 700}  # every SSH command on the control plane waits this long
# Each step with how far into it (seconds) the worker dies, under SLOW, where the step takes 0.75 s (check)
# to 2.4 s (copy): past its first command where it has one that changes something, e.g. during the wait
# before restore's `rm -rf && etcdctl snapshot restore` or repoint's move of the new etcd.yaml (the command
# may still run on the machine after the kill, unseen by the job), or while the API stops or comes back; still
# 0.3 s or more before the step's end. A step that ended first fails the `runs == 2` check.
INTO = {"verify": 0.3, "copy": 1.0, "stop_api": 1.2, "restore": 1.1, "repoint": 1.8, "wait_etcd": 1.0,
        "start_api": 1.2, "check": 0.3}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-os-upgrade", time_scale=0.2, workers=2) as running:
        yield running


def kubectl(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60)


def backup(chat: Chat) -> str:
    final = text_of(chat.ask("backup etcd").wait_progress("succeeded", timeout=90, what="the backup"))
    return re.search(r"backup (b-[0-9a-f]{8})", final)[1]


def step_state(chat: Chat, job_id: str, action: str) -> str | None:
    record = get_job(chat.redis, job_id)
    return record and next(str(s.state) for s in record.steps if s.action == f"restore_etcd.{action}")


def running(chat: Chat, job_id: str, action: str):
    """The job's record while its step `action` runs (polled straight from Redis: some steps are short)."""
    record = get_job(chat.redis, job_id)
    step = record and next(s for s in record.steps if s.action == f"restore_etcd.{action}")
    return record if step and step.state == "running" and record.state == "running" else None


@pytest.mark.parametrize("action", list(INTO))
def test_a_worker_killed_in_a_step_is_replaced_and_the_restore_succeeds(stack: Stack, action: str) -> None:
    chat = Chat(stack, timeout=30).reset()
    stack.lab.set_machine_faults("controlplane", {})
    backup_id = backup(chat)
    assert kubectl(stack, "delete", "deployment", "blue").returncode == 0

    stored = next((stack.workdir / "backups").rglob(f"{backup_id}.db"))
    held = stored.with_name(stored.name + ".held")
    thread = chat.ask(f"restore etcd from {backup_id}", user=ALICE)
    thread.click("approve", BOB)
    order = list(INTO)
    slow_from = order[order.index(action) - 2] if order.index(action) > 2 else None
    if action == "verify":
        stored.rename(held)
        os.mkfifo(stored)  # the step's read blocks here until the file is back
    elif slow_from is None:
        stack.lab.set_machine_faults("controlplane", SLOW)
    try:
        job_id = thread.approve(CAROL)
        if slow_from is not None:
            wait_until(lambda: step_state(chat, job_id, slow_from) in ("running", "done"), timeout=60, interval=0.01,
                       message=f"step {slow_from} to begin")
            stack.lab.set_machine_faults("controlplane", SLOW)
            assert step_state(chat, job_id, action) == "pending", f"step {action} began before the machine was slowed"
        wait_until(lambda: running(chat, job_id, action), timeout=120, interval=0.01, message=f"step {action} to run")
        time.sleep(INTO[action])
        record = running(chat, job_id, action)
        assert record, f"step {action} ended within {INTO[action]}s: no moment to kill in it"
        victim = next(i for i, _ in enumerate(stack.worker_procs) if record.worker.startswith(f"worker{i}-"))
        stack.kill_worker(victim, also=[record.pid], restart=True)
    finally:
        stack.lab.set_machine_faults("controlplane", {})
        if held.exists():
            Path(stored).unlink()
            held.rename(stored)

    try:  # within pytest-timeout's 120 s for the whole case, so that a stall says where it is
        finished = chat.wait_job(job_id, ("succeeded", "failed", "halted", "cancelled"), timeout=80,
                                 what="another worker to finish the restore")
    except TimeoutError as stalled:
        now = get_job(chat.redis, job_id)
        steps = [(s.action, s.state, s.runs, s.detail) for s in now.steps] if now else None
        raise AssertionError(f"{stalled}: job {now and now.state} on {now and now.worker}, steps {steps}; "
                             f"logs in {stack.workdir}:\n{stack.logs()}") from None
    step = next(s for s in finished.steps if s.action == f"restore_etcd.{action}")
    assert finished.state == "succeeded", f"{finished.state}: {[(s.action, s.state, s.detail) for s in finished.steps]}"
    assert finished.worker != record.worker
    assert step.runs == 2, "the interrupted step was run again"
    assert kubectl(stack, "get", "deployment", "blue").returncode == 0, "blue is back"
    assert kubectl(stack, "get", "nodes").returncode == 0
    manifest = stack.lab.ssh("controlplane", "sudo cat /etc/kubernetes/manifests/etcd.yaml").stdout
    assert f"/var/lib/etcd-from-backup-{backup_id}" in manifest
