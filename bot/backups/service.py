"""Backups as operations use them: a file in the store plus its catalog entry, kept and removed together.

    backups = resources["backups"]                    # a Backups (handlers/resources.py builds it)
    backup_id = backups.new_id()                      # keep it in the step's checkpoint data: a re-run reuses it
    entry = backups.save(snapshot_path, kind="etcd", backup_id=backup_id, requester=ctx.requester,
                         node="node01", etcd_version="3.5.12", revision=12345, keys=987,
                         expected_sha256=sha_from_the_node, job=ctx.job_id)
    entry = backups.fetch("b-0a1b2c3d", local_path)   # restore: the file back, its sha256 checked

Order makes it safe to crash anywhere: `save` writes the file, then the entry, then applies retention;
retention removes the file, then the entry. A crash between the two leaves a file nobody lists (harmless)
or an entry whose file is gone (retention finds it again next time and finishes; a restore of it says the
file is missing). Both are idempotent: the same id writes the same key and the same entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from bot.backups.catalog import KINDS, Catalog, Entry, Page
from bot.backups.store import BackupStore, BackupStoreError, ChecksumMismatch

log = structlog.get_logger("kubemaint.backups")
SUFFIXES = {"etcd": ".db", "resources": ".tar.gz"}


class Backups:
    """The configured store, the catalog, the cluster these backups are of and how many of each kind to keep."""

    def __init__(self, store: BackupStore, catalog: Catalog, cluster: str, keep_last: int,
                 clock: Callable[[], float] = time.time) -> None:
        if keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        self.store = store
        self.catalog = catalog
        self.cluster = cluster
        self.keep_last = keep_last
        self.clock = clock

    def new_id(self) -> str:
        return self.catalog.reserve_id(self.clock())

    def key_for(self, backup_id: str, kind: str) -> str:
        """The file's name in the store: `{cluster}/{kind}/{id}.db` (etcd) or `.tar.gz` (resources)."""
        if kind not in KINDS:
            raise ValueError(f"bad backup kind {kind!r}: one of {', '.join(KINDS)}")
        return f"{self.cluster}/{kind}/{backup_id}{SUFFIXES[kind]}"

    def save(self, local_path: Path, *, kind: str, requester: str, backup_id: str | None = None, node: str = "",
             etcd_version: str = "", revision: int | None = None, keys: int | None = None,
             objects: int | None = None, job: str = "", expected_sha256: str | None = None,
             prune: bool = True) -> Entry:
        """Store `local_path` and catalogue it; then remove what retention no longer keeps (a failure there is
        logged, not raised: the new backup is safe either way).

        `expected_sha256` is the sha256 measured at the source (on the node): if the bytes that reached the store
        hash differently, the stored file is deleted and ChecksumMismatch raised, and nothing is catalogued.
        """
        backup_id = backup_id or self.new_id()
        key = self.key_for(backup_id, kind)
        location = self.store.put(Path(local_path), key)
        if expected_sha256 is not None and location.sha256 != expected_sha256.lower():
            self.store.delete(key)
            raise ChecksumMismatch(location.url, expected_sha256.lower(), location.sha256)
        entry = Entry(id=backup_id, kind=kind, cluster=self.cluster, created_at=self.clock(), requester=requester,
                      key=key, location=location.url, size=location.size, sha256=location.sha256, node=node,
                      etcd_version=etcd_version, revision=revision, keys=keys, objects=objects, job=job)
        self.catalog.add(entry)
        if prune:
            try:
                self.prune(kind)
            except BackupStoreError as error:
                log.warning("backups.retention_failed", kind=kind, cluster=self.cluster, error=str(error))
        return entry

    def fetch(self, backup_id: str, local_path: Path) -> Entry:
        """The catalogued file back into `local_path`, its sha256 checked against the entry.

        Raises UnknownBackup (no such entry), BackupMissing (the file is gone), ChecksumMismatch (it changed;
        `local_path` is left as it was) or BackupStoreError (the entry is in another store than the configured one).
        """
        entry = self.catalog.require(backup_id)
        self._check_here(entry)
        self.store.get(entry.key, Path(local_path), expected_sha256=entry.sha256)
        return entry

    def prune(self, kind: str, cluster: str | None = None) -> list[Entry]:
        """Delete the files and entries of `kind` beyond the newest `keep_last`, oldest first: each file, then its
        entry. Entries whose file is in another store (the config changed since) are left to the operator."""
        removed = []
        for entry in self.catalog.beyond(cluster or self.cluster, kind, self.keep_last):
            if not self._here(entry):
                log.info("backups.retention_skipped", backup=entry.id, location=entry.location, store=self.store.url)
                continue
            self.store.delete(entry.key)  # already gone is fine: a crash may have stopped here last time
            self.catalog.remove(entry)
            log.info("backups.removed", backup=entry.id, location=entry.location, kind=kind)
            removed.append(entry)
        return removed

    def page(self, number: int = 1, size: int = 10) -> Page:
        return self.catalog.page(number, size)

    def _here(self, entry: Entry) -> bool:
        return self.store.location_of(entry.key) == entry.location

    def _check_here(self, entry: Entry) -> None:
        if not self._here(entry):
            raise BackupStoreError(f"backup {entry.id} is at {entry.location}, outside the configured backup store "
                                   f"({self.store.url}): copy it there or point backups.store at it")
