"""Fixtures for the job engine tests: a private redis-server per test and real RQ workers in subprocesses.

Test modules load them with `pytest_plugins = ["tests.redis_fixtures"]`; helpers are in tests/jobs_support.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from lab.redis_server import RedisServer
from tests.jobs_support import Workers


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def workers(redis_server: RedisServer, r: Redis, tmp_path: Path, request: pytest.FixtureRequest
            ) -> Iterator[Workers]:
    pool = Workers(redis_server.url, r, tmp_path)
    yield pool
    failed = getattr(request.node, "rep_call", None)
    pool.stop_all()
    if failed is not None and failed.failed:
        print(pool.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    # Lets the `workers` fixture print the workers' logs when the test body failed.
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report
