"""Static pods whose containers run as real processes on their machine: etcd (Debian's
etcd-server) from kubeadm's etcd.yaml. Other static pods are the lab itself (kube-apiserver,
lab/apiserver.py) or only their mirror pods (controller-manager, scheduler: the lab's controllers).

The kubelet runs the container's command as written, in a mount namespace of its own where every
hostPath volume is bound at its mountPath, as the container runtime does: pointing `etcd-data` at
/var/lib/etcd-from-backup makes etcd, still started with --data-dir=/var/lib/etcd, use that
directory. One difference, because machines share the host's network namespace (two labs on one
host would both want 127.0.0.1:2379): listen URLs on 127.0.0.1 are the machine's own address
instead, and the machine's etcdctl sends 127.0.0.1 endpoints there (layout.ETCDCTL_WRAPPER).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("lab.machines")
RUNNABLE = ("etcd",)  # pod names (metadata.name) whose containers run on the machine
PODS_DIR = "/run/kubemaint-lab/pods"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
LISTEN_FLAGS = ("--listen-client-urls=", "--listen-peer-urls=", "--listen-metrics-urls=")
# The kubelet's crash-loop back-off starts at 10 s (before --time-scale).
RESTART_BACKOFF = 10.0


def on_own_address(url_list: str, address: str) -> str:
    """`https://127.0.0.1:2379,https://10.0.0.5:2379` -> `https://10.0.0.5:2379` (each URL once)."""
    urls = []
    for url in url_list.split(","):
        for host in LOOPBACK_HOSTS:
            url = url.replace(f"//{host}:", f"//{address}:")
        if url not in urls:
            urls.append(url)
    return ",".join(urls)


def command_of(manifest: dict, address: str) -> list[str]:
    container = manifest["spec"]["containers"][0]
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    return [arg.split("=", 1)[0] + "=" + on_own_address(arg.split("=", 1)[1], address)
            if arg.startswith(LISTEN_FLAGS) else arg for arg in argv]


def run_script(manifest: dict, address: str, log_file: str) -> str:
    """The shell script that runs the pod's container on its machine. Pure."""
    container = manifest["spec"]["containers"][0]
    volumes = {v.get("name"): v for v in manifest["spec"].get("volumes") or []}
    prepare, binds = [], []
    for mount in container.get("volumeMounts") or []:
        host = (volumes.get(mount.get("name")) or {}).get("hostPath")
        if not host:
            continue
        if host.get("type") in ("DirectoryOrCreate", None, ""):
            prepare.append(f"mkdir -p {shlex.quote(host['path'])}")
        if host["path"] != mount["mountPath"]:
            binds.append(f"mkdir -p {shlex.quote(mount['mountPath'])} && "
                         f"mount --bind {shlex.quote(host['path'])} {shlex.quote(mount['mountPath'])}")
    inner = " && ".join([*binds, "exec " + shlex.join(command_of(manifest, address))])
    name = manifest["metadata"]["name"]
    return "\n".join([
        "#!/bin/sh",
        f"# {name}: the static pod /etc/kubernetes/manifests/{name}.yaml as this machine's kubelet runs it,",
        "# its hostPath volumes bound at their mountPaths in a mount namespace of its own (lab/machines/pods.py).",
        f"mkdir -p {shlex.quote(str(Path(log_file).parent))}",
        *prepare,
        f"exec unshare --mount --propagation private sh -c {shlex.quote(inner)} >>{shlex.quote(log_file)} 2>&1",
        "",
    ])


def log_file(name: str, node: str) -> str:
    return f"/var/log/pods/kube-system_{name}-{node}/{name}/0.log"


class PodRunner:
    """The containers of one machine's runnable static pods: started, restarted when their
    manifest changes or they die, stopped when it is removed or the machine goes down."""

    def __init__(self, node: str, address: str, time_scale: float,
                 command: Callable[[str, str], Awaitable[None]], write: Callable[[str, bytes, int], None],
                 root: Callable[[], Path | None]) -> None:
        self.node = node
        self.address = address
        self.time_scale = time_scale
        self._command = command  # tells the machine's pid 1 (pod-start NAME, pod-stop NAME)
        self._write = write
        self._root = root
        self.wanted: dict[str, str] = {}  # pod name -> its run script
        self.running: dict[str, str] = {}
        self.starts: dict[str, int] = {}
        self.enabled = True
        self._not_before: dict[str, float] = {}
        self._converging: asyncio.Task | None = None
        self._again = False

    def sync(self, manifests: dict[str, dict]) -> None:
        """The manifests directory as the kubelet read it: {file name: pod manifest}."""
        if not self.enabled:
            return
        wanted = {}
        for manifest in manifests.values():
            name = manifest["metadata"]["name"]
            if name in RUNNABLE and manifest["spec"].get("containers"):
                wanted[name] = run_script(manifest, self.address, log_file(name, self.node))
        if wanted != self.wanted:
            self.wanted = wanted
            self._kick()

    def check(self) -> None:
        """Restart a container that died (after the back-off), as restartPolicy: Always does."""
        root = self._root()
        if root is None or (self._converging is not None and not self._converging.done()):
            return  # a container being stopped on purpose has not died
        for name in list(self.running):
            if not self._alive(root, name):
                log.warning("%s: static pod %s exited; the kubelet restarts it", self.node, name)
                self.running.pop(name)
                self._not_before[name] = time.monotonic() + RESTART_BACKOFF * self.time_scale
                self._kick()

    @staticmethod
    def _alive(root: Path, name: str) -> bool:
        try:
            pid = (root / PODS_DIR.lstrip("/") / name / "pid").read_text().strip()
            state = (root / "proc" / pid / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def machine_down(self) -> None:
        """Every container died with the machine; they start again when its kubelet does."""
        self.running.clear()
        self.wanted.clear()
        if self._converging is not None:
            self._converging.cancel()
            self._converging = None

    def _kick(self) -> None:
        if self._converging is not None and not self._converging.done():
            self._again = True
            return
        self._converging = asyncio.get_running_loop().create_task(self._converge())

    async def _converge(self) -> None:
        while True:
            self._again = False
            try:
                for name in [n for n in self.running if self.running[n] != self.wanted.get(n)]:
                    await self._command(f"pod-stop {name}", f"pod {name} stopped")
                    self.running.pop(name)
                for name, script in self.wanted.items():
                    if name in self.running:
                        continue
                    delay = self._not_before.pop(name, 0.0) - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self._write(f"{PODS_DIR}/{name}/run", script.encode(), 0o755)
                    await self._command(f"pod-start {name}", f"pod {name} started")
                    self.running[name] = script
                    self.starts[name] = self.starts.get(name, 0) + 1
            except Exception as exc:  # the machine went down meanwhile: nothing runs there now
                log.info("%s: static pods: %s", self.node, exc)
                return
            if not self._again:
                return


