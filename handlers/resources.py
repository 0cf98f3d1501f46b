"""The resources operations name in `needs`, and how each is built from the settings."""

from __future__ import annotations

from typing import Any

from bot.contract import Resource


def _kube(settings: Any) -> Any:
    from bot.cluster.kube import connect  # the kube client is slow to import; only processes that need it pay

    return connect(settings.kubeconfig, settings.context)


def _redis(settings: Any) -> Any:
    from redis import Redis

    return Redis.from_url(settings.redis_url)


KUBE = Resource("kube", _kube, "the cluster's API (kubeconfig and context from the settings, or in-cluster)")
REDIS = Resource("redis", _redis, "kubemaint's Redis: jobs, approvals and the audit trail")
