"""`status NODE` and the cluster `status` through chat, with the nodes as machines over SSH: what the
machine says, host keys refused before anything runs, a dropped session, a slow machine, and a
planted secret that reaches no message, log line or audit entry.

The machines' session log (one line per SSH command they ran) is the witness of what ran.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Iterator

import pytest

from bot.engine.audit import read_audit
from tests.chat_driver import Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(51)

DEADLINE = 4  # the bot's ssh.command_deadline_seconds here: a slow machine is given up on quickly
SESSION_LOG = "/var/log/kubemaint-lab-sessions.log"
FACTS_MARK = "@@kubemaint:os"  # a line of the facts script `status NODE` runs


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-os-upgrade", time_scale=0.2,
               ssh_settings={"command_deadline_seconds": DEADLINE}) as running:
        yield running


@pytest.fixture
def chat(stack: Stack) -> Iterator[Chat]:
    chat = Chat(stack).reset()
    yield chat
    for node in ("controlplane", "node01"):
        stack.lab.set_machine_faults(node, {})


def ask(chat: Chat, text: str, timeout: float = 30) -> str:
    return text_of(chat.ask(text, timeout=timeout).reply)


def facts_runs(stack: Stack, node: str) -> int:
    """How many times the machine ran `status NODE`'s facts script (its session log says)."""
    log = stack.lab.ssh(node, f"sudo cat {SESSION_LOG}")
    assert log.returncode == 0, log.stderr
    return sum(FACTS_MARK in line for line in log.stdout.splitlines())


def reinstall(stack: Stack, node: str) -> None:
    """Reboot the machine at once (its SSH sessions, the bot's among them, end) and wait until it is up."""
    boots = stack.lab.machine(node)["boots"]
    stack.lab.reboot(node, boot_seconds=1)
    stack.lab.wait_for(lambda: (m := stack.lab.machine(node))["boots"] > boots and m["sshd"] == "listening",
                       timeout=30, message=f"{node} to boot again")


def status_row(text: str, node: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith(f"{node} "))


def test_status_node_shows_the_api_and_the_machine_and_a_pending_reboot(stack: Stack, chat: Chat) -> None:
    text = ask(chat, "status node01")
    assert text.startswith("*node01* (worker): Ready, schedulable, kubelet v1.19.0, InternalIP "
                           + stack.lab.machine("node01")["address"])
    assert "• default: hr-app (no controller)" in text and "• default: 2 x Deployment blue" in text
    assert "• Ubuntu 18.04.5 LTS, kernel 5.4.0-1036-gcp, booted " in text
    assert "• kubeadm 1.19.0-00 (held), kubectl 1.19.0-00 (held), kubelet 1.19.0-00 (held)" in text
    assert "• Package repo: legacy apt.kubernetes.io" in text
    assert "• Pending updates (3): libc6 2.27-3ubuntu1.4 → 2.27-3ubuntu1.6, linux-image-gcp" in text
    assert "• No reboot required." in text

    # The OS update Debian's way: the kernel and libc ask for a reboot; the kubelet package is
    # upgraded too, but the node reports the old kubelet until it is restarted (the seeds' lesson).
    assert stack.lab.ssh("node01", "sudo apt-get upgrade -y").returncode == 0
    assert stack.lab.ssh("node01", "sudo apt-get install -y --allow-change-held-packages "
                                   "kubelet=1.19.16-00").returncode == 0
    text = ask(chat, "status node01")
    assert "• *Reboot required* by libc6, linux-image-gcp" in text
    assert "• No pending updates." in text
    assert ("kubelet package 1.19.16-00 is installed but the node reports v1.19.0: the kubelet runs the new "
            "version after `systemctl restart kubelet`") in text

    cluster = ask(chat, "status")
    assert status_row(cluster, "NODE") == ["NODE", "READY", "SCHEDULING", "ROLES", "KUBELET", "PODS", "REBOOT"]
    assert status_row(cluster, "node01")[-1] == "yes" and status_row(cluster, "controlplane")[-1] == "no"


def test_a_changed_or_unknown_host_key_is_refused_before_anything_runs(stack: Stack, chat: Chat) -> None:
    before = facts_runs(stack, "node01")
    # The machine is reinstalled: a new host key, and the bot's old connection gone with the reboot.
    stack.lab.set_machine_faults("node01", {"hostKeyChanged": True})
    reinstall(stack, "node01")
    presented = stack.lab.machine("node01")["presentedHostKey"]["fingerprint"]
    assert presented != stack.lab.machine("node01")["hostKey"]["fingerprint"]

    text = ask(chat, "status node01")
    assert "*node01* (worker): Ready" in text, "the API's view is shown anyway"
    machine = text.split("*Machine*", 1)[1]
    assert "HOST KEY CHANGED" in machine and presented in machine and "Nothing was run" in machine
    assert "ssh-keygen -R" in machine, "it says how to update known_hosts"
    cluster = ask(chat, "status")
    assert status_row(cluster, "node01")[-1] == "?" and status_row(cluster, "controlplane")[-1] == "no"
    assert re.search(r"REBOOT \? node01 .*" + re.escape(presented), cluster), cluster
    stack.lab.set_machine_faults("node01", {})

    # Unknown: the bot's known_hosts has no line for the node at all.
    trusted = stack.lab.known_hosts.read_text()
    address = stack.lab.machine("node01")["address"]
    expected = stack.lab.machine("node01")["hostKey"]["fingerprint"]
    try:
        stack.lab.known_hosts.write_text("".join(line + "\n" for line in trusted.splitlines()
                                                 if not line.startswith((address + " ", f"[{address}]"))))
        machine = ask(chat, "status node01").split("*Machine*", 1)[1]
        assert "known_hosts" in machine and expected in machine and "Nothing was run" in machine
    finally:
        stack.lab.known_hosts.write_text(trusted)
    assert facts_runs(stack, "node01") == before, "the refused commands never ran"

    assert "• No reboot required." in ask(chat, "status node01"), "trusted again: the machine answers"
    assert facts_runs(stack, "node01") == before + 1


def test_a_session_dropped_mid_command_is_reported_as_such(stack: Stack, chat: Chat) -> None:
    # Every command waits 3 s before it starts; every connection is cut 1 s after it began.
    stack.lab.set_machine_faults("node01", {"latencyMs": 3000, "dropAfterSeconds": 1})
    machine = ask(chat, "status node01").split("*Machine*", 1)[1]
    assert "the connection dropped while" in machine and "may or may not have finished" in machine
    stack.lab.set_machine_faults("node01", {})
    assert "• No reboot required." in ask(chat, "status node01"), "the next command connects again"


def test_a_slow_machine_costs_status_its_time_cap_not_more(stack: Stack, chat: Chat) -> None:
    stack.lab.set_machine_faults("node01", {"latencyMs": 30_000})
    cluster = ask(chat, "status", timeout=15)  # far less than the machine's 30 s
    assert status_row(cluster, "node01")[-1] == "?" and status_row(cluster, "controlplane")[-1] == "no"
    assert "REBOOT ? node01: no answer within 3s" in cluster
    machine = ask(chat, "status node01", timeout=15).split("*Machine*", 1)[1]
    assert f"did not finish within its deadline of {DEADLINE}s" in machine


def test_a_planted_secret_reaches_no_message_log_or_audit(stack: Stack, chat: Chat) -> None:
    planted = f"PLANTED{secrets.token_hex(10)}"
    # A private mirror's credentials in the node's apt source, and a failing shell that prints a password.
    source = f"deb https://mirror:{planted}@apt.example.com/kubernetes kubernetes-xenial main"
    assert stack.lab.ssh("node01", f"echo {shlex.quote(source)} | sudo tee "
                                   "/etc/apt/sources.list.d/kubernetes.list").returncode == 0
    text = ask(chat, "status node01")
    assert "• Package repo: deb https://mirror:[redacted]@apt.example.com/kubernetes" in text

    stack.lab.set_machine_faults("controlplane", {"failures": {"sh": {"exitCode": 1,
                                                                       "stderr": f"db password={planted}\n"}}})
    cluster = ask(chat, "status")
    assert status_row(cluster, "controlplane")[-1] == "?"
    assert "password=[redacted]" in cluster
    machine = ask(chat, "status controlplane").split("*Machine*", 1)[1]
    assert "exited with 1: db password=[redacted]" in machine

    seen = {
        "chat": "\n".join(text_of(m) for m in chat.client.messages(chat.channel)),
        "logs": "\n".join(path.read_text(errors="replace") for path in stack.workdir.glob("*.log")),
        "audit": repr(read_audit(chat.redis, 3600)),
    }
    assert "node.command" in seen["audit"] and "node01" in seen["audit"], "the commands were audited"
    assert {where: planted in text for where, text in seen.items()} == {"chat": False, "logs": False, "audit": False}
