"""One lab machine through its life: built, booted, watched, faulted, rebooted, powered off.

Its files are written into its own layer while it is off and through its own root (the
overlay, seen from the host as /proc/PID/root) while it runs. Everything the lab learns
from it comes from its files, read on each tick of the fleet's watch (lab/machines/fleet.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from pathlib import Path

from lab import errors
from lab.machines import addresses, disk, layout
from lab.machines.faults import MachineFaults, shim
from lab.machines.keys import KeyPair, generate
from lab.machines.kubelet import BootFacts, NodeAgent
from lab.machines.manifests import MANIFESTS_DIR, parse_manifest
from lab.machines.namespace import Directories, MachineError, Running, kill_tree, ssh_connections
from lab.machines.pods import PodRunner
from lab.machines.programs import PROGRAMS, state
from lab.machines.programs.boot import boot
from lab.machines.programs.system import System
from lab.machines.programs.systemctl import start
from lab.machines.spec import MachineSpec

log = logging.getLogger("lab.machines")
# How long systemd takes between `systemctl reboot` and the machine going down (scaled).
SHUTDOWN_SECONDS = 1.0
LISTEN_TIMEOUT = 20.0
FAULT_SHIM_DIRS = ("/usr/local/sbin", "/usr/local/bin")  # ahead of /usr/bin for sudo and for users
# What a running control plane writes by itself: etcd's data (the lab's reset rewrites the API's
# objects in etcd) and the pods' logs. Changes there leave a machine as the scenario built it.
RUNTIME_DIRS = ("var/lib/etcd", "var/log/pods")


class FileWatch:
    """Reads a machine's file again only when it changed (inode, size or mtime)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple] = {}

    def forget(self) -> None:
        self._seen.clear()

    def changed(self, key: str, signature: tuple) -> bool:
        if self._seen.get(key) == signature:
            return False
        self._seen[key] = signature
        return True


def _signature(path: Path) -> tuple:
    try:
        info = path.stat()
    except FileNotFoundError:
        return ()
    return info.st_ino, info.st_size, info.st_mtime_ns


def _manifests_signature(directory: Path) -> tuple:
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return ()
    return tuple((name, *_signature(directory / name)) for name in names)


def os_image(root: Path) -> str:
    """PRETTY_NAME from the machine's /etc/os-release, as the kubelet reports osImage."""
    try:
        for line in (root / "etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


class Machine:
    def __init__(self, spec: MachineSpec, directory: Path, port: int, world: layout.World, agent: NodeAgent,
                 time_scale: float, kubectl: str) -> None:
        self.spec = spec
        self.dirs = Directories(directory)
        self.port = port
        self.world = world
        self.agent = agent
        self.time_scale = time_scale
        self.kubectl = kubectl
        self.host_key = generate(f"root@{spec.name}")
        self.other_host_key: KeyPair | None = None  # presented while the hostKeyChanged fault is on
        self.faults = MachineFaults()
        self.boot_seconds = spec.boot_seconds
        self.power = "off"  # on, off, rebooting (off, and on again after boot_seconds), booting
        self.running: Running | None = None
        self.sshd_listening = False
        self.boot_record: dict = {}
        self.boot_facts: BootFacts | None = None
        self._pending: asyncio.Task | None = None  # a reboot's wait, or a requested shutdown
        self._lock = asyncio.Lock()
        self._watch = FileWatch()
        self._pristine: frozenset = frozenset()
        self._kubelet_starts_stopped = not spec.kubelet_running
        self.pods = PodRunner(spec.name, spec.address, time_scale, self._tell_init, self.write,
                              lambda: self.running.root if self.running is not None else None)

    @property
    def name(self) -> str:
        return self.spec.name

    # -- files ----------------------------------------------------------------------------------

    def _root(self) -> Path:
        return self.running.root if self.running is not None else self.dirs.upper

    def write(self, path: str, content: bytes, mode: int = 0o644) -> None:
        """Write a file on the machine, running or not."""
        if self.running is None:
            disk.write(self.dirs.upper, [layout.Entry(path, content, mode)])
            return
        target = self._root() / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._root() / path.lstrip("/")).unlink()

    # -- life -----------------------------------------------------------------------------------

    def build(self) -> None:
        """A fresh machine as the scenario describes it (the machine is off)."""
        disk.wipe(self.dirs.upper)
        disk.wipe(self.dirs.work)
        disk.write(self.dirs.upper, layout.fresh_machine(self.spec, self.world, self.host_key, self.port))
        self.faults = MachineFaults()
        self.boot_seconds = self.spec.boot_seconds
        self._kubelet_starts_stopped = not self.spec.kubelet_running
        self.boot_record = {}

    async def power_on(self) -> None:
        async with self._lock:
            await self._power_on()

    async def _power_on(self) -> None:
        if self.running is not None:
            return
        self.power = "booting"
        record = boot(System(self.dirs.upper, euid=0), str(uuid.uuid4()))
        if self._kubelet_starts_stopped:  # the scenario's `ready: false`: its kubelet is down
            services = state.services(System(self.dirs.upper, euid=0))
            services["kubelet"]["active"] = False
            System(self.dirs.upper, euid=0).write_json(state.SERVICES, services)
            self._kubelet_starts_stopped = False
        self.dirs.boot_id.write_text(record["bootId"] + "\n")
        try:
            self.running = await Running.start(self.dirs, self.name, self.kubectl)
            if not self.faults.ssh_refused:
                await self._start_sshd()
        except BaseException:
            await self._kill()
            self.power = "off"
            raise
        self.boot_record = record
        self.power = "on"
        self.boot_facts = BootFacts(record["bootId"], record["kernel"], os_image(self._root()))
        self._watch.forget()
        self.agent.booted(self.boot_facts)
        self.tick()

    async def reannounce(self) -> None:
        """Tell the API about this machine again (the lab's reset made new API objects)."""
        async with self._lock:
            if self.running is None:
                self.agent.down()
                return
            self._watch.forget()
            self.agent.booted(self.boot_facts)
            self.tick()

    async def _start_sshd(self) -> None:
        await self.running.command("sshd-start", "sshd started")
        await wait_listening([(self.spec.address, self.port)])
        self.sshd_listening = True

    async def _stop_sshd(self) -> None:
        self.sshd_listening = False
        await self.running.command("sshd-stop", "sshd stopped")

    async def _kill(self) -> None:
        running, self.running = self.running, None
        self.sshd_listening = False
        if running is not None:
            await running.kill()
        self.pods.machine_down()
        self.agent.lab.static_pods_seen(self.name, {}, None)  # its kube-apiserver, if any, is gone too

    async def _tell_init(self, word: str, answer: str) -> None:
        if self.running is None:
            raise MachineError(f"{self.name} is not running")
        await self.running.command(word, answer)

    async def power_off(self) -> None:
        async with self._lock:
            self._cancel_pending()
            await self._power_off()

    async def _power_off(self) -> None:
        await self._kill()
        self.power = "off"
        self.agent.down()

    async def reboot(self) -> None:
        """Down now (every session ends), up again after the boot time (scaled)."""
        async with self._lock:
            self._cancel_pending()
            await self._power_off()
            self.power = "rebooting"
            self._pending = asyncio.create_task(self._boot_later())

    async def _boot_later(self) -> None:
        await asyncio.sleep(self.boot_seconds * self.time_scale)
        async with self._lock:
            self._pending = None
            if self.faults.boot_fails:
                self.power = "off"  # hung at boot: it stays down until someone powers it on
                log.info("%s did not come back from its reboot (bootFails)", self.name)
                return
            try:
                await self._power_on()
            except Exception:
                log.exception("%s did not come back from its reboot", self.name)

    def _cancel_pending(self) -> None:
        if self._pending is not None and self._pending is not asyncio.current_task():
            self._pending.cancel()
        self._pending = None

    async def stop(self) -> None:
        """The lab is stopping: off, and nothing pending."""
        self._cancel_pending()
        await self._kill()
        self.agent.stop()

    def pristine(self) -> bool:
        """Nothing happened to the machine since its first boot (a lab reset can keep it)."""
        return (self.power == "on" and not self.faults.any and self.boot_record.get("boots") == 1
                and self.boot_seconds == self.spec.boot_seconds
                and disk.fingerprint(self.dirs.upper, RUNTIME_DIRS) == self._pristine)

    def mark_pristine(self) -> None:
        self._pristine = disk.fingerprint(self.dirs.upper, RUNTIME_DIRS)

    # -- faults ---------------------------------------------------------------------------------

    async def set_faults(self, faults: MachineFaults) -> None:
        async with self._lock:
            old, self.faults = self.faults, faults
            self.write(state.FAULTS, (json.dumps({"failures": faults.failures, "kubeletFails": faults.kubelet_fails},
                                                 indent=1) + "\n").encode())
            if faults.latency_ms:
                self.write(state.SESSION_DELAY, f"{faults.latency_ms / 1000:.3f}\n".encode())
            else:
                self.remove(state.SESSION_DELAY)
            for program in set(old.by_program()) - set(faults.by_program()):
                for directory in FAULT_SHIM_DIRS:
                    self.remove(f"{directory}/{program}")
            for program, failures in faults.by_program().items():
                if program not in PROGRAMS:
                    for directory in FAULT_SHIM_DIRS:
                        self.write(f"{directory}/{program}", shim(program, failures, FAULT_SHIM_DIRS).encode(), 0o755)
            if old.kubelet_fails and not faults.kubelet_fails:
                self._kubelet_restarts()
            key_changed = old.host_key_changed != faults.host_key_changed
            if key_changed:
                if faults.host_key_changed:
                    self.other_host_key = generate(f"root@{self.name}")
                key = self.other_host_key if faults.host_key_changed else self.host_key
                self.write(layout.HOST_KEY, key.private, 0o600)
                self.write(f"{layout.HOST_KEY}.pub", (key.public + "\n").encode())
            if self.running is None:
                return
            if self.sshd_listening and (faults.ssh_refused or key_changed):
                await self._stop_sshd()  # sshd reads its host key when it starts
            if not faults.ssh_refused and not self.sshd_listening:
                await self._start_sshd()

    def _kubelet_restarts(self) -> None:
        """The kubeletFails fault is gone: systemd's next restart of the failing kubelet (Restart=always)
        brings it up, running the kubelet installed now."""
        system = System(self._root(), euid=0)
        with system.lock(state.SERVICES_LOCK, wait=True):
            services = state.services(system)
            entry = services.get("kubelet")
            if entry is None or not entry.get("activating"):
                return
            start(system, "kubelet", entry)
            system.write_json(state.SERVICES, services)

    # -- watching -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Look at the running machine's files and reflect what changed."""
        running = self.running
        if running is None:
            return
        if not running.alive:
            log.warning("%s: its pid 1 died; the machine is off", self.name)
            self.running = None
            self.power = "off"
            self.agent.down()
            return
        root = running.root
        try:
            self._power_request(root)
            self._services(root)
            if self.agent.kubelet_active:
                self._static_pods(root)
                self.pods.check()
        except OSError as exc:  # the machine went down meanwhile
            log.debug("%s: tick: %s", self.name, exc)
        except errors.ApiError as exc:  # the API's etcd is away: tell the API again on a later tick
            log.debug("%s: tick: %s", self.name, exc)
            self._watch.forget()
        if self.faults.drop_after_seconds is not None:
            for pid, age in ssh_connections(running.init_pid):
                if age >= self.faults.drop_after_seconds:
                    kill_tree(pid)

    def _power_request(self, root: Path) -> None:
        if self._pending is not None or not self._watch.changed("power", _signature(root / state.POWER_REQUEST[1:])):
            return
        request = (root / state.POWER_REQUEST[1:]).read_text().strip() if (root / state.POWER_REQUEST[1:]).exists() \
            else ""
        if request in ("reboot", "poweroff"):
            self._pending = asyncio.create_task(self._shut_down(request))

    async def _shut_down(self, request: str) -> None:
        await asyncio.sleep(SHUTDOWN_SECONDS * self.time_scale)
        self._pending = None
        if request == "reboot":
            await self.reboot()
        else:
            await self.power_off()

    def _services(self, root: Path) -> None:
        path = root / state.SERVICES[1:]
        if not self._watch.changed("services", _signature(path)):
            return
        kubelet = (json.loads(path.read_text()) or {}).get("kubelet") or {}
        self.agent.kubelet(bool(kubelet.get("active")), kubelet.get("version"))

    def _static_pods(self, root: Path) -> None:
        directory = root / MANIFESTS_DIR[1:]
        if not self._watch.changed("manifests", _manifests_signature(directory)):
            return
        wanted = {}
        for name in sorted(os.listdir(directory)) if directory.is_dir() else []:
            if name.startswith(".") or not (directory / name).is_file():
                continue
            try:
                wanted[name] = parse_manifest((directory / name).read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("%s: kubelet skips %s/%s: %s", self.name, MANIFESTS_DIR, name, exc)
        # Containers first: posting mirror pods needs the API, which may need this machine's etcd.
        self.pods.sync(wanted)
        self.agent.lab.static_pods_seen(self.name, wanted, root)
        self.agent.static_pods(wanted)

    # -- what tests and the admin API see ---------------------------------------------------------

    def describe(self) -> dict:
        key = self.other_host_key if self.faults.host_key_changed else self.host_key
        return {
            "name": self.name, "address": self.spec.address, "port": self.port, "power": self.power,
            "sshd": "listening" if self.sshd_listening else "stopped",
            "bootId": self.boot_record.get("bootId"), "kernel": self.boot_record.get("kernel"),
            "boots": self.boot_record.get("boots", 0), "bootSeconds": self.boot_seconds,
            "hostKey": {"public": self.host_key.key_text(), "fingerprint": self.host_key.fingerprint()},
            "presentedHostKey": {"public": key.key_text(), "fingerprint": key.fingerprint()},
            "controlPlane": self.spec.control_plane, "faults": self.faults.as_dict(),
        }


class _ListenerWatch:
    """One reader of /proc/net/tcp for every machine waiting for its sshd: 50 machines booting
    at once must not each read it a hundred times a second."""

    def __init__(self) -> None:
        self._waiting: list[tuple[set, asyncio.Future]] = []
        self._poller: asyncio.Task | None = None

    async def wait(self, wanted: list[tuple[str, int]], timeout: float) -> None:
        future = asyncio.get_running_loop().create_future()
        entry = (set(wanted), future)
        self._waiting.append(entry)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            missing = ", ".join(f"{a}:{p}" for a, p in sorted(entry[0]))
            raise MachineError(f"sshd is not listening on {missing} after {timeout}s") from None
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    async def _poll(self) -> None:
        while self._waiting:
            found = addresses.listeners()
            for missing, future in list(self._waiting):
                missing -= found
                if not missing and not future.done():
                    future.set_result(None)
            await asyncio.sleep(0.01)


_listening = _ListenerWatch()


async def wait_listening(wanted: list[tuple[str, int]], timeout: float = LISTEN_TIMEOUT) -> None:
    """Until every (address, port) has a listening socket: sshd has no readiness signal (before 9.8)."""
    await _listening.wait(wanted, timeout)
