"""Helpers for the job engine tests: waiting on conditions with deadlines, and real RQ workers in subprocesses.

The fixtures built on them live in tests/redis_fixtures.py (a plugin module: test modules load it with
`pytest_plugins`, and import these helpers from here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from redis import Redis

from bot.engine.store import JobRecord, get_job
from lab.testing import LabError, child_pids, wait_until

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 15.0, message: str = "condition",
             interval: float = 0.02) -> T:
    """Poll `condition()` until it is truthy; fail the test after `timeout` seconds."""
    try:
        return wait_until(condition, timeout, message, interval)
    except LabError as error:
        pytest.fail(str(error))


def wait_for_state(r: Redis, job_id: str, *states: str, timeout: float = 15.0) -> JobRecord:
    def reached() -> JobRecord | None:
        record = get_job(r, job_id)
        return record if record is not None and record.state in states else None

    def describe() -> str:
        record = get_job(r, job_id)
        return f"{job_id} to reach {states} (now {record.state if record else 'missing'}: " \
               f"{record.ending if record else ''})"

    try:
        return wait_until(reached, timeout, interval=0.02)
    except LabError:
        pytest.fail(f"timed out after {timeout}s waiting for {describe()}")


def wait_for_step(r: Redis, job_id: str, step: str, state: str, timeout: float = 15.0) -> JobRecord:
    def reached() -> JobRecord | None:
        record = get_job(r, job_id)
        return record if record is not None and record.step(step).state == state else None

    return wait_for(reached, timeout, f"step {step!r} of {job_id} to be {state}")


def calls(r: Redis) -> list[str]:
    """What the test actions recorded, in order."""
    return [c.decode() for c in r.lrange("test:calls", 0, -1)]


class WorkerProcess:
    """`python -m bot.engine` with the test actions and a resources factory that gives actions a Redis client."""

    def __init__(self, redis_url: str, name: str, log_path: Path, extra_args: list[str]) -> None:
        self.name = name
        self.log_path = log_path
        env = {**os.environ, "KUBEMAINT_TEST_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.engine", "--redis-url", redis_url, "--name", name,
                 "--import", "tests.jobs_actions", "--resources-factory", "tests.jobs_actions:make_resources",
                 *extra_args],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, r: Redis, timeout: float = 20.0) -> WorkerProcess:
        def registered() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.name} exited with {self.process.returncode}:\n{self.log()}")
            return bool(r.sismember("rq:workers", f"rq:worker:{self.name}"))

        wait_for(registered, timeout, f"worker {self.name} to register")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill_hard(self, horse_pid: int | None = None) -> None:
        """SIGKILL the worker and its work horse at once, as when the machine or the pod dies."""
        os.kill(self.pid, signal.SIGKILL)
        if horse_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(horse_pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        horses = child_pids(self.pid)
        for pid in [self.pid, *horses]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


class Workers:
    def __init__(self, redis_url: str, r: Redis, tmp_path: Path) -> None:
        self.redis_url, self.r, self.tmp_path = redis_url, r, tmp_path
        self.started: list[WorkerProcess] = []

    def start(self, *extra_args: str, name: str | None = None, wait: bool = True) -> WorkerProcess:
        name = name or f"w{len(self.started) + 1}"
        worker = WorkerProcess(self.redis_url, name, self.tmp_path / f"{name}.log", list(extra_args))
        self.started.append(worker)
        return worker.wait_ready(self.r) if wait else worker

    def by_name(self, name: str) -> WorkerProcess:
        return next(w for w in self.started if w.name == name)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.log()}" for w in self.started)
