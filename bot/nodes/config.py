"""What the SSH layer is told: a plain value, so that this layer needs nothing from the chat edge.

The edge validates the `ssh` section of the settings (bot/chat/config.py, every key named in its
errors) and builds one of these with the same field names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

# Kubernetes node names are DNS subdomains; what is not one is refused before it reaches a log line.
NODE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class JumpHost:
    """A bastion the nodes are reached through (OpenSSH's ProxyJump): one SSH connection to it,
    and a forwarded TCP channel per node inside it."""

    address: str
    port: int = 22
    user: str = "root"


@dataclass(frozen=True)
class SshConfig:
    user: str
    known_hosts: Path
    port: int = 22
    key_file: Path | None = None
    passphrase_env: str | None = None  # the name of the environment variable, never the passphrase
    agent: bool = False
    addresses: Mapping[str, str] = field(default_factory=dict)  # node name -> address, over its InternalIP
    jump_host: JumpHost | None = None
    connect_timeout_seconds: float = 10.0
    command_deadline_seconds: float = 300.0
    keepalive_seconds: float = 15.0  # 0: none

    def __post_init__(self) -> None:
        # Frozen in spirit too: nobody changes where a node is reached after start-up.
        object.__setattr__(self, "addresses", MappingProxyType(dict(self.addresses)))
        if self.key_file is None and not self.agent:
            raise ValueError("SshConfig needs key_file, agent, or both")

    @property
    def is_root(self) -> bool:
        """Commands run as root without sudo; anyone else needs `sudo -n` for privileged ones."""
        return self.user == "root"
