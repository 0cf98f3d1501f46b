"""The `kubemaint` command line: serve (the Slack app), worker, audit, check-config."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from bot.jobs.actions import SharedResources

DEFAULT_CONFIG = os.environ.get("KUBEMAINT_CONFIG")


def load_or_exit(path: str | None) -> Settings:
    try:
        return load_settings(Path(path) if path else None)
    except ConfigError as error:
        raise SystemExit(f"kubemaint: invalid configuration: {error}") from error


def _redis(settings: Settings):
    from redis import Redis

    return Redis.from_url(settings.redis_url)


def freeze_start_up_objects() -> None:
    """What start-up loaded (the kube client, the Slack SDK, bolt, RQ) lives as long as the process;
    freezing it keeps it out of the garbage collector's full passes. Without this, a full pass took
    60-160 ms with the GIL held and stalled every Slack ack in the middle of a burst of commands."""
    gc.collect()
    gc.freeze()


def kube_factory(settings: Settings):
    from handlers.kube import connect

    lock, cache = threading.Lock(), []

    def kube():
        with lock:
            if not cache:
                cache.append(connect(settings.kubeconfig, settings.context))
            return cache[0]

    return kube


def serve(args: argparse.Namespace) -> int:
    from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler

    from bot.app import SOCKET_MODE_THREADS, build_app
    from bot.audit import configure_logging
    from bot.handling import Handlers
    from bot.threads import prestart

    configure_logging()
    settings = load_or_exit(args.config)
    handlers = Handlers(args.config, settings.handler_processes)
    handlers.start()
    app = build_app(settings, handlers.submit)
    freeze_start_up_objects()
    # SIGTERM (docker stop, systemd) and Ctrl-C end the bot quietly, and its handler processes with it.
    for ending in (signal.SIGTERM, signal.SIGINT):
        signal.signal(ending, lambda signum, frame: sys.exit(0))
    try:
        if settings.slack.mode == "socket":
            handler = SocketModeHandler(app, settings.slack.app_token.get_secret_value(),
                                        web_client=app.client, concurrency=SOCKET_MODE_THREADS)
            prestart(handler.client.message_workers, SOCKET_MODE_THREADS)
            handler.start()
        else:
            app.start(port=settings.slack.http_port, path="/slack/events")
    finally:
        handlers.stop()
    return 0


def resources_factory_for(settings: Settings) -> Callable[[], SharedResources]:
    from redis import Redis

    from bot.jobs.actions import SharedResources
    from handlers.kube import connect

    # Jobs run in the worker process itself, one at a time, so one kube client and one Redis client
    # serve them all: a client per job re-read the kubeconfig and opened a new TLS connection for
    # every job. `redis` lets a step read another step's checkpoint (the drain's shared deadline).
    shared: list[SharedResources] = []

    def factory() -> SharedResources:
        if not shared:
            shared.append(SharedResources(kube=connect(settings.kubeconfig, settings.context),
                                          redis=Redis.from_url(settings.redis_url)))
        return shared[0]

    return factory


def worker(args: argparse.Namespace) -> int:
    import handlers  # noqa: F401  (registers the actions)
    from bot.jobs.worker import run_worker

    settings = load_or_exit(args.config)
    factory = resources_factory_for(settings)
    # Connecting here (the kube client imports a lot lazily) means the first job starts its first
    # step in milliseconds instead of half a second.
    factory()
    from rq import SimpleWorker

    freeze_start_up_objects()

    # Jobs run in the worker process itself rather than a fork per job: forking a process that
    # holds the kube client costs tens of milliseconds a job, and a crash of either is the same
    # crash for the sweeper, which resumes the job on another worker.
    run_worker(settings.redis_url, name=args.name, burst=args.burst, resources_factory=factory,
               worker_class=SimpleWorker)
    return 0


def audit(args: argparse.Namespace) -> int:
    from bot.audit import format_audit, parse_duration, read_audit

    try:
        since = parse_duration(args.since)
    except ValueError as error:
        raise SystemExit(f"kubemaint audit: {error}") from error
    settings = load_or_exit(args.config)
    print(format_audit(read_audit(_redis(settings), since)))
    return 0


def check_config(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    print(f"configuration OK: Slack {settings.slack.mode} mode, Redis {settings.redis_url}, "
          f"{len(settings.policies)} command policies")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubemaint", description="ChatOps for Kubernetes cluster maintenance.")
    top.add_argument("--config", default=DEFAULT_CONFIG,
                     help="YAML configuration file (default: $KUBEMAINT_CONFIG); KUBEMAINT_* variables override it")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the Slack app").set_defaults(func=serve)
    work = sub.add_parser("worker", help="run a job worker")
    work.add_argument("--name", help="worker name (default: host.pid)")
    work.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    work.set_defaults(func=worker)
    trail = sub.add_parser("audit", help="print the audit trail")
    trail.add_argument("--since", default="1h", help="how far back: 30m, 1h, 2d (default 1h)")
    trail.set_defaults(func=audit)
    sub.add_parser("check-config", help="validate the configuration and exit").set_defaults(func=check_config)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
