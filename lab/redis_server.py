"""A private redis-server on a free port in a temporary directory: for tests and the demo, never a shared one.

    with RedisServer() as server:
        client = server.client()        # or Redis.from_url(server.url)
        server.kill()                   # SIGKILL, like an OOM kill: no shutdown, no final fsync
        server.restart()                # same port and directory: the append-only file is replayed

Durable by default, as production runs it (deploy/compose.yaml): an append-only file fsynced every
second and no eviction, so the job queue never loses a key to memory pressure.
`persistence="none"` is for tests that must show what losing Redis' data does.

`python -m lab.redis_server [--no-persistence]` starts one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

REDIS_SERVER = os.environ.get("KUBEMAINT_REDIS_SERVER", "/usr/bin/redis-server")
PERSISTENCE = ("aof", "none")
AOF_DIR = "appendonlydir"  # redis-server's default `appenddirname`, under --dir
# No RDB snapshots in either mode: with "aof" the append-only file is the one durable copy (synced
# before each reply, as docs/operations.md asks), and with "none" nothing may survive a restart.
PERSISTENCE_ARGS = {
    "aof": ["--appendonly", "yes", "--appendfsync", "always", "--appenddirname", AOF_DIR, "--save", ""],
    "none": ["--appendonly", "no", "--save", ""],
}


class RedisServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server child process; ready when it answers PING and has loaded its data (polled until
    a deadline)."""

    def __init__(self, *, port: int | None = None, workdir: Path | None = None, ready_timeout: float = 10.0,
                 binary: str = REDIS_SERVER, persistence: str = "aof") -> None:
        if persistence not in PERSISTENCE:
            raise ValueError(f"persistence must be one of {', '.join(PERSISTENCE)}, not {persistence!r}")
        self.persistence = persistence
        self.requested_port = port
        self.port = 0
        self.ready_timeout = ready_timeout
        self.binary = binary
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="kubemaint-redis-")
        self.workdir = Path(workdir or self._tmp.name)
        self.log = self.workdir / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> RedisServer:
        if not shutil.which(self.binary):
            raise RedisServerError(f"{self.binary} not found: install redis-server or set KUBEMAINT_REDIS_SERVER")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A free port can be taken between our probe and the server's bind: try a few.
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            try:
                self._spawn_and_wait()
                return self
            except RedisServerError:
                self.stop(cleanup=False)
                if attempt == attempts - 1 or "Address already in use" not in self._log_text():
                    self._cleanup()
                    raise
        raise AssertionError("unreachable")

    def _spawn_and_wait(self) -> None:
        # Appended to, so a restart keeps the log of the run before it.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                 *PERSISTENCE_ARGS[self.persistence], "--maxmemory-policy", "noeviction",
                 "--daemonize", "no", "--protected-mode", "yes", "--databases", "16", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + self.ready_timeout
        probe = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RedisServerError(f"redis-server exited with {self.process.returncode}: {self._log_text()}")
                try:
                    # PING is answered while the append-only file is still being replayed; most other
                    # commands get LOADING errors until `loading` drops to 0.
                    if probe.ping() and not int(probe.info("persistence")["loading"]):
                        return
                except RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server not ready after {self.ready_timeout}s on port "
                                           f"{self.port}: {self._log_text()}")
                time.sleep(0.01)
        finally:
            probe.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer does: no shutdown save, no final fsync. The directory stays
        for `restart()`."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def restart(self) -> RedisServer:
        """Start again on the same port in the same directory (a running server is stopped cleanly
        first); returns once it answers PING and has replayed its append-only file."""
        if not self.port:
            raise RedisServerError("restart() before start()")
        self.stop(cleanup=False)
        self._spawn_and_wait()
        return self

    def aof_files(self) -> list[Path]:
        """The append-only files (base and increments), for tests that look for a write in them."""
        return sorted((self.workdir / AOF_DIR).glob("*.aof"))

    def aof_contains(self, data: bytes) -> bool:
        """Whether `data` has been written to the append-only files. With `appendfsync always` Redis
        writes and syncs a command there before it answers, so what a client was told is stored
        survives a SIGKILL of the server and a crash of the machine."""
        return any(data in path.read_bytes() for path in self.aof_files())

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, cleanup: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if cleanup:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    with RedisServer(persistence="none" if "--no-persistence" in args else "aof") as server:
        print(server.url, flush=True)
        stop = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop and server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
