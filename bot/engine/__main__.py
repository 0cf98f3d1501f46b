"""`python -m bot.engine`: run a job worker (what `kubemaint worker` wraps).

    python -m bot.engine --redis-url redis://127.0.0.1:6379/0 --import handlers.cordon \
        --resources-factory mypkg.resources:make
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable

from rq import SimpleWorker, Worker

from bot.engine.queue import QUEUE_NAME
from bot.engine.runner import Timings
from bot.engine.worker import run_worker


def load_callable(spec: str) -> Callable[..., object]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise SystemExit(f"--resources-factory wants module:callable, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bot.engine", description="Run a kubemaint job worker.")
    p.add_argument("--redis-url", required=True)
    p.add_argument("--name", help="worker name (default: host.pid)")
    p.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    p.add_argument("--queue", default=QUEUE_NAME)
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE (a package: every module in it) first, so that its @action functions are "
                        "registered (repeatable)")
    p.add_argument("--resources-factory", metavar="MODULE:CALLABLE", help="builds ctx.resources for each run")
    p.add_argument("--worker-class", choices=["fork", "simple"], default="fork",
                   help="fork: RQ's Worker, a work horse per job; simple: jobs run in the worker process")
    p.add_argument("--log-level", default="INFO")
    defaults = Timings()
    for field, help_text in [("heartbeat_interval", "seconds between runner heartbeats"),
                             ("heartbeat_ttl", "a run silent this long is dead and its job is resumed"),
                             ("lock_ttl", "lock TTL (refreshed every third of it)"),
                             ("lock_wait", "how long a job waits for a busy lock (0 = fail fast)"),
                             ("sweep_interval", "seconds between sweeps for dead runs")]:
        p.add_argument("--" + field.replace("_", "-"), type=float, default=getattr(defaults, field),
                       help=f"{help_text} (default {getattr(defaults, field):g})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for name in args.imports:
        module = importlib.import_module(name)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"{name}."):
            importlib.import_module(info.name)
    factory = load_callable(args.resources_factory) if args.resources_factory else None
    timings = Timings(heartbeat_interval=args.heartbeat_interval, heartbeat_ttl=args.heartbeat_ttl,
                      lock_ttl=args.lock_ttl, lock_wait=args.lock_wait, sweep_interval=args.sweep_interval)
    worker_class = SimpleWorker if args.worker_class == "simple" else Worker
    run_worker(args.redis_url, args.name, args.burst, factory, queue_name=args.queue, timings=timings,
               worker_class=worker_class, logging_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
