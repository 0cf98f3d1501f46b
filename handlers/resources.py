"""The resources operations name in `needs`, and how each is built from the settings."""

from __future__ import annotations

import functools
import re
from typing import Any

from bot.contract import NotConfigured, Resource


def _kube(settings: Any) -> Any:
    from bot.cluster.kube import connect  # the kube client is slow to import; only processes that need it pay

    return connect(settings.kubeconfig, settings.context)


def _redis(settings: Any) -> Any:
    from redis import Redis

    return Redis.from_url(settings.redis_url)


def _ssh(settings: Any) -> Any:
    from redis import Redis

    from bot.engine.audit import audit
    from bot.nodes import NodeShell

    if settings.ssh is None:
        raise NotConfigured("ssh: not configured: commands that work on the nodes need the ssh section of the "
                            "configuration (docs/configuration.md)")
    # The audit's Redis is kubemaint's; its own client, so that a slow audit write never holds another's connection.
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    shell = NodeShell(ssh_config(settings.ssh), audit=functools.partial(audit, redis))
    shell.preflight()  # a missing known_hosts or a wrong passphrase stops start-up, not the first job
    return shell


def ssh_config(ssh: Any) -> Any:
    """bot/nodes' plain config from the validated `ssh` section (same names; the jump host's port and user
    default to the nodes')."""
    from bot.nodes import JumpHost, SshConfig

    jump = ssh.jump_host
    return SshConfig(
        user=ssh.user, known_hosts=ssh.known_hosts, port=ssh.port, key_file=ssh.key_file,
        passphrase_env=ssh.passphrase_env, agent=ssh.agent, addresses=dict(ssh.addresses),
        jump_host=JumpHost(jump.address, jump.port or ssh.port, jump.user or ssh.user) if jump else None,
        connect_timeout_seconds=ssh.connect_timeout_seconds, command_deadline_seconds=ssh.command_deadline_seconds,
        keepalive_seconds=ssh.keepalive_seconds,
    )


def _backups(settings: Any) -> Any:
    from redis import Redis

    from bot.backups import Backups, Catalog, LocalStore, S3Store

    section = settings.backups
    store_settings = section.store
    if store_settings.type == "s3":
        store = S3Store(store_settings.bucket, store_settings.prefix or "", endpoint_url=store_settings.endpoint_url,
                        region=store_settings.region)
    else:
        store = LocalStore(store_settings.directory)
    # The catalog lives in kubemaint's Redis, beside the jobs that make and read the backups.
    return Backups(store, Catalog(Redis.from_url(settings.redis_url)), backup_cluster(settings), section.keep_last)


def backup_cluster(settings: Any) -> str:
    """The name backups are filed under: `backups.cluster`, else the kubeconfig context's name (the one the
    settings name, else the kubeconfig's current context), made safe for a folder name; "in-cluster" when
    the bot runs with its service account and no kubeconfig."""
    if settings.backups.cluster:
        return settings.backups.cluster
    context = settings.context or _current_context(settings.kubeconfig)
    if not context:
        return "in-cluster"
    # "kubernetes-admin@kubernetes", "arn:aws:eks:...:cluster/prod": keep what a folder name may hold.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", context).strip("-._")[:63]
    return safe or "default"


def _current_context(kubeconfig: Any) -> str | None:
    import yaml

    if kubeconfig is None:
        return None
    try:
        data = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None  # the kube resource reports an unreadable kubeconfig; backups just get a plainer name
    current = data.get("current-context") if isinstance(data, dict) else None
    return current if isinstance(current, str) else None


KUBE = Resource("kube", _kube, "the cluster's API (kubeconfig and context from the settings, or in-cluster)")
REDIS = Resource("redis", _redis, "kubemaint's Redis: jobs, approvals and the audit trail")
SSH = Resource("ssh", _ssh, "the nodes over SSH (bot/nodes): strict host keys, every command audited")
BACKUPS = Resource("backups", _backups, "backup files in the configured store (backups.store) and their catalog "
                                        "in kubemaint's Redis, with retention (backups.keep_last)")
# Which cluster, of several, the other resources reach ("" without `clusters`): its locks are its own.
CLUSTER = Resource("cluster", lambda settings: getattr(settings, "cluster_name", ""),
                   "the name of the cluster the other resources reach, when several are configured")
# A section of the settings, nothing opened: planners and workers read the windows, blockers and gates by name.
MAINTENANCE = Resource("maintenance", lambda settings: settings.maintenance,
                       "the maintenance section of the settings: windows, blockers (maintenance.blockers) and "
                       "health gates (maintenance.gates)")
