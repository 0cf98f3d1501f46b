"""lab/supervisor.py restarts dead children like compose's `restart: always`: soon, with the same log,
noted and counted, backing off when a child keeps dying, and never once it was told to stop.

Children are tiny Python processes; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.supervisor import Child, Supervisor
from lab.testing import wait_until

SLEEPER = [sys.executable, "-c", "import time; print('sleeper is up', flush=True); time.sleep(120)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(poll_interval=0.05)
    yield sup
    sup.stop()
    for child in sup.children.values():
        if child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()


def test_a_killed_child_is_restarted_with_its_log_noted_and_counted(supervisor: Supervisor, tmp_path: Path):
    restarted: list[tuple[str, int | None]] = []
    supervisor.on_restart = lambda child, code: restarted.append((child.name, code))
    starts: list[int] = []
    child = supervisor.add("sleeper", lambda start: starts.append(start) or SLEEPER, dict(os.environ),
                           tmp_path / "sleeper.log")
    supervisor.start()
    log = tmp_path / "sleeper.log"
    wait_until(lambda: "sleeper is up" in log.read_text(), timeout=10, message="the child to start")
    first = child.proc.pid
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: supervisor.proc("sleeper").pid != first, timeout=5, message="the restart")
    assert time.monotonic() - killed_at < 1.0  # noticed within a poll, restarted after 0.1 s
    assert supervisor.restarts("sleeper") == 1 and starts == [0, 1]
    assert restarted == [("sleeper", -9)]
    wait_until(lambda: log.read_text().count("sleeper is up") == 2, timeout=10,
               message="the new process to write to the same log")
    text = log.read_text()
    assert f"sleeper (pid {first}) exited with -9; restarting in 0.1s (restart 1)" in text
    assert f"sleeper restarted as pid {supervisor.proc('sleeper').pid}" in text


def test_a_child_that_keeps_dying_is_restarted_with_doubling_delays(supervisor: Supervisor, tmp_path: Path):
    supervisor.max_delay = 0.4
    supervisor.add("crasher", lambda start: CRASHER, dict(os.environ), tmp_path / "crasher.log")
    supervisor.start()
    child: Child = supervisor.children["crasher"]
    wait_until(lambda: supervisor.restarts("crasher") >= 4, timeout=10, message="four restarts")
    delays = [float(line.split("restarting in ")[1].split("s")[0])
              for line in (tmp_path / "crasher.log").read_text().splitlines() if "restarting in" in line]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]  # Docker's back-off, capped at max_delay
    assert {entry["exit_code"] for entry in child.history} == {3}


def test_a_held_child_stays_dead_until_released(supervisor: Supervisor, tmp_path: Path):
    supervisor.add("sleeper", lambda start: SLEEPER, dict(os.environ), tmp_path / "sleeper.log")
    supervisor.start()
    proc = supervisor.hold("sleeper")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    looked = supervisor.polls
    wait_until(lambda: supervisor.polls >= looked + 5, timeout=5, message="five more rounds of checks")
    assert supervisor.proc("sleeper") is proc and supervisor.restarts("sleeper") == 0
    supervisor.release("sleeper")
    wait_until(lambda: supervisor.proc("sleeper") is not proc, timeout=5, message="the restart after release")


def test_stop_then_kill_restarts_nothing(supervisor: Supervisor, tmp_path: Path):
    """Stack.stop() stops the supervisor first, then its children: no restart may slip in between."""
    children = [supervisor.add(f"c{i}", lambda start: SLEEPER, dict(os.environ), tmp_path / f"c{i}.log")
                for i in range(3)]
    supervisor.start()
    supervisor.stop()
    for child in children:
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=5)
    assert supervisor._thread is not None and not supervisor._thread.is_alive()
    assert [supervisor.restarts(c.name) for c in children] == [0, 0, 0]
    assert not any(alive(c.proc.pid) for c in children)
