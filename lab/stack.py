"""The whole demo world on one machine: the lab cluster, a private Redis, the Slack
emulator, job workers and the bot (as separate processes, as in production).

As deploy/compose.yaml runs them: Redis with an append-only file (`redis_persistence`), and the bot
and the workers restarted when they die (`supervise`, lab/supervisor.py). Tests that kill a process
and need it to stay dead say so (`kill_worker(..., restart=False)`, `kill(name, restart=False)`, or
`supervise=False`).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from redis import Redis

from lab.redis_server import RedisServer, free_port
from lab.slack.client import SlackLabClient
from lab.slack.emulator import EmulatorThread
from lab.slack.workspace import DEFAULT_CHANNELS, DEFAULT_USERS
from lab.supervisor import Child, Supervisor
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


def worker_name(index: int, start: int) -> str:
    """RQ refuses to register a worker under a name whose last holder died without unregistering (until
    its key expires, 7 minutes later), so a restarted worker gets a new name; "worker<N>-" stays the prefix."""
    return f"worker{index}-{os.getpid()}" + (f"-r{start}" if start else "")


@dataclass
class Stack:
    scenario: str = "seeds-os-upgrade"
    mode: str = "socket"  # or "http"
    time_scale: float = 0.2
    workers: int = 1
    machines: bool = True  # the scenario's nodes are machines reachable over SSH (lab/machines)
    approval_required: tuple[str, ...] = ("cordon",)  # the demo shows the approval flow on cordon
    policy_overrides: dict = field(default_factory=dict)
    extra_users: dict[str, str] = field(default_factory=dict)  # user id -> role, added to the workspace
    extra_channels: dict[str, str] = field(default_factory=dict)  # channel id -> name
    operation_modules: tuple[str, ...] = ()  # more operations for the bot and the workers (config key)
    ssh_settings: dict = field(default_factory=dict)  # over the bot's ssh section (e.g. a short deadline)
    maintenance: dict = field(default_factory=dict)  # the config's maintenance section (windows, blockers, gates)
    recovery: dict = field(default_factory=dict)  # the config's recovery section (how fast a dead worker is noticed)
    # Serve /metrics, /healthz and /readyz: the bot and each worker on a free port of its own (`metrics_url`).
    metrics: bool = False
    metrics_ports: dict[str, int] = field(default_factory=dict)  # "bot", "worker<N>" -> port
    # Run the Slack emulator in a process of its own (benchmarks: so the test clients' load
    # does not delay the emulator's own clock readings).
    slack_process: bool = False
    # "aof" (an append-only file, as in production) or "none" (a restart of Redis loses everything).
    redis_persistence: str = "aof"
    # Restart a dead bot or worker like compose's `restart: always`; each restart is noted in its log.
    supervise: bool = True
    on_restart: Callable[[Child, int | None], None] | None = None  # e.g. the demo tells its user
    # Several clusters, each a lab of its own: name -> scenario (`scenario` is then unused). Each cluster's
    # commands come from its channel (`cluster_channels`, name -> channel id, added to the workspace), and
    # `cluster_roles` lays a cluster's own roles over the top-level ones (name -> a roles section).
    clusters: dict[str, str] = field(default_factory=dict)
    cluster_channels: dict[str, str] = field(default_factory=dict)
    cluster_roles: dict[str, dict] = field(default_factory=dict)
    labs: dict[str, LabProcess] = field(default_factory=dict)  # with `clusters`: each one's lab
    workdir: Path | None = None
    lab: LabProcess | None = None  # the lab (with `clusters`: the first one's)
    redis: RedisServer | None = None
    slack: EmulatorThread | None = None
    supervisor: Supervisor | None = None  # owns the bot's and the workers' processes
    _workers_started: int = 0
    _tmp: tempfile.TemporaryDirectory | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Stack:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubemaint-stack-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.clusters:
                for name, scenario in self.clusters.items():
                    self.labs[name] = LabProcess(scenario, time_scale=self.time_scale,
                                                 workdir=self.workdir / f"lab-{name}", machines=self.machines).start()
                self.lab = next(iter(self.labs.values()))
            else:
                self.lab = LabProcess(self.scenario, time_scale=self.time_scale, workdir=self.workdir / "lab",
                                      machines=self.machines).start()
            self.redis = RedisServer(persistence=self.redis_persistence, workdir=self.workdir / "redis").start()
            bot_port = free_port()
            http = self.mode == "http"
            users = {**DEFAULT_USERS, **{uid: {"name": uid.lower()} for uid in self.extra_users}}
            channels = {**DEFAULT_CHANNELS, **{c: {"name": n} for c, n in self.extra_channels.items()},
                        **{c: {"name": f"{name}-ops"} for name, c in self.cluster_channels.items()}}
            request_url = f"http://127.0.0.1:{bot_port}/slack/events" if http else None
            if self.slack_process:
                self.slack = SlackProcess(self.workdir / "slack", users, channels, request_url).start()
            else:
                self.slack = EmulatorThread(users=users, channels=channels, http_mode=http,
                                            request_url=request_url).start()
            if self.metrics:
                self.metrics_ports["bot"] = free_port()
            self.config = self.workdir / "kubemaint.yaml"
            self.config.write_text(yaml.safe_dump(self._config(bot_port), sort_keys=False))
            self.supervisor = Supervisor(on_restart=self.on_restart)
            # The processes start side by side (each spends about a second importing) and are awaited together.
            for _ in range(self.workers):
                self.start_worker(wait=False)
            self._spawn("bot", lambda start: ["serve"])
            self._wait(lambda: self._registered_workers() >= self.workers, 30, "the workers to register")
            self._wait_for_bot()
            if self.supervise:
                self.supervisor.start()
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
            **self._cluster_config(),
            "roles": {
                "viewers": [USERS["viewer"], *self._extra("viewer")],
                "operators": [USERS["operator"], *self._extra("operator")],
                "approvers": [USERS["approver"], USERS["approver2"], *self._extra("approver")],
            },
            "policies": policies,
            "operation_modules": list(self.operation_modules),
            **({} if self.clusters else self._ssh_config(self.lab)),
            "backups": {"store": {"type": "local", "directory": str(self.workdir / "backups")}},
            # The demo's edits come fast so a person sees steps tick; Slack's budget still applies.
            "progress": {"edit_interval_seconds": 1, "updates_per_minute": 45},
            **({"maintenance": self.maintenance} if self.maintenance else {}),
            **({"recovery": self.recovery} if self.recovery else {}),
            **({"metrics": {"address": "127.0.0.1", "port": self.metrics_ports["bot"]}} if self.metrics else {}),
        }

    def _cluster_config(self) -> dict:
        """The API (and, with `clusters`, each cluster's own API, nodes, backups folder, channel and roles)."""
        if not self.clusters:
            return {"kubeconfig": str(self.lab.kubeconfig)}
        clusters = {}
        for name, lab in self.labs.items():
            own = {"kubeconfig": str(lab.kubeconfig), **self._ssh_config(lab),
                   "backups": {"store": {"type": "local", "directory": str(self.workdir / "backups" / name)}}}
            if name in self.cluster_channels:
                own["channels"] = [self.cluster_channels[name]]
            if name in self.cluster_roles:
                own["roles"] = self.cluster_roles[name]
            clusters[name] = own
        return {"clusters": clusters}

    def _ssh_config(self, lab: LabProcess) -> dict:
        """The bot reaches the lab's machines as an operator's bot reaches nodes: at their InternalIP, with
        the lab's login key, trusting only the lab's known_hosts."""
        if not lab.with_machines:
            return {}
        ports = {machine["port"] for machine in lab.machines().values()}
        if not ports:
            return {}
        if len(ports) != 1:  # the bot has one port for every node (ssh.port)
            raise LabError(f"the lab's machines listen on several ports ({sorted(ports)}); the bot needs one")
        return {"ssh": {"user": "kubemaint", "port": ports.pop(), "known_hosts": str(lab.known_hosts),
                        "key_file": str(lab.ssh_key), **self.ssh_settings}}

    def _extra(self, role: str) -> list[str]:
        return [uid for uid, r in self.extra_users.items() if r == role]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEMAINT_")}
        env["KUBEMAINT_CONFIG"] = str(self.config)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(self, name: str, args: Callable[[int], list[str]]) -> subprocess.Popen:
        """`kubemaint <args(start)>` as the supervised child `name`, output in `<name>.log`."""
        assert self.supervisor is not None, "start() first"
        return self.supervisor.add(name, lambda start: [sys.executable, "-m", "bot.cli", *args(start)], self._env(),
                                   self.workdir / f"{name}.log").proc

    # -- the processes (the supervisor replaces one when it restarts it) ---------------------

    @property
    def bot(self) -> subprocess.Popen | None:
        return self.supervisor.proc("bot") if self.supervisor and "bot" in self.supervisor.children else None

    @property
    def worker_procs(self) -> list[subprocess.Popen]:
        return [self.supervisor.proc(f"worker{i}") for i in range(self._workers_started)] if self.supervisor else []

    def restarts(self, name: str) -> int:
        """How often the supervisor restarted "bot" or "worker<N>"."""
        return self.supervisor.restarts(name) if self.supervisor else 0

    def start_worker(self, wait: bool = True) -> subprocess.Popen:
        """One more worker process; by default returns once it is registered with the queue."""
        index = self._workers_started
        self._workers_started += 1
        extra = []
        if self.metrics:  # a restarted worker keeps its port
            extra = ["--metrics-port", str(self.metrics_ports.setdefault(f"worker{index}", free_port()))]
        proc = self._spawn(f"worker{index}", lambda start: ["worker", "--name", worker_name(index, start), *extra])
        if wait:
            self._wait(lambda: self._registered_workers() > index, 30, f"worker {index} to register")
        return proc

    def metrics_url(self, name: str, path: str = "/metrics") -> str:
        """Where "bot" or "worker<N>" serves `path` (/metrics, /healthz, /readyz); needs `metrics=True`."""
        return f"http://127.0.0.1:{self.metrics_ports[name]}{path}"

    def _registered_workers(self) -> int:
        from rq import Worker

        return len(Worker.all(connection=Redis.from_url(self.redis.url)))

    def kill(self, name: str, *, restart: bool = True) -> int:
        """SIGKILL "bot" or "worker<N>" alone, as the OOM killer picks one process: no cleanup runs.
        The supervisor restarts it unless `restart` is False. Returns the killed pid."""
        proc = self.supervisor.proc(name) if restart else self.supervisor.hold(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.pid

    def kill_worker(self, index: int, also: list[int | None] = (), restart: bool = False) -> None:
        """SIGKILL a worker's process group, like a node crash: no cleanup runs. `also`: more pids to
        kill at the same moment (RQ's work horse runs in a session of its own). It stays dead unless
        `restart` (tests of "another worker finishes the job" need exactly one worker fewer)."""
        name = f"worker{index}"
        proc = self.supervisor.proc(name) if restart else self.supervisor.hold(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in also:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def kill_redis(self) -> None:
        """SIGKILL Redis (an OOM kill): nothing restarts it until `restart_redis()`."""
        self.redis.kill()

    def restart_redis(self) -> None:
        """Redis again on the same port, with what its append-only file kept (nothing with persistence "none")."""
        self.redis.restart()

    def bot_handlers(self) -> list[int]:
        """The pids of the bot's handler processes and its background process (bot/chat/handling.py):
        the children of its fork server."""
        pids = []
        for pid in child_pids(self.bot.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if b"multiprocessing.forkserver" in cmdline:
                pids.extend(child_pids(pid))
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
        for path in [*sorted(self.workdir.glob("*.log")), *self.workdir.glob("redis/*.log")]:
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        procs = [self.bot, *self.worker_procs]
        if self.supervisor is not None:
            self.supervisor.stop()  # first: nothing may be restarted while it is being stopped
            procs = [self.supervisor.proc(name) for name in self.supervisor.children]
        for proc in procs:
            stop_process_group(proc)
        for part in (self.slack, self.redis, *(list(self.labs.values()) or [self.lab])):
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
        machines = self.lab.machines() if self.lab.with_machines else {}
        return {
            "kubeconfig": str(self.lab.kubeconfig),
            "ssh_config": str(self.lab.ssh_config) if machines else None,
            "known_hosts": str(self.lab.known_hosts) if machines else None,
            "ssh_key": str(self.lab.ssh_key) if machines else None,
            "machines": {name: {"address": m["address"], "port": m["port"]} for name, m in machines.items()},
            "slack_url": self.slack.base_url,
            "channel": CHANNEL,
            # With several clusters: each one's kubeconfig and channel (`kubeconfig` above is the first one's).
            "clusters": {name: {"kubeconfig": str(lab.kubeconfig), "channel": self.cluster_channels.get(name)}
                         for name, lab in self.labs.items()},
            "users": USERS,
            "redis_url": self.redis.url,
            "config": str(self.config),
            "mode": self.mode,
        }
