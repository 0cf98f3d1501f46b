"""The seeds' OS-upgrade lesson through chat, on `seeds-os-upgrade` with machines (controlplane and node01,
Ubuntu 18.04 with a new kernel, libc6 and openssl waiting): `os-upgrade node01` refused over hr-app as a
drain is, then with --force drained, upgraded, rebooted (an open SSH session drops) and back Ready on the
new kernel, uncordoned; a node cordoned by someone else stays cordoned; a machine that never comes back
stops the job with the node cordoned, and `resume` finishes it once the machine is on again; a worker
SIGKILLed while the node reboots, the job still ending right. One stack for the module, in this order.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from lab.testing import wait_until
from tests.chat_driver import Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(54)

TERMINAL = ("succeeded", "failed", "halted", "cancelled")
OLD_KERNEL, NEW_KERNEL = "5.4.0-1036-gcp", "5.4.0-1040-gcp"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-os-upgrade", time_scale=0.05, workers=2) as running:
        yield running


@pytest.fixture
def chat(stack: Stack) -> Iterator[Chat]:
    yield Chat(stack, timeout=60)
    stack.lab.set_machine_faults("node01", {})


def kubectl(stack: Stack, *args: str) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def node01(stack: Stack) -> dict:
    return json.loads(kubectl(stack, "get", "node", "node01", "-o", "json"))


def ssh(stack: Stack, command: str) -> str:
    done = stack.lab.ssh("node01", command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_os_upgrade_refuses_what_the_drain_refuses(stack: Stack, chat: Chat) -> None:
    reply = text_of(chat.ask("os-upgrade node01", timeout=90).reply)
    assert reply == ("refused: the drain would be blocked: node01: default/hr-app has no controller and would be "
                     "deleted for good; add --force to delete it anyway"), reply
    assert "SchedulingDisabled" not in kubectl(stack, "get", "node", "node01")
    assert ssh(stack, "uname -r").strip() == OLD_KERNEL


def test_os_upgrade_drains_upgrades_reboots_and_uncordons_node01(stack: Stack, chat: Chat) -> None:
    boot_before = node01(stack)["status"]["nodeInfo"]["bootID"]
    thread = chat.ask("os-upgrade node01 --force", timeout=90)
    plan = text_of(thread.card())
    assert "3 packages change: libc6 2.27-3ubuntu1.4 → 2.27-3ubuntu1.6, linux-image-gcp 5.4.0.1036 → 5.4.0.1040, " \
           "openssl" in plan, plan
    assert "held, not upgraded: kubeadm, kubectl, kubelet" in plan
    assert "a reboot follows: new kernel (linux-image-gcp); libc6 asks for one" in plan
    assert "Lost for good: default/hr-app will be deleted" in plan
    # A session open on node01 when it reboots ends, as SSH sessions do when their machine goes down.
    session = subprocess.Popen(["ssh", "-F", str(stack.lab.ssh_config), "node01", "sleep 120; echo survived"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        job = thread.approve()
        record = chat.wait_job(job, TERMINAL, timeout=120)
        assert record.state == "succeeded", text_of(thread.progress())
        out, _ = session.communicate(timeout=30)
        assert (session.returncode, out) == (255, "")
    finally:
        session.kill()
    detail = record.steps[-1].detail
    assert "3 packages upgraded (libc6, linux-image-gcp, openssl)" in detail, detail
    assert f"kernel {OLD_KERNEL} → {NEW_KERNEL}" in detail and f"up to date, kernel {NEW_KERNEL}" in detail
    info = node01(stack)
    assert info["status"]["nodeInfo"]["bootID"] != boot_before
    assert info["status"]["nodeInfo"]["kernelVersion"] == NEW_KERNEL
    assert not info["spec"].get("unschedulable"), "this job cordoned node01, so it uncordoned it"
    assert kubectl(stack, "get", "node", "node01", "--no-headers").split()[1] == "Ready"
    assert ssh(stack, "uname -r").strip() == NEW_KERNEL
    assert ssh(stack, "test -e /var/run/reboot-required && echo required || echo none").strip() == "none"
    # Kubernetes stayed where it was, held.
    assert ssh(stack, "dpkg-query -W -f='${Version}\\n' kubelet").strip() == "1.19.0-00"
    assert ssh(stack, "apt-mark showhold").split() == ["kubeadm", "kubectl", "kubelet"]
    pods = kubectl(stack, "get", "pods", "-o", "wide")
    assert "hr-app" not in pods
    final = thread.wait_progress("succeeded", timeout=30)
    assert "node01" in text_of(final)


def test_a_node_cordoned_before_the_job_stays_cordoned(stack: Stack, chat: Chat) -> None:
    kubectl(stack, "cordon", "node01")
    try:
        thread = chat.ask("reboot node01", timeout=90)
        assert "cordoned before this job: it stays cordoned afterwards" in text_of(thread.card())
        record = chat.wait_job(thread.approve(), TERMINAL, timeout=120)
        assert record.state == "succeeded", text_of(thread.progress())
        assert "left cordoned, as it was before this job" in record.steps[-1].detail
        assert node01(stack)["spec"].get("unschedulable") is True
    finally:
        kubectl(stack, "uncordon", "node01")


def test_a_machine_that_never_comes_back_stops_the_job_and_resume_finishes_it(stack: Stack, chat: Chat) -> None:
    stack.lab.set_machine_faults("node01", {"bootFails": True})
    thread = chat.ask("reboot node01 --boot-timeout 3s", timeout=90)
    job = thread.approve()
    record = chat.wait_job(job, TERMINAL, timeout=120)
    assert record.state == "failed"
    reason = record.steps[-1].detail
    assert reason.startswith("RebootFailed: node01 stays cordoned (`uncordon node01` puts it back in service); no "
                             "further node "
                             "was touched. node01 failed during its reboot (done on it: check, cordon, drain, "
                             "reboot): it did not come back within 3s of its reboot: it has not booted again: SSH "
                             "does not answer"), reason
    assert node01(stack)["spec"].get("unschedulable") is True
    stopped = text_of(thread.wait_progress(f"resume {job}", timeout=30))
    assert "node01 stays cordoned" in stopped
    # Someone powers the machine on; resume waits for it again (a fresh --boot-timeout) and uncordons it.
    stack.lab.set_machine_faults("node01", {})
    stack.lab.power("node01", True)
    wait_until(lambda: stack.lab.machine("node01")["sshd"] == "listening", timeout=30, message="node01 on again")
    chat.ask(f"resume {job}")
    record = chat.wait_job(job, TERMINAL, timeout=120)
    assert record.state == "succeeded", record.steps[-1].detail
    assert not node01(stack)["spec"].get("unschedulable")


def test_a_worker_killed_while_the_node_reboots_hands_the_wait_to_the_next(stack: Stack, chat: Chat) -> None:
    # The machine stays down until it is powered on, so the kill lands in the wait for its new boot.
    stack.lab.set_machine_faults("node01", {"bootFails": True})
    boot_before = node01(stack)["status"]["nodeInfo"]["bootID"]
    thread = chat.ask("reboot node01 --boot-timeout 2m", timeout=90)
    job = thread.approve()
    waiting = chat.wait_job(job, lambda r: "waiting for its new boot" in (r.steps[-1].detail or "")
                            or r.state in TERMINAL, timeout=60)
    assert waiting.state == "running", waiting.steps[-1].detail
    victim = next(i for i, _ in enumerate(stack.worker_procs) if waiting.worker.startswith(f"worker{i}-"))
    stack.kill_worker(victim, also=[waiting.pid], restart=True)
    stack.lab.set_machine_faults("node01", {})
    stack.lab.power("node01", True)
    record = chat.wait_job(job, TERMINAL, timeout=180)
    assert record.state == "succeeded", record.steps[-1].detail
    assert record.recoveries >= 1 or record.attempts >= 2, "another run finished it"
    assert node01(stack)["status"]["nodeInfo"]["bootID"] != boot_before
    assert "back in" in record.steps[-1].detail
    assert not node01(stack)["spec"].get("unschedulable")
