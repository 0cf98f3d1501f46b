"""Health gates (`maintenance.gates`): checks that must pass before a node's reboot or OS upgrade and again
after it, before the next node. Each returns None when it passes, else one sentence a person reads in chat:

    http_gate("https://status.example.com/healthz", 5)    # "https://status.example.com/healthz answered 503 ..."
    prometheus_gate("http://prometheus:9090", 'ALERTS{alertstate="firing"}', 5)
    check_gates(settings.maintenance)                     # every configured gate at once: the problems, [] = clear

A gate that cannot be evaluated (unreachable, too slow, an error instead of an answer) blocks, and its
sentence says so: a rollout must not go on because its safety check was down. The pods that block a node
are found by bot/domain/blockers.py.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

MAX_BODY = 4 * 1024 * 1024  # a query result larger than this is not what a gate query should return
NAMED_SERIES = 3  # a blocked gate names this many series; the rest are counted
MAX_SERIES_TEXT = 300  # one series' text in a reason, at most
GRACE_SECONDS = 1.0  # check_gates waits this long past the longest timeout before it calls a gate silent
CANNOT_EVALUATE = "(a gate that cannot be evaluated blocks)"


class HttpGate(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def timeout_seconds(self) -> float: ...


class PrometheusGate(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def timeout_seconds(self) -> float: ...

    @property
    def queries(self) -> Sequence[str]: ...


class Gates(Protocol):
    @property
    def http(self) -> Sequence[HttpGate]: ...

    @property
    def prometheus(self) -> PrometheusGate | None: ...


class Maintenance(Protocol):
    """What check_gates reads: the `maintenance` section of the settings (bot/chat/config.py)."""

    @property
    def gates(self) -> Gates: ...


@dataclass(frozen=True)
class _Check:
    run: Callable[[], str | None]
    timeout: float
    subject: str  # how a reason names it: the URL, or the query and its server
    silent: str  # the reason when it has not answered by the deadline


def check_gates(maintenance: Maintenance) -> list[str]:
    """Run every configured gate at once, each within its own timeout; the problems, in the configuration's
    order (HTTP gates, then Prometheus queries). Empty: all clear, or no gate configured."""
    checks = [
        _Check(functools.partial(http_gate, gate.url, gate.timeout_seconds), gate.timeout_seconds, _shown(gate.url),
               f"{_shown(gate.url)} did not answer within {_seconds(gate.timeout_seconds)}")
        for gate in maintenance.gates.http
    ]
    prometheus = maintenance.gates.prometheus
    if prometheus is not None:
        checks += [
            _Check(functools.partial(prometheus_gate, prometheus.url, query, prometheus.timeout_seconds),
                   prometheus.timeout_seconds, f"'{query}': Prometheus at {_shown(prometheus.url)}",
                   f"'{query}': Prometheus at {_shown(prometheus.url)} did not answer within "
                   f"{_seconds(prometheus.timeout_seconds)} {CANNOT_EVALUATE}")
            for query in prometheus.queries
        ]
    if not checks:
        return []
    # One thread per gate: they are few, and each spends its time waiting on the network.
    executor = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="kubemaint-gate")
    silent: set[Future] = set()
    try:
        futures = [executor.submit(check.run) for check in checks]
        # urllib3 bounds each connect and read but not a name lookup: past this, a gate counts as silent.
        _, silent = wait(futures, timeout=max(check.timeout for check in checks) + GRACE_SECONDS)
    finally:
        # Every gate done: its threads end now. A silent one's thread is left to its own timeout.
        executor.shutdown(wait=not silent, cancel_futures=True)
    problems = []
    for future, check in zip(futures, checks, strict=True):
        if not future.done():
            problems.append(check.silent)
            continue
        try:
            problem = future.result()
        except Exception as error:  # a gate that fails in a way not foreseen still blocks, and says why
            problem = f"{check.subject} could not be checked: {type(error).__name__}: {error}"
        if problem is not None:
            problems.append(problem)
    return problems


def http_gate(url: str, timeout: float = 5.0) -> str | None:
    """None when `url` answers 2xx within `timeout` seconds; otherwise why not, naming the URL. Redirects are
    not followed (a redirect to a login page answers 200 without checking anything): a 3xx blocks too.
    Credentials in the URL (`https://user:password@host/...`) are sent as basic auth and never shown."""
    answer = _get(url, timeout, read_body=False)
    if isinstance(answer, str):
        return f"{_shown(url)} {answer}"
    if 200 <= answer.status < 300:
        return None
    where = answer.headers.get("Location")
    to = f" (to {_shown(where)}; a health URL must answer 2xx itself)" if where and 300 <= answer.status < 400 else ""
    return f"{_shown(url)} answered {answer.status_text}{to}"


def prometheus_gate(base_url: str, query: str, timeout: float = 5.0) -> str | None:
    """None when Prometheus at `base_url` answers the instant query `query` with no series; otherwise the
    series it returned (a few named) or why the query could not be evaluated, which blocks as well."""
    answer = _get(f"{base_url.rstrip('/')}/api/v1/query", timeout, fields={"query": query})
    if isinstance(answer, str):
        return f"'{query}': Prometheus at {_shown(base_url)} {answer} {CANNOT_EVALUATE}"
    result = _result(answer)
    if isinstance(result, str):
        return f"'{query}': {result} {CANNOT_EVALUATE}"
    if not result:
        return None
    named = ", ".join(_series_text(metric) for metric in result[:NAMED_SERIES])
    more = f" and {len(result) - NAMED_SERIES} more" if len(result) > NAMED_SERIES else ""
    return f"'{query}' returned {len(result)} series: {named}{more}"


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def status_text(self) -> str:
        try:
            phrase = self.reason or HTTPStatus(self.status).phrase
        except ValueError:
            phrase = ""
        return f"{self.status} {phrase}".rstrip()


def _get(url: str, timeout: float, *, fields: Mapping[str, str] | None = None,
         read_body: bool = True) -> _Answer | str:
    """One GET, no retries, no redirects, the whole exchange within `timeout`: the answer, or what went wrong
    ("refused the connection", "did not answer within 5s", ...)."""
    deadline = time.monotonic() + timeout
    parsed = urllib3.util.parse_url(url)
    headers = {"Accept": "application/json", "User-Agent": "kubemaint"}
    if parsed.auth:
        headers.update(urllib3.make_headers(basic_auth=parsed.auth))
    # A pool of its own: a gate runs once per node, minutes apart, and a kept-alive connection the server has
    # closed meanwhile would fail the check for nothing.
    pool = urllib3.PoolManager(num_pools=1, headers=headers)
    try:
        response = pool.request("GET", parsed._replace(auth=None).url, fields=fields, retries=False,
                                redirect=False, timeout=urllib3.Timeout(total=timeout), preload_content=False)
        try:
            body = bytearray()
            while read_body and (chunk := response.read(64 * 1024)):
                body += chunk
                if len(body) > MAX_BODY:
                    return f"answered more than {MAX_BODY // (1024 * 1024)} MiB"
                if time.monotonic() > deadline:
                    return f"did not answer within {_seconds(timeout)}"
            return _Answer(response.status, response.reason or "", response.headers, bytes(body))
        finally:
            response.release_conn()
    except (HTTPError, OSError) as error:
        return _failure(error, timeout, parsed.host or "")
    finally:
        pool.clear()


def _failure(error: BaseException, timeout: float, host: str) -> str:
    if isinstance(error, NameResolutionError):
        return f"could not be reached: the name {host} does not resolve"
    if isinstance(error, NewConnectionError):
        cause = error.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return "refused the connection"
        return f"could not be reached: {cause.strerror if isinstance(cause, OSError) and cause.strerror else error}"
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return f"did not answer within {_seconds(timeout)}"
    if isinstance(error, SSLError):
        return f"failed the TLS handshake: {_innermost(error)}"
    if isinstance(error, ProtocolError):
        return f"dropped the connection: {_innermost(error)}"
    return f"could not be reached: {type(error).__name__}: {error}"


def _innermost(error: BaseException) -> str:
    while error.args and isinstance(error.args[-1], BaseException):
        error = error.args[-1]
    return str(error) or type(error).__name__


def _result(answer: _Answer) -> list[dict[str, Any]] | str:
    """The series of a query result, or why there is no result to judge."""
    try:
        payload = json.loads(answer.body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        if 200 <= answer.status < 300:
            return "Prometheus answered something that is not a query result (is the URL Prometheus' own?)"
        return f"Prometheus answered {answer.status_text}"
    if payload["status"] == "error":
        return f"Prometheus refused the query: {payload.get('errorType', 'error')}: {payload.get('error', '')}"
    data = payload.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind in ("scalar", "string"):
        return f"the query returned a {kind}, not series: a gate query must select series, e.g. ALERTS"
    result = data.get("result") if isinstance(data, dict) else None
    if kind not in ("vector", "matrix") or not isinstance(result, list):
        return "Prometheus answered something that is not a query result (is the URL Prometheus' own?)"
    return [item.get("metric") or {} if isinstance(item, dict) else {} for item in result]


def _series_text(metric: Mapping[str, Any]) -> str:
    """A series as Prometheus writes it: `name{label="value",...}`, labels sorted."""
    labels = ",".join(f'{key}="{_escaped(str(value))}"' for key, value in sorted(metric.items())
                      if key != "__name__")
    text = f"{metric.get('__name__', '')}{{{labels}}}"
    return text if len(text) <= MAX_SERIES_TEXT else text[: MAX_SERIES_TEXT - 1] + "…"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _shown(url: str) -> str:
    """The URL without its credentials: what a reason may show in chat."""
    try:
        parsed = urllib3.util.parse_url(url)
    except ValueError:
        return url
    return parsed._replace(auth=None).url if parsed.auth else url


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"
