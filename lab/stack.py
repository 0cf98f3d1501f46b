"""The whole demo world on one machine: the lab cluster, a private Redis, the Slack
emulator, job workers and the bot (as separate processes, as in production).

Used by `python -m lab demo`, the end-to-end tests and the chat benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from redis import Redis

from lab.redis_server import RedisServer, free_port
from lab.slack.client import SlackLabClient
from lab.slack.emulator import EmulatorThread
from lab.slack.workspace import DEFAULT_CHANNELS, DEFAULT_USERS
from lab.testing import LabError, LabProcess, child_pids, stop_process_group

CHANNEL = "C0OPS"
USERS = {"operator": "U0ALICE", "approver": "U0BOB", "approver2": "U0CAROL", "viewer": "U0VIC"}


class SlackProcess:
    """The Slack emulator as `python -m lab.slack` in a child process, with EmulatorThread's
    attributes (client, tokens, URLs)."""

    def __init__(self, workdir: Path, users: dict, channels: dict, request_url: str | None) -> None:
        self.workdir = workdir
        self.users, self.channels, self.request_url = users, channels, request_url
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> SlackProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        workspace, info_file = self.workdir / "workspace.json", self.workdir / "info.json"
        workspace.write_text(json.dumps({"users": self.users, "channels": self.channels}))
        args = [sys.executable, "-m", "lab.slack", "--info-file", str(info_file), "--workspace", str(workspace)]
        if self.request_url:
            args += ["--http-url", self.request_url]
        log = (self.workdir / "slack.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not info_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"the Slack emulator did not start: {(self.workdir / 'slack.log').read_text()}")
            time.sleep(0.02)
        info = json.loads(info_file.read_text())
        self.base_url, self.api_url = info["base_url"], info["api_url"]
        self.bot_token = info["tokens"]["bot_token"]
        self.app_token = info["tokens"]["app_token"]
        self.signing_secret = info["tokens"]["signing_secret"]
        self.client = SlackLabClient(self.base_url)
        return self

    def stop(self) -> None:
        stop_process_group(self.proc)


@dataclass
class Stack:
    scenario: str = "seeds-os-upgrade"
    mode: str = "socket"  # or "http"
    time_scale: float = 0.2
    workers: int = 1
    approval_required: tuple[str, ...] = ("cordon",)  # the demo shows the approval flow on cordon
    policy_overrides: dict = field(default_factory=dict)
    extra_users: dict[str, str] = field(default_factory=dict)  # user id -> role, added to the workspace
    extra_channels: dict[str, str] = field(default_factory=dict)  # channel id -> name
    operation_modules: tuple[str, ...] = ()  # more operations for the bot and the workers (config key)
    # Run the Slack emulator in a process of its own (benchmarks: so the test clients' load
    # does not delay the emulator's own clock readings).
    slack_process: bool = False
    workdir: Path | None = None
    lab: LabProcess | None = None
    redis: RedisServer | None = None
    slack: EmulatorThread | None = None
    bot: subprocess.Popen | None = None
    worker_procs: list[subprocess.Popen] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Stack:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubemaint-stack-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.lab = LabProcess(self.scenario, time_scale=self.time_scale, workdir=self.workdir / "lab").start()
            self.redis = RedisServer().start()
            bot_port = free_port()
            http = self.mode == "http"
            users = {**DEFAULT_USERS, **{uid: {"name": uid.lower()} for uid in self.extra_users}}
            channels = {**DEFAULT_CHANNELS, **{c: {"name": n} for c, n in self.extra_channels.items()}}
            request_url = f"http://127.0.0.1:{bot_port}/slack/events" if http else None
            if self.slack_process:
                self.slack = SlackProcess(self.workdir / "slack", users, channels, request_url).start()
            else:
                self.slack = EmulatorThread(users=users, channels=channels, http_mode=http,
                                            request_url=request_url).start()
            self.config = self.workdir / "kubemaint.yaml"
            self.config.write_text(yaml.safe_dump(self._config(bot_port)))
            for _ in range(self.workers):
                self.start_worker()
            self.bot = self._spawn("bot", "serve")
            self._wait_for_bot()
        except BaseException:
            self.stop()
            raise
        return self

    def _config(self, bot_port: int) -> dict:
        policies = {verb: {"approval_required": True} for verb in self.approval_required}
        for verb, override in self.policy_overrides.items():
            policies.setdefault(verb, {}).update(override)
        return {
            "slack": {
                "mode": self.mode,
                "bot_token": self.slack.bot_token,
                "app_token": self.slack.app_token,
                "signing_secret": self.slack.signing_secret,
                "base_url": self.slack.api_url,
                "http_port": bot_port,
            },
            "redis_url": self.redis.url,
            "kubeconfig": str(self.lab.kubeconfig),
            "roles": {
                "viewers": [USERS["viewer"], *self._extra("viewer")],
                "operators": [USERS["operator"], *self._extra("operator")],
                "approvers": [USERS["approver"], USERS["approver2"], *self._extra("approver")],
            },
            "policies": policies,
            "operation_modules": list(self.operation_modules),
            # The demo's edits come fast so a person sees steps tick; Slack's budget still applies.
            "progress": {"edit_interval_seconds": 1, "updates_per_minute": 45},
        }

    def _extra(self, role: str) -> list[str]:
        return [uid for uid, r in self.extra_users.items() if r == role]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEMAINT_")}
        env["KUBEMAINT_CONFIG"] = str(self.config)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=self._env(), start_new_session=True)

    def start_worker(self) -> subprocess.Popen:
        index = len(self.worker_procs)
        proc = self._spawn(f"worker{index}", "worker", "--name", f"worker{index}-{os.getpid()}")
        self.worker_procs.append(proc)
        self._wait(lambda: self._registered_workers() > index, 30, f"worker {index} to register")
        return proc

    def _registered_workers(self) -> int:
        from rq import Worker

        return len(Worker.all(connection=Redis.from_url(self.redis.url)))

    def kill_worker(self, index: int, also: list[int | None] = ()) -> None:
        """SIGKILL, like an OOM kill or a node crash: no cleanup runs. `also`: more pids to kill at
        the same moment (RQ's work horse runs in a session of its own)."""
        proc = self.worker_procs[index]
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in also:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def bot_handlers(self) -> list[int]:
        """The pids of the bot's handler processes (bot/chat/handling.py)."""
        pids = []
        for pid in child_pids(self.bot.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                pids.append(pid)
        return pids

    def _wait_for_bot(self) -> None:
        if self.mode == "socket":
            self._wait(lambda: self.slack.client.connections(live_only=True), 30, "the bot's Socket Mode connection")
        else:
            import socket

            port = yaml.safe_load(self.config.read_text())["slack"]["http_port"]

            def listening() -> bool:
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", port)) == 0

            self._wait(listening, 30, "the bot's HTTP endpoint")

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for proc in [self.bot, *self.worker_procs]:
                if proc is not None and proc.poll() is not None and proc.returncode not in (0, -9):
                    raise LabError(f"a process exited with {proc.returncode} while waiting for {what}; "
                                   f"logs in {self.workdir}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout}s waiting for {what}; logs in {self.workdir}:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self, tail: int = 40) -> str:
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        for proc in [self.bot, *self.worker_procs]:
            stop_process_group(proc)
        for part in (self.slack, self.redis, self.lab):
            if part is not None:
                part.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self) -> dict:
        """What `python -m lab demo --headless --state-file` writes for other tools."""
        return {
            "kubeconfig": str(self.lab.kubeconfig),
            "slack_url": self.slack.base_url,
            "channel": CHANNEL,
            "users": USERS,
            "redis_url": self.redis.url,
            "config": str(self.config),
            "mode": self.mode,
        }
