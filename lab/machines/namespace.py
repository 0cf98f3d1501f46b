"""One running machine: its own mount, UTS and pid namespaces, an overlay over the host's root
as its /, a fresh /proc and /run, and a shell as its pid 1 (layout.INIT_SCRIPT).

Killing pid 1 ends every process of the machine at once (the kernel does it for a pid
namespace), so power-off and reboot are one signal; and pid 1 exits by itself when the lab
that started it goes away (its stdin closes), so no machine outlives its lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from lab.machines.layout import INIT, REAL_ETCDCTL, REAL_KUBECTL, SYSTEM_ETCDCTL

# Runs as pid 1 of the new namespaces, before it becomes the machine's init.
SETUP = f"""set -e
root=$1 upper=$2 work=$3 name=$4 boot_id=$5 kubectl=$6
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
mount --bind "$boot_id" "$root/proc/sys/kernel/random/boot_id"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
if [ -n "$kubectl" ]; then mount --bind "$kubectl" "$root{REAL_KUBECTL}"; fi
if [ -x {SYSTEM_ETCDCTL} ]; then mount --bind {SYSTEM_ETCDCTL} "$root{REAL_ETCDCTL}"; fi
hostname "$name"
exec chroot "$root" {INIT}
"""
ANSWER_TIMEOUT = 20.0


class MachineError(RuntimeError):
    pass


@dataclass(frozen=True)
class Directories:
    """Where a machine lives on the host."""

    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"  # the machine's own files

    @property
    def work(self) -> Path:
        return self.base / "work"  # overlayfs' scratch space

    @property
    def root(self) -> Path:
        return self.base / "root"  # where the machine's / is mounted (in its namespace only)

    @property
    def boot_id(self) -> Path:
        return self.base / "boot_id"  # bound over the machine's /proc/sys/kernel/random/boot_id

    @property
    def console(self) -> Path:
        return self.base / "console.log"  # stderr of the machine's init and its sshd


class Running:
    """A started machine: `unshare` (our child) and the machine's pid 1 (its child)."""

    def __init__(self, process: asyncio.subprocess.Process, init_pid: int) -> None:
        self.process = process
        self.init_pid = init_pid
        self._talk = asyncio.Lock()

    @property
    def root(self) -> Path:
        """The machine's / as its processes see it, from the host."""
        return Path(f"/proc/{self.init_pid}/root")

    @classmethod
    async def start(cls, dirs: Directories, hostname: str, kubectl: str) -> Running:
        dirs.root.mkdir(parents=True, exist_ok=True)
        with dirs.console.open("ab") as console:
            process = await asyncio.create_subprocess_exec(
                "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private",
                "sh", "-c", SETUP, "setup", str(dirs.root), str(dirs.upper), str(dirs.work), hostname,
                str(dirs.boot_id), kubectl,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=console)
        running = cls(process, 0)
        try:
            await running._expect("booted", dirs)
            running.init_pid = _first_child(process.pid)
        except BaseException:
            await running.kill()
            raise
        return running

    async def _expect(self, answer: str, dirs: Directories | None = None) -> None:
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), ANSWER_TIMEOUT)
        except TimeoutError:
            line = b""
        if line.decode().strip() != answer:
            tail = dirs.console.read_text(errors="replace")[-2000:] if dirs else ""
            raise MachineError(f"machine did not answer {answer!r} (got {line!r}); its console:\n{tail}")

    async def command(self, word: str, answer: str) -> None:
        """Tell pid 1 to do something (sshd-start, sshd-stop) and wait until it has."""
        async with self._talk:
            self.process.stdin.write(f"{word}\n".encode())
            await self.process.stdin.drain()
            await self._expect(answer)

    async def kill(self) -> None:
        """Power off: every process of the machine ends now."""
        if self.init_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()  # unshare; with --kill-child that also ends pid 1
        await self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


def _first_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if not children:
        raise MachineError(f"unshare ({pid}) has no child: the machine did not start")
    return int(children[0])


def pid_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def processes_of(init_pid: int) -> list[int]:
    """The host pids of every process in the machine whose pid 1 is `init_pid`."""
    try:
        namespace = pid_namespace(init_pid)
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry.name}/ns/pid") == namespace:
                    found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _age(pid: int) -> float:
    """Seconds since the process started."""
    try:
        started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return uptime - started / os.sysconf("SC_CLK_TCK")


def ssh_connections(init_pid: int) -> list[tuple[int, float]]:
    """(pid, age in seconds) of each SSH connection's sshd process: the children of the machine's
    listening sshd, which is a child of its pid 1."""
    listeners = [pid for pid in _children(init_pid) if _comm(pid) == "sshd"]
    return [(pid, _age(pid)) for listener in listeners for pid in _children(listener)]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants: an SSH connection and the commands it runs."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += _children(current)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
