"""A local S3 server for the backup store's tests: moto in server mode, on a free loopback port, with
credentials in the environment as a user would set them (boto3's standard chain finds them).

Test modules load it with `pytest_plugins = ["tests.s3_fixtures"]`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from tests.s3_support import S3Server


@pytest.fixture(scope="module")
def aws_environment() -> Iterator[None]:
    """Credentials from the environment, and nothing from this machine's own AWS set-up. The instance
    metadata service is turned off: credential lookups must never leave the machine."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "kubemaint-test", "AWS_SECRET_ACCESS_KEY": "kubemaint-test-secret",
                            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent",
                            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def s3_server(aws_environment: None) -> Iterator[S3Server]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
