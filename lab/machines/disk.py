"""A machine's own layer on disk: the overlay's upper directory, written while the machine is off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab.machines.layout import Entry

OPAQUE_XATTR = "trusted.overlay.opaque"


def _make_parents(upper: Path, path: str) -> None:
    """Parents the host has get the host's mode and owner (in an overlay the upper directory's
    attributes are the ones the machine sees)."""
    parts = Path(path).parent.parts[1:]
    current_host, current_upper = Path("/"), upper
    for part in parts:
        current_host, current_upper = current_host / part, current_upper / part
        if current_upper.is_dir():
            continue
        current_upper.mkdir()
        try:
            info = current_host.stat()
        except FileNotFoundError:
            continue
        os.chmod(current_upper, info.st_mode & 0o7777)
        os.chown(current_upper, info.st_uid, info.st_gid)


def write(upper: Path, entries: list[Entry]) -> None:
    for entry in entries:
        target = upper / entry.path.lstrip("/")
        _make_parents(upper, entry.path)
        if entry.content is None:
            target.mkdir(exist_ok=True)
            if entry.opaque:
                os.setxattr(target, OPAQUE_XATTR, b"y")
        else:
            if target.is_symlink() or target.exists():
                target.unlink()
            target.write_bytes(entry.content)
        os.chown(target, entry.uid, entry.gid)
        os.chmod(target, entry.mode)


def wipe(directory: Path) -> None:
    """Remove a machine's layer (or overlay work directory) and everything in it."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def fingerprint(upper: Path, ignore: tuple[str, ...] = ()) -> frozenset[tuple[str, int, int]]:
    """What changed on a machine since a fingerprint was taken: (path, size, mtime) of every file,
    but for those under `ignore` (paths relative to the machine's /)."""
    found = set()
    skipped = {os.path.join(upper, path) for path in ignore}
    for folder, dirs, files in os.walk(upper):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skipped]
        for name in files + dirs:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            found.add((path, info.st_size, info.st_mtime_ns))
    return frozenset(found)
