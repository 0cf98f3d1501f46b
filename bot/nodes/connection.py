"""One SSH connection per node per process: opened on first use, shared by every command (each gets its
own channel), and opened again when it has dropped (sshd restarted, the node rebooted).

Opening one is strict at every stage, and each stage fails with its own error: the TCP connection
(directly or forwarded by the jump host), the host key against known_hosts, then the login.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from bot.nodes.config import SshConfig
from bot.nodes.credentials import Credentials
from bot.nodes.errors import AuthFailed, Unreachable
from bot.nodes.host_keys import RefuseUnknownHostKeys, UnknownKeyOffered, changed_key, load_known_hosts, unknown_key
from bot.nodes.redact import Redactor

# The kernel's own dead-peer check under SSH's keepalives: a node that lost power sends no FIN.
_TCP_KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
CONNECTION_ERRORS = (paramiko.SSHException, EOFError, OSError)


@dataclass(frozen=True)
class Endpoint:
    label: str  # how messages name it: the node's name, or "jump host ADDRESS"
    address: str
    port: int
    user: str

    @property
    def where(self) -> str:
        return f"{self.label} ({self.address}:{self.port})"


@dataclass(frozen=True)
class HostKeySeen:
    key_type: str
    fingerprint: str


def _tcp(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((endpoint.address, endpoint.port), timeout=timeout)
    except socket.gaierror as error:
        raise Unreachable(endpoint.label, f"{endpoint.where}: cannot resolve the address: {error.strerror}. "
                                          "Nothing was run.") from None
    except TimeoutError:
        raise Unreachable(endpoint.label, f"{endpoint.where}: no answer within {timeout:g}s "
                                          "(ssh.connect_timeout_seconds). Nothing was run.") from None
    except ConnectionRefusedError:
        raise Unreachable(endpoint.label, f"{endpoint.where}: connection refused: is sshd running and listening "
                                          f"on port {endpoint.port}? Nothing was run.") from None
    except OSError as error:
        raise Unreachable(endpoint.label, f"{endpoint.where}: cannot connect: {error.strerror or error}. "
                                          "Nothing was run.") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in _TCP_KEEPALIVE.items():
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


def open_client(endpoint: Endpoint, config: SshConfig, credentials: Credentials, redact: Redactor,
                sock: socket.socket | paramiko.Channel | None = None) -> tuple[paramiko.SSHClient, HostKeySeen]:
    """An authenticated client, or the error of the stage that refused. `sock` is a channel forwarded by
    the jump host; without it, a TCP connection is made here."""
    timeout = config.connect_timeout_seconds
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(RefuseUnknownHostKeys())
    load_known_hosts(config.known_hosts, into=client.get_host_keys())
    sock = sock if sock is not None else _tcp(endpoint, timeout)
    try:
        client.connect(endpoint.address, endpoint.port, username=endpoint.user, pkey=credentials.key,
                       allow_agent=credentials.agent, look_for_keys=False, sock=sock, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout)
    except UnknownKeyOffered as offered:
        client.close()
        raise unknown_key(endpoint.label, endpoint.address, endpoint.port, config.known_hosts, offered.key) from None
    except paramiko.BadHostKeyException as changed:
        client.close()
        raise changed_key(endpoint.label, endpoint.address, endpoint.port, config.known_hosts, changed.key,
                          changed.expected_key) from None
    except paramiko.AuthenticationException:
        client.close()
        raise AuthFailed(endpoint.label, f"{endpoint.where}: the node refused the login of user {endpoint.user} "
                                         f"with {credentials.describe()}: check that the user exists on the node "
                                         "and that its authorized_keys lists the bot's public key. Nothing was run."
                         ) from None
    except CONNECTION_ERRORS as error:
        client.close()
        reason = redact(str(error) or type(error).__name__)
        if "No authentication methods available" in reason:
            raise AuthFailed(endpoint.label, f"{endpoint.where}: no key to log in with: the SSH agent offered none "
                                             "(is SSH_AUTH_SOCK set, and does `ssh-add -l` list a key?). "
                                             "Nothing was run.") from None
        raise Unreachable(endpoint.label, f"{endpoint.where}: the SSH handshake failed: {reason}. Nothing was run."
                          ) from None
    transport = client.get_transport()
    assert transport is not None  # connect() succeeded
    if config.keepalive_seconds > 0:
        transport.set_keepalive(max(1, round(config.keepalive_seconds)))
    key = transport.get_remote_server_key()
    return client, HostKeySeen(key.get_name(), key.fingerprint)


class Connection:
    """The SSH connection to one endpoint, opened by `connect` when needed."""

    def __init__(self, endpoint: Endpoint, connect: Callable[[], tuple[paramiko.SSHClient, HostKeySeen]]) -> None:
        self.endpoint = endpoint
        self._connect = connect
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._pid = os.getpid()
        self.host_key: HostKeySeen | None = None
        self.opened = 0  # how many times a connection was made (a reused one is not counted again)

    def open_session(self, timeout: float) -> paramiko.Channel:
        """A channel for one command."""
        return self._channel(lambda transport: transport.open_session(timeout=timeout), "open a session")

    def open_sftp(self, timeout: float) -> paramiko.SFTPClient:
        """An SFTP session (OpenSSH's sftp-server subsystem) on this connection, for copying files."""
        channel = self._channel(lambda transport: transport.open_session(timeout=timeout), "open an SFTP session")
        channel.settimeout(timeout)
        channel.invoke_subsystem("sftp")
        return paramiko.SFTPClient(channel)

    def open_forward(self, address: str, port: int, timeout: float) -> paramiko.Channel:
        """A TCP connection from this (jump) host to `address:port`, as a channel."""
        return self._channel(lambda transport: transport.open_channel("direct-tcpip", (address, port),
                                                                      ("127.0.0.1", 0), timeout=timeout),
                             f"connect to {address}:{port}")

    def _channel(self, open_it: Callable[[paramiko.Transport], paramiko.Channel], what: str) -> paramiko.Channel:
        client = self._live_client()
        try:
            return open_it(_transport(client))
        except paramiko.ChannelException as refused:
            # The server answered and said no (a jump host that cannot reach the node): a new connection
            # would hear the same.
            raise Unreachable(self.endpoint.label, f"{self.endpoint.where} could not {what}: {refused.text}. "
                                                   "Nothing was run.") from None
        except CONNECTION_ERRORS:
            # It looked alive but was not (a node that rebooted without closing our TCP connection):
            # nothing was started on it, so connecting again once is safe.
            self._discard(client)
        client = self._live_client()
        try:
            return open_it(_transport(client))
        except paramiko.ChannelException as refused:
            raise Unreachable(self.endpoint.label, f"{self.endpoint.where} could not {what}: {refused.text}. "
                                                   "Nothing was run.") from None
        except CONNECTION_ERRORS as error:
            self._discard(client)
            raise Unreachable(self.endpoint.label, f"{self.endpoint.where}: connected, but could not {what}: "
                                                   f"{error or type(error).__name__}. Nothing was run.") from None

    def _live_client(self) -> paramiko.SSHClient:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child shares the parent's socket: using or closing it would break the parent's
                # connection, so the child forgets it and makes its own.
                self._client, self._pid = None, os.getpid()
            client = self._client
            if client is not None and _alive(client):
                return client
            if client is not None:
                client.close()
            self._client = None
            self._client, self.host_key = self._connect()
            self.opened += 1
            return self._client

    def _discard(self, client: paramiko.SSHClient) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()

    def alive(self) -> bool:
        with self._lock:
            return self._client is not None and _alive(self._client)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()


def _alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active() and transport.is_authenticated()


def _transport(client: paramiko.SSHClient) -> paramiko.Transport:
    transport = client.get_transport()
    if transport is None:
        raise paramiko.SSHException("not connected")
    return transport
