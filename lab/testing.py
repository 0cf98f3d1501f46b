"""Start a lab in a child process and talk to it: used by tests, benchmarks and the demo."""

from __future__ import annotations

import base64
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml


class LabError(RuntimeError):
    pass


def stop_process_group(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM a child started with start_new_session=True and its children; SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def child_pids(pid: int) -> list[int]:
    """The pids of `pid`'s children, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name may contain spaces: the fields after it start at the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc), 0 when unavailable."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the machine type when unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


class LabProcess:
    """`python -m lab up` in a child process, ready when its kubeconfig appears.

    With `machines` (the default) the scenario's nodes are machines reachable over SSH: see
    `ssh_config`, `known_hosts`, `ssh_key`, `ssh()` and the machine admin calls below.
    """

    def __init__(self, scenario: str, *, time_scale: float = 0.05, workdir: Path | None = None,
                 ready_timeout: float = 60.0, machines: bool = True) -> None:
        self.scenario = scenario
        self.time_scale = time_scale
        self.ready_timeout = ready_timeout
        self.with_machines = machines
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="kubemaint-lab-")
        self.workdir = Path(workdir or self._tmp.name)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.log = self.workdir / "lab.log"
        self.process: subprocess.Popen | None = None
        self.server = ""
        self.admin_server = ""  # the admin API's own port: it answers while the API's is closed
        self.token = ""
        self._ssl: ssl.SSLContext | None = None

    def start(self) -> LabProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lab", "up", "--scenario", self.scenario,
             "--kubeconfig", str(self.kubeconfig), "--time-scale", str(self.time_scale),
             *([] if self.with_machines else ["--no-machines"])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + self.ready_timeout
        while not self.kubeconfig.exists():
            if self.process.poll() is not None:
                raise LabError(f"lab exited with {self.process.returncode}: {self.log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"lab not ready after {self.ready_timeout}s: {self.log.read_text()}")
            time.sleep(0.02)
        self._read_kubeconfig()
        return self

    @classmethod
    def attach(cls, kubeconfig: Path) -> LabProcess:
        """Talk to a lab that is already running (started by `make demo`, say)."""
        lab = cls("attached", workdir=kubeconfig.parent)
        lab.kubeconfig = kubeconfig
        lab._read_kubeconfig()
        return lab

    def _read_kubeconfig(self) -> None:
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.server = config["clusters"][0]["cluster"]["server"]
        self.token = config["users"][0]["user"]["token"]
        admin_url = self.kubeconfig.parent / "admin_url"
        self.admin_server = admin_url.read_text().strip() if admin_url.exists() else self.server
        ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
        self._ssl = ssl.create_default_context(cadata=ca.decode())

    def stop(self) -> None:
        stop_process_group(self.process)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LabProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP --------------------------------------------------------------------------

    def request(self, method: str, path: str, body: object = None, *,
                content_type: str = "application/json", token: str | None = None,
                headers: dict | None = None, server: str | None = None) -> tuple[int, object]:
        """One request to the lab (the API's port unless `server`); returns (status, decoded JSON or text)."""
        data = None if body is None else (
            body if isinstance(body, bytes) else json.dumps(body).encode())
        all_headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        if token == "":
            all_headers.pop("Authorization")
        if data is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        req = urllib.request.Request((server or self.server) + path, data=data, method=method,
                                     headers=all_headers)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:
                raw, code = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, code = err.read(), err.code
        try:
            return code, json.loads(raw)
        except ValueError:
            return code, raw.decode()

    def admin(self, method: str, path: str, body: object = None) -> object:
        code, result = self.request(method, "/_lab/" + path.lstrip("/"), body, server=self.admin_server)
        if code >= 400:
            raise LabError(f"{method} /_lab/{path} -> {code}: {result}")
        return result

    def reset(self) -> None:
        self.admin("POST", "reset")

    def counters(self) -> dict:
        return self.admin("GET", "counters")

    def set_faults(self, faults: dict) -> None:
        self.admin("PUT", "faults", faults)

    def get(self, path: str) -> dict:
        code, result = self.request("GET", path)
        if code != 200:
            raise LabError(f"GET {path} -> {code}: {result}")
        return result

    def pods(self, namespace: str | None = None, node: str | None = None) -> list[dict]:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        if node:
            path += f"?fieldSelector=spec.nodeName%3D{node}"
        return self.get(path)["items"]

    def wait_for(self, condition, timeout: float = 30.0, interval: float = 0.05,
                 message: str = "condition"):
        return wait_until(condition, timeout, message, interval)

    # -- machines (lab/machines) ---------------------------------------------------------

    @property
    def ssh_config(self) -> Path:
        """`ssh -F <this> NODE COMMAND` reaches a machine as kubemaint (sudo without a password)."""
        return self.kubeconfig.parent / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        """Every machine's host key, by address (`[address]:port` when not on port 22)."""
        return self.kubeconfig.parent / "known_hosts"

    @property
    def ssh_key(self) -> Path:
        """The private key of the machines' kubemaint user."""
        return self.kubeconfig.parent / "id_ed25519"

    def machines(self) -> dict[str, dict]:
        """Each machine: address, port, power, sshd, bootId, kernel, boots, hostKey, faults..."""
        return self.admin("GET", "machines")["machines"]

    def machine(self, name: str) -> dict:
        return self.admin("GET", f"machines/{name}")

    def address(self, name: str) -> tuple[str, int]:
        machine = self.machine(name)
        return machine["address"], machine["port"]

    def set_machine_faults(self, name: str, faults: dict) -> dict:
        """Replace a machine's faults: {"sshRefused": bool, "dropAfterSeconds": N, "latencyMs": N,
        "failures": {program: {"exitCode": N, "stderr": "..."}}, "hostKeyChanged": bool}; {} clears them."""
        return self.admin("PUT", f"machines/{name}/faults", faults)

    def power(self, name: str, on: bool) -> dict:
        return self.admin("POST", f"machines/{name}/power", {"on": on})

    def reboot(self, name: str, boot_seconds: float | None = None) -> dict:
        """As `systemctl reboot` on it: down now, up after its boot time (scaled), which
        `boot_seconds` changes from now on."""
        return self.admin("POST", f"machines/{name}/reboot",
                          {} if boot_seconds is None else {"bootSeconds": boot_seconds})

    def ssh(self, node: str, command: str, *, timeout: float = 30.0, options: tuple[str, ...] = (),
            stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run `command` on a machine with the system's ssh client and the lab's ssh_config."""
        return subprocess.run(["ssh", "-F", str(self.ssh_config), *options, node, command],
                              capture_output=True, text=True, timeout=timeout,
                              input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def wait_until(condition, timeout: float, message: str = "condition", interval: float = 0.05):
    """Poll `condition()` until it returns a truthy value (returned), or raise LabError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
