"""`/metrics`, `/healthz` and `/readyz` for `kubemaint serve` and each worker (docs/operations.md, "Metrics").

The bot's counters are incremented in its handler processes (bot/chat/handling.py), children of a fork
server, as well as in the bot's own process. They reach `/metrics` through prometheus_client's
multiprocess mode: `serve` points PROMETHEUS_MULTIPROC_DIR at a directory of its own before anything
imports prometheus_client (`use_private_multiprocess_dir`, called by the CLI); the fork server and every
child inherit it, each process writes its values to memory-mapped files there, and a scrape adds them up.
Reporting through the parent instead would need a channel from every child and would lose a dead
child's counts; the files outlive the child, so a handler that is replaced keeps its counts. Every
metric here is a counter or a histogram (gauges are read from Redis at scrape), so no per-process
gauge mode has to be chosen. A worker runs its jobs in its own process and keeps its values in memory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CHECK_TIMEOUT = 3.0  # each readiness check's own bound; a probe's timeout is usually a few seconds more

# A check returns None when its dependency is fine, else why not (one line).
Check = Callable[[], "str | None"]


def use_private_multiprocess_dir() -> Path:
    """Give this process and its future children a fresh, private multiprocess directory (removed at exit).
    Must run before prometheus_client is imported: it reads the variable once, at import."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    path = Path(tempfile.mkdtemp(prefix="kubemaint-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def use_single_process() -> None:
    """A worker counts in its own memory: a directory inherited from elsewhere must not redirect it."""
    os.environ.pop(MULTIPROC_ENV, None)


def registry(extra: tuple[object, ...] = ()) -> object:
    """What `/metrics` serves: every process's values in multiprocess mode, else this process's (the
    default registry), plus `extra` collectors (the gauges read from Redis)."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if os.environ.get(MULTIPROC_ENV):
        chosen = CollectorRegistry()
        MultiProcessCollector(chosen, os.environ[MULTIPROC_ENV])
    else:
        chosen = REGISTRY
    for collector in extra:
        chosen.register(collector)
    return chosen


class MetricsPortError(Exception):
    """The port could not be listened on; the message says which and what to do."""


class HealthServer:
    """The three endpoints, served from a daemon thread (`start`), until `stop`."""

    def __init__(self, address: str, port: int, metrics_registry: object, checks: Mapping[str, Check],
                 who: str) -> None:
        self.checks = dict(checks)
        handler = _handler(metrics_registry, self.readiness)
        try:
            self._server = ThreadingHTTPServer((address, port), handler)
        except OSError as error:
            hint = (" (another process uses it: a second worker on this host needs its own --metrics-port)"
                    if error.errno == 98 else "")
            raise MetricsPortError(f"{who}: cannot serve metrics on {address}:{port}: {error.strerror}{hint}") \
                from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def start(self) -> HealthServer:
        threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def readiness(self) -> tuple[bool, str]:
        """Every check, each bounded by its own timeout: (all fine, one line per dependency)."""
        lines, ready = [], True
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as error:  # a check that breaks is a dependency we cannot vouch for
                problem = f"{type(error).__name__}: {error}"
            ready = ready and problem is None
            lines.append(f"{name}: {'ok' if problem is None else problem}")
        return ready, "\n".join(lines)


def _handler(metrics_registry: object, readiness: Callable[[], tuple[bool, str]]) -> type[BaseHTTPRequestHandler]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(metrics_registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._answer(200, b"ok\n")
            elif path == "/readyz":
                ready, text = readiness()
                self._answer(200 if ready else 503, f"{'ready' if ready else 'not ready'}\n{text}\n".encode())
            else:
                self._answer(404, b"not found: /metrics, /healthz or /readyz\n")

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a probe every few seconds is not worth a log line

    return Handler


def redis_check(url: str) -> Check:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT)

    def check() -> str | None:
        try:
            client.ping()
        except RedisError as error:
            return f"unreachable ({type(error).__name__}: {error})"
        return None

    return check


def cluster_check(kube: Callable[[], object]) -> Check:
    """The cluster's API answers (any HTTP status: it is up). `kube` builds the client on first use."""
    from bot.cluster.kube import api_answers

    def check() -> str | None:
        return None if api_answers(kube(), timeout=CHECK_TIMEOUT) else "the API server does not answer"

    return check
