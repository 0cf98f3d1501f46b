"""`python -m lab demo --headless --state-file`: the demo stack for other tools."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.slack.client import SlackLabClient
from lab.testing import child_pids, wait_until

pytestmark = pytest.mark.runs_long(52)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, dict]]:
    state_file = tmp_path_factory.mktemp("demo") / "demo.json"
    demo = subprocess.Popen([sys.executable, "-m", "lab", "demo", "--headless", "--state-file", str(state_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: state_file.exists() or demo.poll() is not None, timeout=60, message="the state file")
        assert demo.poll() is None, demo.stdout.read()
        yield demo, json.loads(state_file.read_text())
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
    assert demo.returncode == 0


def test_headless_demo_writes_its_state_and_answers_in_chat(demo):
    _, state = demo
    assert set(state["users"]) >= {"operator", "approver", "viewer"}
    assert state["channel"] == "C0OPS"
    assert {name: c["channel"] for name, c in state["clusters"].items()} == {"staging": "C0OPS", "prod": "C0PROD"}
    chat = SlackLabClient(state["slack_url"])
    said = chat.say(state["users"]["viewer"], state["channel"], "<@U0BOT> status")
    reply = chat.wait_for_message(lambda m: m.get("thread_ts") == said["ts"] and m.get("user") == "U0BOT",
                                  channel=state["channel"], timeout=30)
    assert "controlplane" in reply["text"]


def bot_pid(demo: subprocess.Popen) -> int | None:
    for pid in child_pids(demo.pid):
        try:
            if b"bot.cli\0serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue  # gone meanwhile
    return None


def test_headless_demo_restarts_a_killed_bot_within_5_seconds(demo):
    proc, state = demo
    chat = SlackLabClient(state["slack_url"])
    before = {c["id"] for c in chat.connections(live_only=True)}
    killed = bot_pid(proc)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: bot_pid(proc) not in (None, killed), timeout=5, message="the demo to start its bot again")
    # Connecting again is the new process importing and dialing: ~2 s idle, longer while the suite runs.
    chat.wait_for_connection(timeout=30, exclude=before)


class Terminal:
    """The demo's chat client as a person uses it: lines typed on stdin, what it prints read back."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.seen = proc, ""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.seen += line

    def type(self, line: str) -> int:
        """Types `line`; returns where its answer starts in `seen`."""
        with self._lock:
            mark = len(self.seen)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return mark

    def wait(self, text: str, since: int = 0, timeout: float = 60) -> None:
        wait_until(lambda: text in self.seen[since:] or self.proc.poll() is not None, timeout=timeout,
                   message=f"the demo to print {text!r}")
        assert text in self.seen[since:], f"the demo exited with {self.proc.returncode}:\n{self.seen}"


def test_numbers_click_the_newest_cards_buttons_and_a_stale_one_is_refused() -> None:
    """[1] and [2] are the newest card's Approve and Deny, as the README's stories type them; a number
    typed for a card decided meanwhile (its buttons gone) is answered, not a crash. `/channel prod` moves to
    the other cluster's channel: the same words there reach the other cluster."""
    proc = subprocess.Popen([sys.executable, "-m", "lab", "demo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    terminal = Terminal(proc)
    try:
        terminal.wait("you are alice (operator) in #staging-ops (cluster staging)", timeout=120)
        terminal.wait("#staging-ops [kubemaint] *staging* · <@U0ALICE> asks to run", terminal.type("cordon node01"))
        terminal.wait("[1] Approve")
        terminal.type("/as approver")
        terminal.wait("`cordon node01 --cluster staging` · succeeded", terminal.type("1"))
        terminal.wait("no button [2] any more", terminal.type("2"))  # Deny, on the card bob just approved
        terminal.type("/as operator")
        terminal.wait("[1] Approve", terminal.type("cordon controlplane"))  # a second card: numbered from 1 again
        terminal.type("/as approver")
        terminal.wait("`cordon controlplane --cluster staging` · succeeded", terminal.type("1"))
        terminal.type("/as viewer")
        terminal.wait("*node01*", terminal.type("status node01"))
        terminal.wait("you are now in #prod-ops (cluster prod)", terminal.type("/channel prod"))
        terminal.type("/as operator")
        terminal.wait("#prod-ops [kubemaint] *prod* · <@U0ALICE> asks to run `cordon node01 --cluster prod`",
                      terminal.type("cordon node01"))
        terminal.type("/as approver")
        terminal.wait("`cordon node01 --cluster prod` · succeeded", terminal.type("1"))
        terminal.type("/quit")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return found


def test_a_terminated_demo_stops_every_process_it_started() -> None:
    # One cluster is enough: SIGTERM is handled before the stack starts, whatever it holds.
    proc = subprocess.Popen([sys.executable, "-m", "lab", "demo", "--scenario", "seeds-upgrade"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    terminal = Terminal(proc)
    try:
        terminal.wait("export KUBECONFIG=", timeout=120)
        workdir = terminal.seen.split("export KUBECONFIG=")[1].split("/lab")[0]
        assert processes_mentioning(workdir)  # the labs, Redis, the bot and the worker are running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        wait_until(lambda: not processes_mentioning(workdir), timeout=20, message="the demo's processes to end")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
