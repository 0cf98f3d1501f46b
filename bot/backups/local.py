"""A backup store in a local directory (the default): a volume of the bot's and the workers' machine.

Writes are atomic and durable: a temporary file beside the target, fsync'd, renamed over it, then the
directory fsync'd, so a crash leaves the old file or the new one, never half of one. A crash before
the rename leaves a `.NAME.*.part` file, which nothing reads.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from bot.backups.store import BackupMissing, BackupStoreError, ChecksumMismatch, Location, check_key, copy_hashing

T = TypeVar("T")


class LocalStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser().absolute()
        self.url = self.directory.as_uri()

    def _path(self, key: str) -> Path:
        return self.directory / check_key(key)

    def location_of(self, key: str) -> str:
        return self._path(key).as_uri()

    def put(self, local_path: Path, key: str) -> Location:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(local_path, "rb") as source:
                size, sha256 = _write_atomically(target, lambda out: copy_hashing(source, out))
        except OSError as error:
            raise BackupStoreError(f"cannot write {target}: {error.strerror or error}") from error
        return Location(target.as_uri(), size, sha256)

    def get(self, key: str, local_path: Path, *, expected_sha256: str) -> Location:
        source_path = self._path(key)
        local_path = Path(local_path)
        try:
            with open(source_path, "rb") as source:
                size, sha256 = _write_atomically(local_path, lambda out: copy_hashing(source, out),
                                                 keep=lambda result: result[1] == expected_sha256)
        except FileNotFoundError as error:
            if error.filename == str(source_path):
                raise BackupMissing(f"{source_path.as_uri()}: no such file in the backup store") from None
            raise BackupStoreError(f"cannot write {local_path}: {error.strerror}") from error
        except OSError as error:
            raise BackupStoreError(f"cannot copy {source_path} to {local_path}: {error.strerror or error}") from error
        if sha256 != expected_sha256:
            raise ChecksumMismatch(source_path.as_uri(), expected_sha256, sha256)
        return Location(source_path.as_uri(), size, sha256)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise BackupStoreError(f"cannot delete {path}: {error.strerror or error}") from error
        _fsync_directory(path.parent)
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def check(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.directory):
                pass
        except OSError as error:
            raise BackupStoreError(f"backup directory {self.directory} is not writable: "
                                   f"{error.strerror or error}") from error


def _write_atomically(target: Path, write: Callable[[BinaryIO], T], keep: Callable[[T], bool] = lambda result: True
                      ) -> T:
    """Run `write(file)` on a temporary file beside `target` and rename it over `target` if `keep(result)`;
    the temporary file is removed otherwise, or if anything fails."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            result = write(out)
            out.flush()
            os.fsync(out.fileno())
        if keep(result):
            os.replace(temporary, target)
            _fsync_directory(target.parent)  # the rename itself must survive a power cut
        return result
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
