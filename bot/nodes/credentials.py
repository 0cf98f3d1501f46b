"""The bot's login: a private key file (its passphrase from an environment variable), the SSH agent's
keys, or both. Loaded once per process, on first use, with errors that say which setting to fix and
never what the passphrase is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import paramiko

from bot.nodes.config import SshConfig
from bot.nodes.errors import SshSetupError
from bot.nodes.redact import Redactor

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Credentials:
    key: paramiko.PKey | None
    key_file: Path | None
    agent: bool

    def describe(self) -> str:
        """What the login offers, for messages: the key's file and fingerprint, and/or the agent."""
        parts = []
        if self.key is not None:
            parts.append(f"key {self.key_file} ({self.key.get_name()} {self.key.fingerprint})")
        if self.agent:
            parts.append("the SSH agent's keys")
        return " and ".join(parts)


def load_credentials(config: SshConfig, environ: Mapping[str, str], redact: Redactor) -> Credentials:
    """The key (decrypted) and whether to ask the agent. The passphrase is added to `redact` first, so it
    is hidden even if a node ever prints it."""
    if config.key_file is None:
        return Credentials(None, None, config.agent)
    passphrase = None
    if config.passphrase_env:
        passphrase = environ.get(config.passphrase_env)
        if passphrase is None:
            raise SshSetupError("key_file", f"ssh.passphrase_env: the environment variable {config.passphrase_env} "
                                            f"is not set (it holds the passphrase of ssh.key_file {config.key_file})")
        redact.add(passphrase)
    return Credentials(_load_key(config.key_file, passphrase, config.passphrase_env), config.key_file, config.agent)


def _load_key(path: Path, passphrase: str | None, passphrase_env: str | None) -> paramiko.PKey:
    where = f"ssh.key_file {path}"
    try:
        path.read_bytes()
    except FileNotFoundError:
        raise SshSetupError("key_file", f"{where}: file not found") from None
    except OSError as error:
        raise SshSetupError("key_file", f"{where}: cannot read it: {error.strerror}") from None
    # paramiko and cryptography say "password required" and "bad password" with different exception
    # types from one version to the next, so ask the questions one at a time. Their messages are not
    # passed on: the key file's content is nobody's business.
    if passphrase is not None:
        try:
            return paramiko.PKey.from_path(path, passphrase.encode())
        except Exception:  # any failure to load means the same to the operator
            pass
    try:
        return paramiko.PKey.from_path(path)
    except Exception as error:
        encrypted = isinstance(error, TypeError | paramiko.PasswordRequiredException)
    if encrypted and passphrase is None:
        raise SshSetupError("key_file", f"{where}: the key is encrypted: name the environment variable that holds "
                                        "its passphrase in ssh.passphrase_env") from None
    if encrypted:
        raise SshSetupError("key_file", f"{where}: the passphrase in ${passphrase_env} does not open it") from None
    raise SshSetupError("key_file", f"{where}: not a private key paramiko can read (OpenSSH or PEM format: "
                                    "ed25519, ECDSA or RSA)") from None
