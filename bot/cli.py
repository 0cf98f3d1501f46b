"""The `kubemaint` command line: serve (the Slack app), worker, audit, check-config.

Arguments only: starting the processes is bot/chat/startup.py's job. `--config` is accepted
before or after the subcommand (`kubemaint --config F serve` and `kubemaint serve --config F`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = os.environ.get("KUBEMAINT_CONFIG")
ALL_NODES = "*"
CONFIG_HELP = "YAML configuration file (default: $KUBEMAINT_CONFIG); KUBEMAINT_* variables override it"


def serve(args: argparse.Namespace) -> int:
    from bot.chat.health import use_private_multiprocess_dir

    use_private_multiprocess_dir()  # before anything imports prometheus_client (bot/chat/health.py says why)
    from bot.chat.startup import serve as start

    return start(args.config)


def worker(args: argparse.Namespace) -> int:
    from bot.chat.health import use_single_process

    use_single_process()
    from bot.chat.startup import worker as start

    return start(args.config, args.name, args.burst, args.metrics_port)


def metrics_port(value: str) -> int:
    """--metrics-port: a port to listen on, or 0 for none."""
    if not value.strip().isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, or 0 to serve no metrics (got {value!r})")
    return int(value)


def audit(args: argparse.Namespace) -> int:
    """The trail needs only Redis: no Slack tokens, no cluster."""
    from redis import Redis

    from bot.chat.config import ConfigError, load_redis_url
    from bot.domain.durations import DurationError, parse_duration
    from bot.engine.audit import format_audit, read_audit

    try:
        since = parse_duration(args.since)
    except DurationError as error:
        raise SystemExit(f"kubemaint audit: {error}") from error
    try:
        url = args.redis_url or load_redis_url(Path(args.config) if args.config else None)
    except ConfigError as error:
        raise SystemExit(f"kubemaint: {error}") from error
    print(format_audit(read_audit(Redis.from_url(url), since)))
    return 0


def check_config(args: argparse.Namespace) -> int:
    from bot.chat.ssh_checks import check_nodes_over_ssh, check_ssh_setup
    from bot.chat.startup import load_or_exit, process_clusters, redis_warnings

    settings = load_or_exit(args.config)
    print(f"configuration OK: Slack {settings.slack.mode} mode, Redis {settings.redis_url}, "
          f"{len(settings.operations)} commands, {len(settings.policies)} command policies")
    for name, cluster in settings.clusters.items():
        channels = ", ".join(cluster.channels) or "no channel of its own"
        default = " (default)" if name == settings.default_cluster else ""
        print(f"cluster {name}{default}: {cluster.kubeconfig or 'in-cluster'}"
              f"{f' context {cluster.context}' if cluster.context else ''}; {channels}")
    for warning in redis_warnings(settings):
        print(f"warning: {warning}")
    clusters = process_clusters(settings)
    ok = True
    for own in clusters.all_settings():
        if own.ssh is None and args.nodes is None:
            continue
        if own.cluster_name:
            print(f"-- cluster {own.cluster_name}")
        resources = clusters.resources_for(own.cluster_name)
        if check_ssh_setup(own, resources) is None:
            ok = False
            continue
        if args.nodes is not None:
            names = None if args.nodes == ALL_NODES else [name for name in args.nodes.split(",") if name]
            ok = check_nodes_over_ssh(own, resources, names) and ok
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubemaint", description="ChatOps for Kubernetes cluster maintenance.")
    top.add_argument("--config", default=DEFAULT_CONFIG, help=CONFIG_HELP)
    # The same option after the subcommand; SUPPRESS keeps it from overwriting one given before.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", parents=[config], help="run the Slack app").set_defaults(func=serve)
    work = sub.add_parser("worker", parents=[config], help="run a job worker")
    work.add_argument("--name", help="worker name (default: host.pid)")
    work.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    work.add_argument("--metrics-port", type=metrics_port, metavar="PORT",
                      help="serve /metrics, /healthz and /readyz on this port (default: metrics.worker_port from "
                           "the config; 0: none). Workers on one host need a port each")
    work.set_defaults(func=worker)
    trail = sub.add_parser("audit", parents=[config], help="print the audit trail (needs only Redis)")
    trail.add_argument("--since", default="1h", help="how far back: 30m, 1h, 2d (default 1h)")
    trail.add_argument("--redis-url", help="Redis to read (default: redis_url from the config or "
                                           "KUBEMAINT_REDIS_URL)")
    trail.set_defaults(func=audit)
    checking = sub.add_parser("check-config", parents=[config], help="validate the configuration and exit")
    checking.add_argument("--nodes", nargs="?", const=ALL_NODES, metavar="NODE,...",
                          help="also reach every node (or the ones named) over SSH and report host key, login and "
                               "sudo problems per node")
    checking.set_defaults(func=check_config)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
