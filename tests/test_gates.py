"""Blockers and health gates (maintenance.blockers, maintenance.gates): real HTTP against the lab's Prometheus
(lab/prometheus.py), and the sentences a person reads in chat when a gate blocks a reboot or an OS upgrade."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bot.chat.config import MaintenanceSettings
from bot.cluster.gates import check_gates, http_gate, prometheus_gate
from bot.cluster.snapshot import pod_from_api
from bot.domain.blockers import blocking_pods
from lab.prometheus import FakePrometheus

FIRING = 'ALERTS{alertstate="firing", severity="critical"}'
UNEVALUATED = "(a gate that cannot be evaluated blocks)"


@pytest.fixture(scope="module")
def server() -> Iterator[FakePrometheus]:
    with FakePrometheus() as prom:
        yield prom
    assert not [thread for thread in threading.enumerate() if thread.name == "fake-prometheus"]


@pytest.fixture
def prom(server: FakePrometheus) -> FakePrometheus:
    server.clear()
    return server


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and nothing else can take it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def alert(name: str, **labels: str) -> dict[str, str]:
    return {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", "severity": "critical", **labels}


# -- HTTP gates --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_a_url_answering_2xx_passes(prom: FakePrometheus, status: int) -> None:
    prom.set_health(status)
    assert http_gate(prom.health_url, 2) is None


@pytest.mark.parametrize(("status", "shown"), [(503, "503 Service Unavailable"), (500, "500 Internal Server Error"),
                                               (302, "302 Found")])
def test_a_url_answering_anything_else_blocks_with_the_status_named(prom: FakePrometheus, status: int,
                                                                    shown: str) -> None:
    prom.set_health(status)
    assert http_gate(prom.health_url, 2) == f"{prom.health_url} answered {shown}"


def test_a_closed_port_blocks_as_refused(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/healthz"
    assert http_gate(url, 2) == f"{url} refused the connection"


def test_a_slow_url_blocks_once_its_timeout_is_over(prom: FakePrometheus) -> None:
    prom.set_delay(30)
    started = time.monotonic()
    assert http_gate(prom.health_url, 0.4) == f"{prom.health_url} did not answer within 0.4s"
    assert 0.4 <= time.monotonic() - started < 1.5


def test_credentials_in_a_url_are_never_shown(closed_port: int) -> None:
    assert http_gate(f"http://probe:s3cret@127.0.0.1:{closed_port}/healthz", 2) == (
        f"http://127.0.0.1:{closed_port}/healthz refused the connection")


# -- Prometheus gates --------------------------------------------------------------------------------


def test_a_query_returning_no_series_passes(prom: FakePrometheus) -> None:
    assert prometheus_gate(prom.url, FIRING, 2) is None
    assert prom.asked == [FIRING]  # it was asked, not skipped


def test_firing_alerts_block_with_the_series_named(prom: FakePrometheus) -> None:
    prom.set_series(FIRING, [alert("KubeNodeNotReady", node="node02"), alert("EtcdNoLeader")])
    assert prometheus_gate(prom.url, FIRING, 2) == (
        f"'{FIRING}' returned 2 series: "
        'ALERTS{alertname="KubeNodeNotReady",alertstate="firing",node="node02",severity="critical"}, '
        'ALERTS{alertname="EtcdNoLeader",alertstate="firing",severity="critical"}')


def test_many_series_are_counted_after_the_first_three(prom: FakePrometheus) -> None:
    prom.set_series("up == 0", [{"__name__": "up", "instance": f"10.0.0.{n}:9100", "job": "node"} for n in range(5)])
    assert prometheus_gate(prom.url, "up == 0", 2) == (
        "'up == 0' returned 5 series: "
        'up{instance="10.0.0.0:9100",job="node"}, up{instance="10.0.0.1:9100",job="node"}, '
        'up{instance="10.0.0.2:9100",job="node"} and 2 more')


def test_an_error_answer_blocks_with_prometheus_own_words(prom: FakePrometheus) -> None:
    prom.set_error("up ==", "1:6: parse error: unexpected end of input")
    assert prometheus_gate(prom.url, "up ==", 2) == (
        f"'up ==': Prometheus refused the query: bad_data: 1:6: parse error: unexpected end of input {UNEVALUATED}")
    prom.set_error("sum(rate(x[5m]))", "query timed out in expression evaluation", "timeout")  # HTTP 503
    assert prometheus_gate(prom.url, "sum(rate(x[5m]))", 2) == (
        "'sum(rate(x[5m]))': Prometheus refused the query: timeout: query timed out in expression evaluation "
        f"{UNEVALUATED}")


def test_a_health_page_is_not_a_query_result(prom: FakePrometheus) -> None:
    # A URL that answers 200 with something else (a proxy's page, the wrong port) must not pass as "no series".
    assert prometheus_gate(prom.health_url, "up", 2) == (
        "'up': Prometheus answered 404 Not Found (a gate that cannot be evaluated blocks)")


def test_an_unreachable_prometheus_blocks(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    assert prometheus_gate(url, FIRING, 2) == f"'{FIRING}': Prometheus at {url} refused the connection {UNEVALUATED}"


def test_a_slow_prometheus_blocks_once_its_timeout_is_over(prom: FakePrometheus) -> None:
    prom.set_delay(30)
    started = time.monotonic()
    assert prometheus_gate(prom.url, FIRING, 0.4) == (
        f"'{FIRING}': Prometheus at {prom.url} did not answer within 0.4s {UNEVALUATED}")
    assert time.monotonic() - started < 1.5


# -- all gates of a configuration --------------------------------------------------------------------


def maintenance(http: list[dict], prometheus: dict | None = None) -> MaintenanceSettings:
    return MaintenanceSettings.model_validate({"gates": {"http": http, "prometheus": prometheus}})


def test_several_gates_report_every_problem_in_the_configured_order(prom: FakePrometheus, closed_port: int) -> None:
    prom.set_series(FIRING, [alert("KubeNodeNotReady")])
    prom.set_error("up ==", "1:6: parse error: unexpected end of input")
    refused = f"http://127.0.0.1:{closed_port}/healthz"
    settings = maintenance(
        [{"url": prom.health_url}, {"url": refused}],
        {"url": prom.url, "queries": ["count(up == 0) > 3", FIRING, "up =="]},
    )
    assert check_gates(settings) == [
        f"{refused} refused the connection",
        f"'{FIRING}' returned 1 series: "
        'ALERTS{alertname="KubeNodeNotReady",alertstate="firing",severity="critical"}',
        f"'up ==': Prometheus refused the query: bad_data: 1:6: parse error: unexpected end of input {UNEVALUATED}",
    ]
    assert sorted(prom.asked) == sorted(["count(up == 0) > 3", FIRING, "up =="])


def test_gates_all_clear_or_none_configured_report_nothing(prom: FakePrometheus) -> None:
    assert check_gates(maintenance([{"url": prom.health_url}], {"url": prom.url, "queries": [FIRING]})) == []
    assert check_gates(MaintenanceSettings()) == []


def test_slow_gates_are_waited_for_together_each_within_its_timeout(prom: FakePrometheus) -> None:
    prom.set_delay(30)
    settings = maintenance([{"url": prom.health_url, "timeout_seconds": 1}] * 2,
                           {"url": prom.url, "timeout_seconds": 1, "queries": [FIRING, "up == 0"]})
    started = time.monotonic()
    threads = set(threading.enumerate())
    problems = check_gates(settings)
    elapsed = time.monotonic() - started
    assert set(threading.enumerate()) <= threads  # every gate ended within its timeout, and so did its thread
    assert problems == [f"{prom.health_url} did not answer within 1s"] * 2 + [
        f"'{query}': Prometheus at {prom.url} did not answer within 1s {UNEVALUATED}" for query in (FIRING, "up == 0")]
    assert elapsed < 2.5  # one after the other they would take 4 s


# -- blocking pods -----------------------------------------------------------------------------------


def pod(namespace: str, name: str, phase: str = "Running", **labels: str):
    return pod_from_api({"metadata": {"namespace": namespace, "name": name, "labels": labels},
                         "spec": {"nodeName": "node01"}, "status": {"phase": phase}})


def test_the_blocker_selector_names_the_pods_it_matches_on_the_node() -> None:
    pods = [
        pod("batch", "nightly-report-2", app="critical-batch"),
        pod("batch", "nightly-report-1", "Pending", app="critical-batch"),
        pod("batch", "cleanup", app="batch"),
        pod("web", "frontend-7d4f", app="web"),
        pod("batch", "nightly-report-0", "Succeeded", app="critical-batch"),  # done: nothing left to cut short
    ]
    assert blocking_pods("app=critical-batch", pods) == ["batch/nightly-report-1", "batch/nightly-report-2"]
    assert blocking_pods("app in (batch,web),app!=critical-batch", pods) == ["batch/cleanup", "web/frontend-7d4f"]


def test_without_a_selector_no_pod_blocks() -> None:
    settings = MaintenanceSettings()
    assert settings.blockers.selector() is None
    assert blocking_pods(settings.blockers.pod_selector, [pod("batch", "nightly", app="critical-batch")]) == []
    configured = MaintenanceSettings.model_validate({"blockers": {"pod_selector": "app==critical-batch"}})
    assert blocking_pods(configured.blockers.selector(), [pod("batch", "nightly", app="critical-batch")]) == [
        "batch/nightly"]
