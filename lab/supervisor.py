"""Restart dead child processes, as compose's `restart: always` does for the bot and the workers.

A thread polls the children every `poll_interval`; a child that exited (crash, SIGKILL, clean exit)
is started again with its command and log file after Docker's restart delay: 100 ms, doubled after
each restart that did not stay up for 10 s, at most `max_delay`. Each restart is noted in the
child's log and counted (`restarts(name)`), so tests can read both.

    supervisor = Supervisor()
    supervisor.add("bot", lambda start: [sys.executable, "-m", "bot.cli", "serve"], env, log_path)
    supervisor.start()
    ...
    supervisor.hold("bot")   # a test kills it on purpose and wants it to stay dead
    supervisor.stop()        # before stopping the children, so nothing is restarted while stopping
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# `command(start)`: the command line for the start-th start (0 the first), so a child may be renamed on
# a restart (RQ refuses a worker name whose last holder died without unregistering).
Command = Callable[[int], list[str]]
FIRST_DELAY = 0.1  # Docker's first restart delay
STAYED_UP = 10.0  # Docker resets the delay for a container that ran this long


@dataclass
class Child:
    name: str
    command: Command
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    held: bool = False  # killed or stopped on purpose: not restarted
    delay: float = 0.0  # the delay before the last restart
    due: float | None = None  # when a dead child is started again
    history: list[dict] = field(default_factory=list)  # one entry per restart: exit code, when noticed, when restarted


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in a session of its own (so its process group can be signalled), output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


class Supervisor:
    def __init__(self, poll_interval: float = 0.1, max_delay: float = 2.0,
                 on_restart: Callable[[Child, int | None], None] | None = None) -> None:
        self.poll_interval = poll_interval
        self.max_delay = max_delay
        self.on_restart = on_restart
        self.children: dict[str, Child] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0  # rounds of checks so far: lets a test wait for "it has looked, and did nothing"

    def add(self, name: str, command: Command, env: dict[str, str], log: Path) -> Child:
        """Start a child and watch it (from `start()` on)."""
        child = Child(name, command, env, log, spawn(command(0), env, log))
        with self._lock:
            self.children[name] = child
        return child

    def proc(self, name: str) -> subprocess.Popen:
        """The child's current process (a new one after each restart)."""
        with self._lock:
            return self.children[name].proc

    def restarts(self, name: str) -> int:
        with self._lock:
            return self.children[name].restarts

    def hold(self, name: str) -> subprocess.Popen:
        """Stop watching a child, e.g. before killing it on purpose; returns its process."""
        with self._lock:
            child = self.children[name]
            child.held = True
            return child.proc

    def release(self, name: str) -> None:
        """Watch a held child again: restarted if it is dead."""
        with self._lock:
            self.children[name].held = False

    def start(self) -> Supervisor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lab-supervisor", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """No restarts from now on: returns once the thread is gone, so stopping the children cannot race it."""
        self._stopping.set()
        with self._lock:
            for child in self.children.values():
                child.held = True
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            with self._lock:
                restarted = [(child, code) for child in self.children.values()
                             if not child.held and not self._stopping.is_set()
                             and (code := self._check(child)) is not None]
                self.polls += 1
            for child, code in restarted:  # outside the lock: the callback may ask the supervisor things
                if self.on_restart is not None:
                    self.on_restart(child, code)

    def _check(self, child: Child) -> int | None:
        """Notice a death, or restart a dead child once its delay has passed; the exit code if restarted."""
        code = child.proc.poll()
        if code is None:
            return None
        now = time.monotonic()
        if child.due is None:  # just noticed
            stayed_up = now - child.started_at >= STAYED_UP
            child.delay = FIRST_DELAY if stayed_up or not child.delay else min(child.delay * 2, self.max_delay)
            child.due = now + child.delay
            child.history.append({"exit_code": code, "noticed_at": now, "pid": child.proc.pid})
            self._note(child, f"{child.name} (pid {child.proc.pid}) exited with {code}; "
                              f"restarting in {child.delay:.1f}s (restart {child.restarts + 1})")
            return None
        if now < child.due:
            return None
        child.restarts += 1
        child.due = None
        child.started_at = now
        child.proc = spawn(child.command(child.restarts), child.env, child.log)
        child.history[-1].update(restarted_at=now, new_pid=child.proc.pid)
        self._note(child, f"{child.name} restarted as pid {child.proc.pid}")
        return code

    @staticmethod
    def _note(child: Child, text: str) -> None:
        with child.log.open("a") as log:
            log.write(f"[supervisor {datetime.now().isoformat(timespec='milliseconds')}] {text}\n")
