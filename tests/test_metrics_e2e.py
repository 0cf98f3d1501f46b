"""Metrics and health probes, end to end: the bot and a worker each serve /metrics, /healthz and
/readyz (docs/operations.md, "Metrics"); a drain through chat moves the numbers an operator graphs,
and a dead Redis makes both processes say they are not ready, naming it."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.testing import wait_until
from tests.chat_driver import Chat, Stack

pytestmark = pytest.mark.runs_long(60)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-os-upgrade", time_scale=0.05, workers=1, metrics=True) as running:
        yield running


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(stack: Stack, name: str) -> Samples:
    status, text = get(stack.metrics_url(name))
    assert status == 200, text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    return sum(v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have))


def test_a_drain_through_chat_moves_the_bot_and_worker_metrics(stack: Stack) -> None:
    chat = Chat(stack).reset()
    bot_before, worker_before = scrape(stack, "bot"), scrape(stack, "worker0")

    def moved(process: str, before: Samples, metric: str, **labels: str) -> float:
        return value(scrape(stack, process), metric, **labels) - value(before, metric, **labels)

    drain = chat.ask("drain node01 --force")
    job_id = drain.approve()
    record = chat.wait_job(job_id, ("succeeded",))

    # The command and the click were handled in the bot's handler processes: their counts reach the bot's
    # /metrics all the same.
    wait_until(lambda: moved("bot", bot_before, "kubemaint_commands_total", verb="drain",
                             outcome="awaiting_approval") == 1, 10, "the drain command to be counted")
    assert moved("bot", bot_before, "kubemaint_approvals_total", decision="approve") == 1
    # The card and the job's progress message at least, sent by the bot's background process.
    assert moved("bot", bot_before, "kubemaint_slack_api_requests_total", method="chat.postMessage",
                 status="200") >= 2
    # The worker counts the job once its run has ended, a moment after Redis says so.
    wait_until(lambda: moved("worker0", worker_before, "kubemaint_jobs_total", verb="drain",
                             state="succeeded") == 1, 10, "the job to be counted")
    assert moved("worker0", worker_before, "kubemaint_step_duration_seconds_count", outcome="done") == \
        len(record.steps)
    assert moved("worker0", worker_before, "kubemaint_step_duration_seconds_sum") > 0
    # The queue is empty again: the gauges the bot reads from Redis when scraped say so.
    bot_now = scrape(stack, "bot")
    assert ("kubemaint_queue_depth", ()) in bot_now and value(bot_now, "kubemaint_queue_depth") == 0
    assert value(bot_now, "kubemaint_queue_oldest_job_age_seconds") == 0

    chat.ask("uncordon node01").wait_progress("succeeded", timeout=30, what="uncordon")


def test_status_node_counts_its_ssh_commands_and_the_api_errors_it_rode_out(stack: Stack) -> None:
    chat = Chat(stack).reset()
    before = scrape(stack, "bot")

    def api_500s() -> float:
        return value(scrape(stack, "bot"), "kubemaint_kube_api_errors_total", status="500") - \
            value(before, "kubemaint_kube_api_errors_total", status="500")

    # Every listing of the nodes fails with a 500 until one is counted; the bot's retry then gets through.
    stack.lab.set_faults({"rules": [{"verb": "list", "resource": "nodes", "rate": 1.0, "error": "500"}]})
    counted: list[float] = []

    def heal_once_counted() -> None:
        try:
            counted.append(wait_until(api_500s, 30, "a 500 from the API to be counted"))
        finally:
            stack.lab.set_faults({})

    healer = threading.Thread(target=heal_once_counted)
    healer.start()
    try:
        reply = chat.ask("status node01", timeout=60).reply
    finally:
        healer.join()
    assert counted and counted[0] >= 1
    assert "node01" in reply["text"]
    after = scrape(stack, "bot")
    assert value(after, "kubemaint_commands_total", verb="status-node", outcome="answered") - \
        value(before, "kubemaint_commands_total", verb="status-node", outcome="answered") == 1
    # status NODE asks the machine over SSH, from a handler process.
    assert value(after, "kubemaint_ssh_command_duration_seconds_count", outcome="ok") > \
        value(before, "kubemaint_ssh_command_duration_seconds_count", outcome="ok")


def test_health_and_readiness_name_a_dead_redis(stack: Stack) -> None:
    for process in ("bot", "worker0"):
        assert get(stack.metrics_url(process, "/healthz")) == (200, "ok\n")
        status, text = get(stack.metrics_url(process, "/readyz"))
        assert status == 200, text
        assert "redis: ok" in text and "cluster: ok" in text
    assert "slack: ok" in get(stack.metrics_url("bot", "/readyz"))[1]

    stack.kill_redis()
    try:
        for process in ("bot", "worker0"):
            status, text = wait_until(lambda process=process: (answer := get(stack.metrics_url(process, "/readyz")))
                                      [0] == 503 and answer, 20, f"{process} to say it is not ready")
            assert "not ready" in text and "redis: unreachable" in text
            assert "cluster: ok" in text  # only what failed is named as failing
        assert get(stack.metrics_url("bot", "/healthz"))[0] == 200  # alive, only not ready
    finally:
        stack.restart_redis()
    for process in ("bot", "worker0"):
        wait_until(lambda process=process: get(stack.metrics_url(process, "/readyz"))[0] == 200, 30,
                   f"{process} to be ready again")
