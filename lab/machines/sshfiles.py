"""What an SSH client needs to reach a lab's machines, written next to the lab's kubeconfig:
the login key, known_hosts (each machine's host key, by address) and an ssh_config
(`ssh -F ssh_config node01`)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from lab.machines.addresses import SSH_PORT
from lab.machines.keys import KeyPair
from lab.machines.layout import USER


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    port: int
    host_key: KeyPair


@dataclass(frozen=True)
class SshFiles:
    key: Path
    known_hosts: Path
    config: Path

    @classmethod
    def beside(cls, kubeconfig: Path) -> SshFiles:
        directory = kubeconfig.parent
        return cls(directory / "id_ed25519", directory / "known_hosts", directory / "ssh_config")

    def all(self) -> list[Path]:
        return [self.key, self.key.with_suffix(".pub"), self.known_hosts, self.config]


def known_host_name(address: str, port: int) -> str:
    """How OpenSSH and paramiko name a host in known_hosts: `[addr]:port` off port 22."""
    return address if port == SSH_PORT else f"[{address}]:{port}"


def known_hosts(targets: list[Target]) -> str:
    return "".join(f"{known_host_name(t.address, t.port)} {t.host_key.key_text()}\n" for t in targets)


def ssh_config(targets: list[Target], files: SshFiles, scenario: str) -> str:
    lines = [f"# The machines of lab scenario {scenario}: ssh -F {files.config} NODE COMMAND", ""]
    for target in targets:
        if target.port != SSH_PORT:
            lines.append(f"# Port {SSH_PORT} on {target.address} is taken (a system sshd listening on 0.0.0.0:22?): "
                         f"this machine's sshd listens on {target.port}.")
        lines += [f"Host {target.name}", f"  HostName {target.address}", f"  Port {target.port}", f"  User {USER}",
                  f"  IdentityFile {files.key}", "  IdentitiesOnly yes", f"  UserKnownHostsFile {files.known_hosts}",
                  "  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking yes", "  BatchMode yes", ""]
    return "\n".join(lines)


def _write(path: Path, text: str | bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(handle, "wb") as out:
        out.write(text.encode() if isinstance(text, str) else text)
    os.replace(temp, path)


def write(files: SshFiles, login_key: KeyPair, targets: list[Target], scenario: str) -> None:
    files.config.parent.mkdir(parents=True, exist_ok=True)
    _write(files.key, login_key.private, 0o600)
    _write(files.key.with_suffix(".pub"), login_key.public + "\n", 0o644)
    _write(files.known_hosts, known_hosts(targets), 0o644)
    _write(files.config, ssh_config(targets, files, scenario), 0o644)


def remove(files: SshFiles) -> None:
    for path in files.all():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
