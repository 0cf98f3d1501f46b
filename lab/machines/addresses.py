"""Loopback addresses for a lab's nodes (127.X.Y.N, unique to the lab instance) and the port
each machine's sshd can have on its address."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import random
import socket
from pathlib import Path

LOCK_DIR = Path("/tmp/kubemaint-lab-addresses")
SSH_PORT = 22


def listeners() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket on the host (IPv4, /proc/net/tcp)."""
    found = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            address = socket.inet_ntoa(int(hex_address, 16).to_bytes(4, "little"))
            found.add((address, int(hex_port, 16)))
    return found


class Block:
    """A run of loopback addresses held for one lab: a lock file says so to other labs."""

    def __init__(self, first: ipaddress.IPv4Address, count: int, lock: tuple[Path, int] | None) -> None:
        self.first, self.count, self._lock = first, count, lock

    def address(self, index: int) -> str:
        return str(self.first + index)

    def release(self) -> None:
        """Unlinked while still locked, so no lab can lock a file that is on its way out."""
        if self._lock is not None:
            path, handle = self._lock
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(handle)
            self._lock = None


def _try_lock(name: str) -> tuple[Path, int] | None:
    LOCK_DIR.mkdir(exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(LOCK_DIR, 0o1777)
    path = LOCK_DIR / name
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(handle).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)  # its holder released (and unlinked) it meanwhile
    except OSError:
        os.close(handle)
        return None
    return path, handle


def allocate(count: int, rng: random.Random | None = None) -> Block:
    """`count` consecutive addresses 127.X.Y.1... that no listener uses and no other lab holds.
    X and Y are random, so labs running side by side (parallel tests) never collide."""
    rng = rng or random.Random()
    span = (count + 1) // 256 + 1  # /24s needed
    for _ in range(200):
        x, y = rng.randint(1, 254), rng.randint(0, 255 - span)
        first = ipaddress.IPv4Address(f"127.{x}.{y}.1")
        wanted = {str(first + i) for i in range(count)}
        if any(address in wanted for address, _ in listeners()):
            continue
        lock = _try_lock(f"127.{x}.{y}")
        if lock is not None:
            return Block(first, count, lock)
    raise RuntimeError("no free block of loopback addresses found for the lab's nodes")


def ssh_port(address: str) -> int:
    """22 when it can be bound on `address`; otherwise (a system sshd on 0.0.0.0:22) a free port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, SSH_PORT))
            return SSH_PORT
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
    with socket.socket() as free:
        free.bind((address, 0))
        return free.getsockname()[1]
