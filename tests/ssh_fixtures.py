"""Fixtures for the SSH layer's tests: a private sshd per test module (tests/sshd_support.py), a client
key it trusts, a known_hosts that trusts it, and NodeShells whose audit is recorded.

Test modules load them with `pytest_plugins = ["tests.ssh_fixtures"]`. Tests that restart sshd or
change its host key start their own with `new_sshd`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.nodes import NodeShell, SshConfig
from tests.sshd_support import KeyPair, PrivateSshd, make_key, write_known_hosts


class AuditRecorder:
    """Stands in for bot.engine.audit.audit(redis, ...): the records, in order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.records.append({"event": event, **fields})


@pytest.fixture(scope="module")
def ssh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ssh")


@pytest.fixture(scope="module")
def client_key(ssh_dir: Path) -> KeyPair:
    return make_key(ssh_dir, "bot_key")


@pytest.fixture(scope="module")
def sshd(ssh_dir: Path, client_key: KeyPair) -> Iterator[PrivateSshd]:
    server = PrivateSshd()
    server.authorize("root", client_key.public_text)
    with server:
        yield server


@pytest.fixture
def new_sshd(client_key: KeyPair, known_hosts: Path) -> Iterator[Callable[..., PrivateSshd]]:
    """Start sshds of the test's own (stopped at its end), root trusting the client key, their host keys
    added to `known_hosts` unless `trusted=False`."""
    started: list[PrivateSshd] = []

    def start(*, trusted: bool = True, **kwargs: Any) -> PrivateSshd:
        server = PrivateSshd(**kwargs)
        server.authorize("root", client_key.public_text)
        started.append(server.start())
        if trusted:
            with known_hosts.open("a") as out:
                out.write(server.known_hosts_line())
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: PrivateSshd) -> Path:
    return write_known_hosts(tmp_path / "known_hosts", sshd)


@pytest.fixture
def audit() -> AuditRecorder:
    return AuditRecorder()


@pytest.fixture
def make_shell(client_key: KeyPair, known_hosts: Path, sshd: PrivateSshd, audit: AuditRecorder
               ) -> Iterator[Callable[..., NodeShell]]:
    """NodeShells logging in as root with the client key, trusting `known_hosts`; closed at the test's end."""
    shells: list[NodeShell] = []

    def make(*, environ: dict[str, str] | None = None, **overrides: Any) -> NodeShell:
        settings: dict[str, Any] = {"user": "root", "known_hosts": known_hosts, "port": sshd.port,
                                    "key_file": client_key.private, "connect_timeout_seconds": 5,
                                    "command_deadline_seconds": 30}
        settings.update(overrides)
        shell = NodeShell(SshConfig(**settings), audit=audit, environ=environ or {})
        shells.append(shell)
        return shell

    yield make
    for shell in shells:
        shell.close()
