"""The machine as its programs see it: files under a root, who runs them, their terminal.

Programs take a System instead of touching the process's files and streams, so the same
code runs inside a machine (root "/") and in unit tests over a temporary directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


class LockHeld(Exception):
    """Another process holds the lock; `holder` is its pid and name when known."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(path)
        self.path, self.holder = path, holder


class System:
    def __init__(self, root: Path | str = "/", *, euid: int | None = None, stdin: TextIO | None = None,
                 stdout: TextIO | None = None, stderr: TextIO | None = None, clock=time.time) -> None:
        self.root = Path(root)
        self.euid = os.geteuid() if euid is None else euid
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.clock = clock

    # -- who and where -----------------------------------------------------------------------

    @property
    def is_root(self) -> bool:
        return self.euid == 0

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def hostname(self) -> str:
        try:
            return self.path("/etc/hostname").read_text().strip() or "localhost"
        except OSError:
            return "localhost"

    # -- output ------------------------------------------------------------------------------

    def out(self, text: str = "", end: str = "\n") -> None:
        self.stdout.write(text + end)

    def err(self, text: str, end: str = "\n") -> None:
        self.stdout.flush()  # keep the order a terminal would show
        self.stderr.write(text + end)
        self.stderr.flush()

    def ask(self, prompt: str) -> str | None:
        """Print a prompt and read the answer; None at end of input (nobody to answer)."""
        self.out(prompt, end="")
        self.stdout.flush()
        line = self.stdin.readline() if self.stdin is not None else ""
        return line.strip() if line else None

    # -- files -------------------------------------------------------------------------------

    def read_text(self, path: str, default: str | None = None) -> str | None:
        try:
            return self.path(path).read_text()
        except FileNotFoundError:
            return default

    def read_json(self, path: str, default: object = None) -> object:
        text = self.read_text(path)
        return default if text is None else json.loads(text)

    def write_text(self, path: str, text: str, mode: int = 0o644) -> None:
        """Atomically: the lab reads these files while the machine runs."""
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temp, mode)
        os.replace(temp, target)

    def write_json(self, path: str, data: object) -> None:
        self.write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(path).unlink()

    @contextlib.contextmanager
    def lock(self, path: str, *, wait: bool) -> Iterator[None]:
        """An exclusive lock on a file, as dpkg and apt take theirs (fcntl, so the holder's pid is known).

        Raises PermissionError when the file cannot be opened for writing (not root),
        LockHeld when another process holds it and `wait` is False.
        """
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(target, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                raise LockHeld(path, self._holder(target)) from exc
            yield
        finally:
            os.close(handle)

    def _holder(self, target: Path) -> str:
        """'1234 (apt-get)' from /proc/locks, as apt names the process holding its lock."""
        try:
            inode = target.stat().st_ino
            for line in Path("/proc/locks").read_text().splitlines():
                fields = line.split()
                pid_index = 4 if fields[1] != "->" else 5
                pid, device_inode = fields[pid_index], fields[pid_index + 1]
                if device_inode.rsplit(":", 1)[-1] == str(inode):
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"{pid} ({name})"
        except (OSError, IndexError):
            pass
        return "unknown"
