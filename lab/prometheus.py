"""A tiny Prometheus on 127.0.0.1: the instant-query API (`/api/v1/query`) answering what the test set, and
a health endpoint (`/healthz`) answering the status the test set, so one server stands in for both kinds of
health gate.

    with FakePrometheus() as prom:
        prom.set_series('ALERTS{alertstate="firing"}', [{"__name__": "ALERTS", "alertname": "KubeNodeNotReady"}])
        prom.set_error("up ==", "parse error: unexpected end of input")        # 400, errorType bad_data
        prom.set_health(503)                                                    # GET /healthz -> 503
        prom.set_delay(2.0)                                                     # every answer 2 s late
        prom.url, prom.health_url, prom.asked

Answers have Prometheus' JSON shape: `{"status": "success", "data": {"resultType": "vector", "result":
[{"metric": {...}, "value": [<unix time>, "1"]}]}}`, or `{"status": "error", "errorType": ..., "error": ...}`
with the HTTP status Prometheus gives that type. A query nobody set answers an empty vector, as Prometheus
does for a selector that matches nothing.

From another process (the demo): `python -m lab.prometheus` prints its URL, and `POST /_lab/answers` with
`{"series": {QUERY: [METRIC, ...]}, "errors": {QUERY: {"error": ..., "errorType": ...}}, "health": 503,
"delay": 0}` (any of the keys) changes the answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

HOST = "127.0.0.1"

# web/api/v1/api.go: the HTTP status of each errorType.
ERROR_STATUS = {"bad_data": 400, "execution": 422, "canceled": 499, "timeout": 503, "unavailable": 503,
                "internal": 500, "not_found": 404, "not_acceptable": 406}


@dataclass
class _Answers:
    series: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # query -> (errorType, error)
    health: int = 200
    delay: float = 0.0


class FakePrometheus:
    """The server on its own event loop in a background thread; `with` starts it on a free port and stops it,
    ending any answer still being delayed."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.port = 0
        self.asked: list[str] = []  # every query received, in order
        self._answers = _Answers()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    # -- what it answers -------------------------------------------------------------------------

    def set_series(self, query: str, series: Iterable[Mapping[str, str]], value: str = "1") -> None:
        """`query` returns one sample of `value` per series (each a metric's labels, `__name__` included)."""
        with self._lock:
            self._answers.series[query] = [dict(metric) for metric in series]
            self._answers.values[query] = value
            self._answers.errors.pop(query, None)

    def set_error(self, query: str, error: str, error_type: str = "bad_data") -> None:
        """`query` fails as Prometheus fails it: `errorType` and `error`, with that type's HTTP status."""
        if error_type not in ERROR_STATUS:
            raise ValueError(f"unknown errorType {error_type!r}; Prometheus has {', '.join(ERROR_STATUS)}")
        with self._lock:
            self._answers.errors[query] = (error_type, error)

    def set_health(self, status: int) -> None:
        """The status `GET /healthz` answers (200 at first)."""
        if not 100 <= status <= 599:
            raise ValueError(f"{status} is not an HTTP status")
        with self._lock:
            self._answers.health = status

    def set_delay(self, seconds: float) -> None:
        """Every answer (queries and health) waits this long first; stopping the server ends the wait."""
        with self._lock:
            self._answers.delay = max(0.0, seconds)

    def clear(self) -> None:
        """Back to the start: no series, no errors, healthy, no delay, nothing asked."""
        with self._lock:
            self._answers = _Answers()
            self.asked.clear()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.url}/healthz"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakePrometheus:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                runner = loop.run_until_complete(self._serve())
            except BaseException as error:  # handed to the starting thread
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-prometheus", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the fake Prometheus did not start within {timeout}s")
        if failure:
            self._thread.join(timeout)
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._end)
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the fake Prometheus did not stop within {timeout}s")
        self._thread = self._loop = None

    def __enter__(self) -> FakePrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _end(self) -> None:
        assert self._stopping is not None and self._loop is not None
        self._stopping.set()  # delayed answers end now, so the runner's cleanup does not wait for them
        self._loop.stop()

    async def _serve(self) -> web.AppRunner:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("GET", "/api/v1/query", self._query)
        app.router.add_route("POST", "/api/v1/query", self._query)
        app.router.add_get("/healthz", self._health)
        app.router.add_post("/_lab/answers", self._control)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner

    # -- handlers --------------------------------------------------------------------------------

    async def _delay(self) -> bool:
        """Wait out the delay; False when the server is stopping meanwhile (the answer is dropped)."""
        with self._lock:
            delay = self._answers.delay
        if delay <= 0:
            return True
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
            return False
        return True

    async def _query(self, request: web.Request) -> web.StreamResponse:
        form = await request.post() if request.method == "POST" else {}
        query = str(form.get("query") or request.query.get("query") or "")
        at = str(form.get("time") or request.query.get("time") or "")
        with self._lock:
            self.asked.append(query)
            error = self._answers.errors.get(query)
            series = self._answers.series.get(query, [])
            value = self._answers.values.get(query, "1")
        if not await self._delay():
            raise web.HTTPServiceUnavailable()
        if not query.strip():
            error = ("bad_data", 'invalid parameter "query": 1:1: parse error: no expression found in input')
        if error is not None:
            error_type, text = error
            return web.json_response({"status": "error", "errorType": error_type, "error": text},
                                     status=ERROR_STATUS[error_type])
        try:
            timestamp = float(at) if at else round(time.time(), 3)
        except ValueError:
            return web.json_response({"status": "error", "errorType": "bad_data", "error":
                                      f'invalid parameter "time": cannot parse "{at}" to a valid timestamp'},
                                     status=400)
        result = [{"metric": metric, "value": [timestamp, value]} for metric in series]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    async def _health(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            status = self._answers.health
        if not await self._delay():
            raise web.HTTPServiceUnavailable()
        return web.Response(status=status, text="ok\n" if 200 <= status < 300 else "not healthy\n")

    async def _control(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            for query, series in (body.get("series") or {}).items():
                self.set_series(query, series)
            for query, error in (body.get("errors") or {}).items():
                self.set_error(query, error["error"], error.get("errorType", "bad_data"))
            if "health" in body:
                self.set_health(int(body["health"]))
            if "delay" in body:
                self.set_delay(float(body["delay"]))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            return web.json_response({"ok": False, "error": f"{type(error).__name__}: {error}"}, status=400)
        return web.json_response({"ok": True})


def main() -> None:
    with FakePrometheus() as prom:
        print(f"fake Prometheus at {prom.url} (health: {prom.health_url}); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
