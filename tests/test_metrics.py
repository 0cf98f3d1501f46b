"""The metrics read at scrape from Redis (the queue, the newest backups), the Slack call counter, and the
cluster client's error counter, without a whole stack (tests/test_metrics_e2e.py runs one)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from redis import Redis
from slack_sdk.errors import SlackApiError
from urllib3.exceptions import NewConnectionError

import tests.jobs_actions  # noqa: F401  (registers the test.* actions)
from bot.backups.catalog import Catalog, Entry
from bot.chat.metrics import SLACK_RATE_LIMITED, SLACK_REQUESTS, RedisGauges
from bot.chat.slack_chat import web_client
from bot.cluster.metrics import API_ERRORS, count_errors
from bot.engine import JobSpec, queue
from bot.engine.metrics import JOBS, STEP_SECONDS
from bot.engine.model import Step
from bot.engine.runner import StepRunner, Timings
from lab.slack.emulator import EmulatorThread
from lab.slack.ratelimit import RateLimit

pytest_plugins = ["tests.redis_fixtures"]


def gauges(redis: Redis) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(RedisGauges(redis))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in registry.collect() for s in f.samples}


def backup(backup_id: str, cluster: str, kind: str, created_at: float) -> Entry:
    return Entry(id=backup_id, kind=kind, cluster=cluster, created_at=created_at, requester="U0ALICE",
                 key=f"{cluster}/{backup_id}", location=f"file:///b/{backup_id}", size=1, sha256="0" * 64)


def test_an_empty_redis_reports_an_empty_queue_and_no_backups(r: Redis) -> None:
    assert gauges(r) == {("kubemaint_queue_depth", ()): 0, ("kubemaint_queue_oldest_job_age_seconds", ()): 0}


def test_the_queue_gauges_count_waiting_jobs_and_the_oldest_ones_wait(r: Redis) -> None:
    first = JobSpec.create("cordon", "cordon node01", "U0ALICE", [Step("cordon node01", "nothing", {})])
    queue.submit(r, first)
    r.hset(f"kubemaint:job:{first.id}", "queued_at", time.time() - 600)  # queued ten minutes ago
    queue.submit(r, JobSpec.create("cordon", "cordon node02", "U0ALICE", [Step("cordon node02", "nothing", {})]))
    values = gauges(r)
    assert values[("kubemaint_queue_depth", ())] == 2
    assert 600 <= values[("kubemaint_queue_oldest_job_age_seconds", ())] < 660


def test_the_newest_backup_of_each_cluster_and_kind_is_reported(r: Redis) -> None:
    now = time.time()
    catalog = Catalog(r)
    catalog.add(backup("b-0a1b2c3d", "prod", "etcd", now - 3 * 86400))
    catalog.add(backup("b-0a1b2c3e", "prod", "etcd", now - 2 * 86400))  # the newest of prod's etcd snapshots
    catalog.add(backup("b-0a1b2c3f", "prod.eu-1", "resources", now - 3600))
    values = gauges(r)
    assert values[("kubemaint_backup_newest_timestamp_seconds", (("cluster", "prod"), ("kind", "etcd")))] == \
        pytest.approx(now - 2 * 86400)
    assert 2 * 86400 <= values[("kubemaint_backup_newest_age_seconds", (("cluster", "prod"), ("kind", "etcd")))] \
        < 2 * 86400 + 60
    assert values[("kubemaint_backup_newest_timestamp_seconds", (("cluster", "prod.eu-1"), ("kind", "resources")))] \
        == pytest.approx(now - 3600)
    assert len([k for k in values if k[0] == "kubemaint_backup_newest_timestamp_seconds"]) == 2


def test_an_unreachable_redis_gives_no_gauges_rather_than_wrong_ones() -> None:
    assert gauges(Redis(port=1, socket_connect_timeout=1)) == {}


def test_failed_api_requests_are_counted_by_status() -> None:
    answers = iter([SimpleNamespace(status=200), SimpleNamespace(status=404), SimpleNamespace(status=503)])

    def call_api(*args: object, **kwargs: object) -> object:
        answer = next(answers, None)
        if answer is None:
            raise NewConnectionError(None, "connection refused")
        return answer

    api = SimpleNamespace(call_api=call_api)
    count_errors(api)
    before = {status: API_ERRORS.labels(status)._value.get() for status in ("404", "503", "unreachable", "200")}
    for _ in range(3):
        api.call_api("GET", "/api/v1/nodes")
    with pytest.raises(NewConnectionError):
        api.call_api("GET", "/api/v1/nodes")
    after = {status: API_ERRORS.labels(status)._value.get() for status in before}
    assert {status: after[status] - before[status] for status in before} == \
        {"404": 1, "503": 1, "unreachable": 1, "200": 0}


def test_slack_calls_and_429s_are_counted_by_method_retried_or_not() -> None:
    def counts() -> tuple[float, float, float]:
        return (SLACK_REQUESTS.labels("chat.postMessage", "200")._value.get(),
                SLACK_REQUESTS.labels("chat.postMessage", "429")._value.get(),
                SLACK_RATE_LIMITED.labels("chat.postMessage")._value.get())

    before = counts()
    with EmulatorThread(rate_limits={"chat.postMessage": RateLimit(1 / 3, 1)}) as slack:
        direct = web_client(slack.bot_token, slack.api_url, retry_rate_limited=False)  # the outbox sender's
        direct.chat_postMessage(channel="C0OPS", text="first")
        with pytest.raises(SlackApiError):
            direct.chat_postMessage(channel="C0OPS", text="one too many")
        # Limited again at once (a token comes every 3 s): it waits out Retry-After and tries again.
        patient = web_client(slack.bot_token, slack.api_url)
        patient.chat_postMessage(channel="C0OPS", text="after waiting")
    ok, limited, rate_limited = (after - was for after, was in zip(counts(), before, strict=True))
    assert (ok, limited, rate_limited) == (2, 2, 2)


def test_a_worker_counts_each_run_by_how_it_ended_and_times_steps_by_outcome(r: Redis) -> None:
    def step_count(action: str, outcome: str) -> float:
        return next((s.value for m in STEP_SECONDS.collect() for s in m.samples if s.name.endswith("_count")
                     and s.labels == {"action": action, "outcome": outcome}), 0.0)

    def counts() -> tuple[float, ...]:
        return (JOBS.labels("metered", "succeeded")._value.get(), JOBS.labels("metered", "failed")._value.get(),
                step_count("test.record", "done"), step_count("test.fail_unless", "failed"))

    def run(steps: list[Step]) -> str:
        spec = JobSpec.create("metered", "metered", "U0ALICE", steps)
        queue.submit(r, spec)
        return StepRunner(r, spec.id, "test-worker", Timings(lock_wait=0),
                          resources_factory=lambda cluster: {"redis": r}).run()

    before = counts()
    assert run([Step("one", "test.record", {}), Step("two", "test.record", {})]) == "succeeded"
    assert run([Step("three", "test.record", {}), Step("four", "test.fail_unless", {"key": "absent"})]) == "failed"
    assert tuple(after - was for after, was in zip(counts(), before, strict=True)) == (1, 1, 3, 1)
