"""Where backup files live: the `BackupStore` protocol, what a stored file is (`Location`), and the
failures every store reports the same way.

A key is a relative path of safe segments (`prod/etcd/b-0a1b2c3d.db`): the catalog makes them, and
the check here keeps a bad one from ever naming a file outside the store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

CHUNK = 1024 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Location:
    """A stored file: where it is (`url`, e.g. file:///var/lib/kubemaint/backups/prod/etcd/b-0a1b2c3d.db or
    s3://bucket/prefix/prod/etcd/b-0a1b2c3d.db), its size in bytes and its sha256 (hex)."""

    url: str
    size: int
    sha256: str


class BackupStoreError(Exception):
    """The store could not do what was asked; the message says what and where, for the job's detail."""


class BackupMissing(BackupStoreError):
    """No file under that key (deleted by hand, by retention, or never written)."""


class ChecksumMismatch(BackupStoreError):
    """What came back is not what was stored: the file was changed or damaged. Nothing was written."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        self.url, self.expected, self.actual = url, expected, actual
        super().__init__(f"{url}: sha256 is {actual}, not {expected} as recorded: the stored file was changed or "
                         "damaged, so it was not used")


@runtime_checkable
class BackupStore(Protocol):
    """A place for backup files. Every method takes a key made by the catalog (see `check_key`)."""

    url: str  # the store itself: file:///dir or s3://bucket/prefix

    def put(self, local_path: Path, key: str) -> Location:
        """Copy `local_path` in under `key`, replacing what was there, all or nothing; the sha256 is
        computed from the bytes as they are sent."""

    def get(self, key: str, local_path: Path, *, expected_sha256: str) -> Location:
        """Copy the file under `key` to `local_path` (all or nothing), checking its sha256 on the way:
        ChecksumMismatch leaves `local_path` untouched; BackupMissing if there is no such file."""

    def delete(self, key: str) -> bool:
        """Remove the file under `key`; False if it was already gone (not an error: retention re-runs)."""

    def exists(self, key: str) -> bool: ...

    def location_of(self, key: str) -> str:
        """The URL the file under `key` has (or would have) in this store."""

    def check(self) -> None:
        """Raise BackupStoreError if the store cannot be written to (a start-up or config check)."""


def check_key(key: str) -> str:
    """`key` if every `/`-separated segment is a plain name; ValueError otherwise (never "..", "/x", "a//b")."""
    segments = key.split("/")
    if not key or not all(_SEGMENT.fullmatch(segment) for segment in segments) or ".." in segments:
        raise ValueError(f"bad backup key {key!r}: use names of letters, digits, '.', '_' and '-' separated by '/'")
    return key


class HashingReader:
    """A read-only file wrapper that hashes what passes through it. It has no `seek`, on purpose: upload
    code then reads it once, in order, so the hash is of exactly the bytes that were sent."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, amount: int = -1) -> bytes:
        data = self._file.read(amount)
        self._digest.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class HashingWriter:
    """A write-only file wrapper that hashes what passes through it (no `seek`: downloads arrive in order)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self._file.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def copy_hashing(source: BinaryIO, target: BinaryIO) -> tuple[int, str]:
    """Copy in chunks; the size and sha256 of what was copied."""
    writer = HashingWriter(target)
    while chunk := source.read(CHUNK):
        writer.write(chunk)
    return writer.size, writer.sha256
