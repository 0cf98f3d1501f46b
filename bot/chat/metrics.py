"""The chat edge's Prometheus metrics, and the gauges read from Redis at each scrape
(docs/operations.md, "Metrics" lists every metric)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from slack_sdk.http_retry.handler import RetryHandler

from bot.backups.catalog import Catalog
from bot.engine.metrics import queue_stats

COMMANDS = Counter("kubemaint_commands", "Commands people typed, by operation and outcome: invalid (not understood), "
                   "not_allowed (the roles), answered (read-only), refused (by its plan), dry_run, repeated (already "
                   "asked), awaiting_approval (a card posted), queued (no approval needed), cluster_error",
                   ["verb", "outcome"])
APPROVALS = Counter("kubemaint_approvals", "Decisions on approval cards: approve, deny, ignored (a click that "
                    "changed nothing: not an approver, own request, already decided), expired", ["decision"])
SLACK_REQUESTS = Counter("kubemaint_slack_api_requests", "Slack Web API requests, every attempt, by method and HTTP "
                         "status (\"error\": no answer)", ["method", "status"])
SLACK_RATE_LIMITED = Counter("kubemaint_slack_rate_limited", "Slack Web API answers 429 (rate limited), by method",
                             ["method"])

UNKNOWN_VERB = "-"  # the verb label of a command that could not be parsed


class SlackCounter(RetryHandler):
    """Counts each Web API attempt. slack_sdk asks every retry handler about each answer (200s too) as long
    as one is installed; placed first and never retrying, this one sees every attempt, 429s included, also
    those a later handler retries."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=2**31)

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"
        status = getattr(response, "status_code", None)
        SLACK_REQUESTS.labels(method, str(status) if status else "error").inc()
        if status == 429:
            SLACK_RATE_LIMITED.labels(method).inc()
        return False


class RedisGauges(Collector):
    """Gauges computed from Redis when scraped, so they are true whichever process made the change: the
    queue (depth, oldest job's wait) and the newest backup per cluster and kind."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth, oldest = queue_stats(self.redis)
            newest = Catalog(self.redis).newest_times()
        except RedisError:
            return  # no values rather than wrong ones; /readyz says Redis is unreachable
        yield GaugeMetricFamily("kubemaint_queue_depth", "Jobs waiting in the queue for a worker", value=depth)
        yield GaugeMetricFamily("kubemaint_queue_oldest_job_age_seconds", "How long the oldest queued job has "
                                "waited (0: none waits)", value=oldest)
        backups = GaugeMetricFamily("kubemaint_backup_newest_timestamp_seconds", "When the newest successful "
                                    "backup was made (Unix time), by cluster and kind (etcd, resources)",
                                    labels=["cluster", "kind"])
        age = GaugeMetricFamily("kubemaint_backup_newest_age_seconds", "How old the newest successful backup is, "
                                "by cluster and kind", labels=["cluster", "kind"])
        now = time.time()
        for (cluster, kind), made in sorted(newest.items()):
            backups.add_metric([cluster, kind], made)
            age.add_metric([cluster, kind], max(0.0, now - made))
        yield backups
        yield age
