"""Copying files to and from a node over SFTP on the node's SSH connection, with a deadline, the
sha256 of what was copied, and no partial file left behind on our side.

The copy is streamed in chunks and hashed on the way, so a snapshot of several GB never sits in
memory; the caller compares the hash with `sha256sum` run on the node.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from bot.nodes.connection import CONNECTION_ERRORS

CHUNK = 32 * 1024  # paramiko's largest SFTP read request
WINDOW = 8 * 1024 * 1024


@dataclass(frozen=True)
class Copied:
    size: int
    sha256: str
    seconds: float


class TransferTimeout(Exception):
    pass


def fetch(sftp: paramiko.SFTPClient, remote: str, local: Path, deadline: float) -> Copied:
    """`remote` on the node -> `local` (written to a temporary name, renamed when complete)."""
    started = time.monotonic()
    partial = local.with_name(local.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with sftp.open(remote, "rb") as source, partial.open("wb") as target:
            total = source.stat().st_size or 0
            # Pipelined reads a window at a time: many requests in flight (fast over a long link), and
            # none left outstanding when the deadline stops the copy between two windows.
            for window in range(0, total, WINDOW):
                _check(started, deadline)
                ranges = [(offset, min(CHUNK, total - offset))
                          for offset in range(window, min(window + WINDOW, total), CHUNK)]
                for chunk in source.readv(ranges):
                    digest.update(chunk)
                    target.write(chunk)
                    size += len(chunk)
            target.flush()
            os.fsync(target.fileno())
        partial.replace(local)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Copied(size, digest.hexdigest(), time.monotonic() - started)


def send(sftp: paramiko.SFTPClient, local: Path, remote: str, deadline: float, mode: int = 0o600) -> Copied:
    """`local` -> `remote` on the node (a temporary name there too, renamed when complete)."""
    started = time.monotonic()
    partial = f"{remote}.partial"
    digest, size = hashlib.sha256(), 0
    try:
        with local.open("rb") as source, sftp.open(partial, "wb") as target:
            target.chmod(mode)
            target.set_pipelined(True)
            while chunk := source.read(CHUNK):
                _check(started, deadline)
                digest.update(chunk)
                target.write(chunk)
                size += len(chunk)
        sftp.posix_rename(partial, remote)
    except BaseException:
        try:
            sftp.remove(partial)
        except (OSError, *CONNECTION_ERRORS):
            pass  # the connection is gone: the node keeps a .partial file, named as such
        raise
    return Copied(size, digest.hexdigest(), time.monotonic() - started)


def _check(started: float, deadline: float) -> None:
    if time.monotonic() - started > deadline:
        raise TransferTimeout(f"not done within its deadline of {deadline:g}s")
