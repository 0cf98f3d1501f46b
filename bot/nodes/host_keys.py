"""Strict host keys: only the keys in the configured known_hosts file are trusted, never one a node
offers for the first time, and a refusal says how to check and fix it.

paramiko checks the key after the key exchange and before authentication, so a refused node never
sees a login attempt, let alone a command.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import paramiko
from paramiko.hostkeys import InvalidHostKey

from bot.nodes.errors import ChangedHostKey, SshSetupError, UnknownHostKey

# ssh-keyscan's -t names, and the host key file sshd keeps for each type.
_KEYSCAN_TYPES = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ecdsa-sha2-nistp256": "ecdsa",
                  "ecdsa-sha2-nistp384": "ecdsa", "ecdsa-sha2-nistp521": "ecdsa"}


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint exactly as `ssh-keygen -lf` prints it: `SHA256:` and unpadded base64."""
    return key.fingerprint


def lookup_name(address: str, port: int) -> str:
    """How known_hosts names a host: the bare address on port 22, `[address]:port` elsewhere."""
    return address if port == 22 else f"[{address}]:{port}"


def load_known_hosts(path: Path, into: paramiko.HostKeys | None = None) -> paramiko.HostKeys:
    """The trusted keys (added to `into`, a client's own set): read afresh at every connection, so that an
    updated known_hosts is used without a restart."""
    keys = into if into is not None else paramiko.HostKeys()
    try:
        keys.load(str(path))
    except FileNotFoundError:
        raise SshSetupError("known_hosts", f"ssh.known_hosts {path}: file not found (it lists the nodes' host "
                                           "keys; see docs/configuration.md)") from None
    except OSError as error:
        raise SshSetupError("known_hosts", f"ssh.known_hosts {path}: cannot read it: {error.strerror}") from None
    except InvalidHostKey as error:
        # A known_hosts line holds public keys only, so quoting it gives nothing away.
        raise SshSetupError("known_hosts", f"ssh.known_hosts {path}: a line is not a host key entry: "
                                           f"{str(error.line).strip()[:80]!r}") from None
    return keys


class UnknownKeyOffered(paramiko.SSHException):
    """Raised inside paramiko's handshake; turned into UnknownHostKey once the node is known."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("host key not in known_hosts")
        self.key = key


class RefuseUnknownHostKeys(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the offered key so the refusal can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownKeyOffered(key)


def _keyscan(address: str, port: int, key_type: str) -> str:
    port_option = f"-p {port} " if port != 22 else ""
    return f"ssh-keyscan {port_option}-t {_KEYSCAN_TYPES.get(key_type, key_type)} {shlex.quote(address)}"


def _on_the_node(key_type: str) -> str:
    name = _KEYSCAN_TYPES.get(key_type)
    host_key = f"/etc/ssh/ssh_host_{name}_key.pub" if name else "/etc/ssh/ssh_host_*_key.pub"
    return f"ssh-keygen -lf {host_key}"


def unknown_key(node: str, address: str, port: int, known_hosts: Path, key: paramiko.PKey) -> UnknownHostKey:
    key_type, offered = key.get_name(), fingerprint(key)
    where = lookup_name(address, port)
    return UnknownHostKey(
        node,
        f"{node} ({address}:{port}): unknown host key: the node offered {key_type} {offered} and known_hosts "
        f"{known_hosts} has no key for {where}. Nothing was run. If that is the node's key (on the node: "
        f"{_on_the_node(key_type)}), add it: {_keyscan(address, port, key_type)} >> {known_hosts}",
        key_type=key_type, fingerprint=offered)


def changed_key(node: str, address: str, port: int, known_hosts: Path, offered_key: paramiko.PKey,
                expected_key: paramiko.PKey) -> ChangedHostKey:
    key_type, offered, expected = offered_key.get_name(), fingerprint(offered_key), fingerprint(expected_key)
    where = lookup_name(address, port)
    return ChangedHostKey(
        node,
        f"{node} ({address}:{port}): HOST KEY CHANGED: the node offered {key_type} {offered} but known_hosts "
        f"{known_hosts} has {expected_key.get_name()} {expected} for {where}. Nothing was run. Someone may be "
        f"intercepting the connection, or the node was reinstalled: check the key on the node "
        f"({_on_the_node(key_type)}); only if it is the node's, replace the entry: "
        f"ssh-keygen -R {shlex.quote(where)} -f {known_hosts} && {_keyscan(address, port, key_type)} >> {known_hosts}",
        key_type=key_type, fingerprint=offered, expected_fingerprint=expected)
