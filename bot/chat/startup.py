"""Starting kubemaint's processes: the Slack app with its handler processes, and job workers.

Kept apart from the command line (bot/cli.py), which only parses arguments: handler processes
start through here too, and nothing here imports the CLI.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
from pathlib import Path

from bot.chat.clusters import Clusters
from bot.chat.config import ConfigError, Settings, load_settings
from bot.contract.resources import NotConfigured, Resources


def load_or_exit(path: str | None) -> Settings:
    try:
        return load_settings(Path(path) if path else None)
    except ConfigError as error:
        raise SystemExit(f"kubemaint: {error}") from error


def redis_warnings(settings: Settings) -> list[str]:
    """What in the connected Redis's set-up could lose kubemaint's state (see docs/operations.md)."""
    from redis import Redis

    from bot.engine.redis_state import check

    return check(Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5))


def warn_about_redis(settings: Settings) -> None:
    """At start-up: say it on stderr (and in the log) rather than find out at the first restart."""
    import structlog

    for warning in redis_warnings(settings):
        print(f"kubemaint: warning: {warning}", file=sys.stderr, flush=True)
        structlog.get_logger("kubemaint.startup").warning("redis.setup", warning=warning)


def process_clusters(settings: Settings) -> Clusters:
    """Each cluster's resources (those the operations declare), built on first use and kept for the process's life."""
    return Clusters(settings)


def cluster_checks(clusters: Clusters, *, warm_up: bool = False) -> dict[str, object]:
    """The readiness check of each cluster's API: "cluster" alone, or "cluster <name>" for each of several."""
    return {f"cluster {name}".strip(): _cluster_check(clusters.resources_for(name), warm_up=warm_up)
            for name in clusters.names}


def freeze_start_up_objects() -> None:
    """What start-up loaded (the kube client, the Slack SDK, bolt, RQ) lives as long as the process;
    freezing it keeps it out of the garbage collector's full passes. Without this, a full pass took
    60-160 ms with the GIL held and stalled every Slack ack in the middle of a burst of commands."""
    gc.collect()
    gc.freeze()


def start_health(settings: Settings, port: int | None, checks: dict, who: str, *, redis_gauges: bool) -> object:
    """`/metrics`, `/healthz` and `/readyz` on `port` (None: not served), or exit saying why not."""
    if port is None:
        return None
    from redis import Redis

    from bot.chat.health import HealthServer, MetricsPortError, redis_check, registry
    from bot.chat.metrics import RedisGauges

    extra = (RedisGauges(Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)),) \
        if redis_gauges else ()
    all_checks = {"redis": redis_check(settings.redis_url), **checks}
    try:
        server = HealthServer(settings.metrics.address, port, registry(extra), all_checks, who)
    except MetricsPortError as error:
        raise SystemExit(f"kubemaint: {error}") from None
    return server.start()


def _cluster_check(resources: Resources, *, warm_up: bool = False) -> object:
    """The cluster's readiness check. `warm_up`: build the kube client now, in the background (the bot's own
    process has none yet), so that the first probe does not wait seconds for its imports."""
    from bot.chat.health import cluster_check

    def kube() -> object:
        return resources["kube"]

    def build_quietly() -> None:
        with contextlib.suppress(Exception):  # a kube that cannot be built is what the check reports
            kube()

    if warm_up:
        threading.Thread(target=build_quietly, name="kube-warm-up", daemon=True).start()
    return cluster_check(kube)


def serve(config_path: str | None) -> int:
    """The Slack app: acks in this process, the work in `handler_processes` children."""
    from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler

    from bot.chat.app import SOCKET_MODE_THREADS, build_app
    from bot.chat.handling import Handlers
    from bot.chat.threads import prestart
    from bot.engine.audit import configure_logging

    configure_logging()
    settings = load_or_exit(config_path)
    warn_about_redis(settings)
    socket_mode = None

    def slack_connected() -> str | None:
        return None if socket_mode is not None and socket_mode.client.is_connected() else \
            "the Socket Mode connection is not up"

    checks = {"slack": slack_connected} if settings.slack.mode == "socket" else {}
    # Bound before anything starts: a port in use ends the bot at once, saying so.
    if settings.metrics.port is not None:  # (the kube client is built here only for the check)
        checks.update(cluster_checks(process_clusters(settings), warm_up=True))
        start_health(settings, settings.metrics.port, checks, "kubemaint serve", redis_gauges=True)
    handlers = Handlers(config_path, settings.handler_processes)
    handlers.start()
    app = build_app(settings, handlers.submit)
    freeze_start_up_objects()
    # SIGTERM (docker stop, systemd) and Ctrl-C end the bot quietly, and its handler processes with it.
    for ending in (signal.SIGTERM, signal.SIGINT):
        signal.signal(ending, lambda signum, frame: sys.exit(0))
    try:
        if settings.slack.mode == "socket":
            socket_mode = SocketModeHandler(app, settings.slack.app_token.get_secret_value(),
                                            web_client=app.client, concurrency=SOCKET_MODE_THREADS)
            prestart(socket_mode.client.message_workers, SOCKET_MODE_THREADS)
            socket_mode.start()
        else:
            app.start(port=settings.slack.http_port, path="/slack/events")
    finally:
        handlers.stop_replacing()
        # Close the connection ourselves: a stop that lands while it is being opened otherwise leaves
        # its threads running, and the process does not end. The close disconnects at once, then joins
        # the receiving thread, which sits in websocket-client's select for up to its 10 s timeout: that
        # wait is not ours to sit through (the threads are daemons and end with the process).
        if socket_mode is not None:
            closing = threading.Thread(target=_close_quietly, args=(socket_mode,), name="socket-close", daemon=True)
            closing.start()
            closing.join(timeout=0.25)
        handlers.stop()
    return 0


def _close_quietly(socket_mode: object) -> None:
    with contextlib.suppress(Exception):
        socket_mode.close()


def worker(config_path: str | None, name: str | None, burst: bool, metrics_port: int | None = None) -> int:
    """A job worker: runs the operations' steps, with the resources they need. `metrics_port`: where its
    metrics and health are served (None: the config's metrics.worker_port; 0: nowhere)."""
    from rq import SimpleWorker

    from bot.engine.runner import Timings
    from bot.engine.worker import WorkerQuit, run_worker

    # A stop before RQ installs its own handlers (while the worker registers) is a clean exit too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    settings = load_or_exit(config_path)
    warn_about_redis(settings)
    clusters = process_clusters(settings)
    port = settings.metrics.worker_port if metrics_port is None else (metrics_port or None)
    start_health(settings, port, cluster_checks(clusters), "kubemaint worker", redis_gauges=False)
    # Building them now (the kube client imports a lot lazily) means the first job starts its first
    # step in milliseconds instead of half a second.
    for cluster in clusters.names:
        resources = clusters.resources_for(cluster)
        for needed in settings.operations.needed_resources():
            try:
                resources[needed]
            except NotConfigured as missing:  # the operations that need it say so when asked
                print(f"kubemaint worker: {f'cluster {cluster}: ' if cluster else ''}{missing}", file=sys.stderr)
    freeze_start_up_objects()
    # Jobs run in the worker process itself rather than a fork per job: forking a process that
    # holds the kube client costs tens of milliseconds a job, and a crash of either is the same
    # crash for the sweeper, which resumes the job on another worker.
    try:
        recovery = settings.recovery
        timings = Timings(heartbeat_interval=recovery.heartbeat_seconds, heartbeat_ttl=recovery.dead_after_seconds,
                          sweep_interval=recovery.sweep_seconds)
        run_worker(settings.redis_url, name=name, burst=burst, resources_factory=clusters.resources_for,
                   worker_class=SimpleWorker, timings=timings)
    except WorkerQuit as quit_:
        print(f"kubemaint worker: {quit_}", file=sys.stderr)
        return 1
    return 0
