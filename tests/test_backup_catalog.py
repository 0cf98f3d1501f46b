"""The backup catalog and retention, on a real Redis and a real store: what `backups` lists, what a restore
reads back, and that retention removes files and entries together, even when a crash cut it short."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from redis import Redis

from bot.backups import Backups, BackupStoreError, Catalog, ChecksumMismatch, LocalStore, UnknownBackup
from bot.domain.ids import BACKUP_ID_PATTERN
from tests.fake_clock import Clock

pytest_plugins = ["tests.redis_fixtures"]
T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def backups_in(r: Redis, directory: Path, clock: Clock, *, cluster: str = "prod", keep_last: int = 14) -> Backups:
    return Backups(LocalStore(directory), Catalog(r), cluster, keep_last, clock=clock)


def snapshot(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "snapshot.db"
    path.write_bytes(content)
    return path


def save_etcd(backups: Backups, tmp_path: Path, clock: Clock, content: bytes, **facts) -> str:
    clock.now += 3600
    entry = backups.save(snapshot(tmp_path, content), kind="etcd", requester="U0ALICE", node="cp01",
                         etcd_version="3.5.12", revision=1000 + int(clock.now - T0), keys=42, **facts)
    return entry.id


def test_a_saved_backup_is_catalogued_with_what_a_restore_needs(r: Redis, tmp_path: Path, clock: Clock):
    backups = backups_in(r, tmp_path / "store", clock)
    entry = backups.save(snapshot(tmp_path, b"etcd data"), kind="etcd", requester="U0ALICE", node="cp01",
                         etcd_version="3.5.12", revision=1234, keys=987, job="j-0a1b2c3d")
    assert BACKUP_ID_PATTERN.fullmatch(entry.id)
    assert (entry.kind, entry.cluster, entry.node, entry.etcd_version, entry.revision, entry.keys) == \
           ("etcd", "prod", "cp01", "3.5.12", 1234, 987)
    assert (entry.size, entry.sha256) == (9, hashlib.sha256(b"etcd data").hexdigest())
    assert (entry.requester, entry.created_at, entry.job) == ("U0ALICE", T0, "j-0a1b2c3d")
    assert entry.location == (tmp_path / "store" / "prod" / "etcd" / f"{entry.id}.db").as_uri()
    assert Catalog(r).get(entry.id) == entry  # another process reads the same entry

    restored = backups.fetch(entry.id, tmp_path / "restored.db")
    assert restored == entry and (tmp_path / "restored.db").read_bytes() == b"etcd data"


def test_an_unknown_id_gets_a_sentence_for_chat(r: Redis, tmp_path: Path, clock: Clock):
    with pytest.raises(UnknownBackup) as unknown:
        backups_in(r, tmp_path / "store", clock).fetch("b-00000000", tmp_path / "out.db")
    assert str(unknown.value) == "No backup b-00000000: it does not exist, or retention removed it (see `backups`)."


def test_a_file_changed_in_the_store_is_not_restored(r: Redis, tmp_path: Path, clock: Clock):
    backups = backups_in(r, tmp_path / "store", clock)
    entry = backups.save(snapshot(tmp_path, b"etcd data"), kind="etcd", requester="U0ALICE")
    (tmp_path / "store" / entry.key).write_bytes(b"etcd dat4")  # bit rot, or someone's edit
    with pytest.raises(ChecksumMismatch):
        backups.fetch(entry.id, tmp_path / "restored.db")
    assert not (tmp_path / "restored.db").exists()


def test_bytes_that_differ_from_the_source_are_not_catalogued(r: Redis, tmp_path: Path, clock: Clock):
    backups = backups_in(r, tmp_path / "store", clock)
    node_sha = hashlib.sha256(b"what the node has").hexdigest()
    with pytest.raises(ChecksumMismatch):
        backups.save(snapshot(tmp_path, b"what arrived"), kind="etcd", requester="U0ALICE", expected_sha256=node_sha)
    assert backups.page().total == 0
    assert list((tmp_path / "store").rglob("*.db")) == []


def test_the_catalog_lists_newest_first_in_pages(r: Redis, tmp_path: Path, clock: Clock):
    backups = backups_in(r, tmp_path / "store", clock, keep_last=50)
    ids = [save_etcd(backups, tmp_path, clock, f"snapshot {n}".encode()) for n in range(23)]
    first, third = backups.page(1, size=10), backups.page(3, size=10)
    assert [e.id for e in first.entries] == ids[::-1][:10]
    assert [e.id for e in third.entries] == ids[::-1][20:]
    assert (first.total, first.pages, third.number) == (23, 3, 3)
    assert backups.page(4, size=10).entries == ()
    assert ids == sorted(ids)  # made an hour apart: ids sort as the backups were made


def test_a_rerun_step_saving_under_the_same_id_leaves_one_entry(r: Redis, tmp_path: Path, clock: Clock):
    backups = backups_in(r, tmp_path / "store", clock)
    backup_id = backups.new_id()
    for _ in range(2):
        backups.save(snapshot(tmp_path, b"etcd data"), kind="etcd", requester="U0ALICE", backup_id=backup_id)
    assert [e.id for e in backups.page().entries] == [backup_id]


def test_ids_made_in_the_same_minute_never_collide(r: Redis, clock: Clock):
    catalog = Catalog(r)
    ids = [catalog.reserve_id(T0) for _ in range(200)]  # close to the 256 a minute can hold
    assert len(set(ids)) == 200 and len({i[:8] for i in ids}) == 1


def test_retention_keeps_the_newest_of_each_kind_and_cluster_and_deletes_the_files(r: Redis, tmp_path: Path,
                                                                                  clock: Clock):
    prod = backups_in(r, tmp_path / "store", clock, keep_last=3)
    staging = backups_in(r, tmp_path / "store", clock, cluster="staging", keep_last=3)
    other = [save_etcd(staging, tmp_path, clock, b"staging")]
    clock.now += 60
    other.append(staging.save(snapshot(tmp_path, b"objects"), kind="resources", requester="U0ALICE").id)
    ids = [save_etcd(prod, tmp_path, clock, f"snapshot {n}".encode()) for n in range(5)]

    listed = [e.id for e in prod.page(1, size=50).entries]
    assert listed == [*ids[2:][::-1], *other[::-1]]
    assert sorted(p.name for p in (tmp_path / "store" / "prod" / "etcd").iterdir()) == [f"{i}.db" for i in ids[2:]]
    assert (tmp_path / "store" / "staging" / "etcd" / f"{other[0]}.db").exists()


def test_retention_finishes_what_a_crash_interrupted(r: Redis, tmp_path: Path, clock: Clock):
    backups = backups_in(r, tmp_path / "store", clock, keep_last=5)
    ids = [save_etcd(backups, tmp_path, clock, f"snapshot {n}".encode()) for n in range(5)]
    # A crash between deleting the oldest file and removing its entry leaves an entry whose file is gone.
    (tmp_path / "store" / "prod" / "etcd" / f"{ids[0]}.db").unlink()
    shorter = backups_in(r, tmp_path / "store", clock, keep_last=4)
    assert [e.id for e in shorter.prune("etcd")] == [ids[0]]
    assert shorter.prune("etcd") == []  # nothing left to do: running it again changes nothing
    assert [e.id for e in shorter.page().entries] == ids[1:][::-1]


def test_backups_from_another_store_are_left_alone_and_not_restored_from_here(r: Redis, tmp_path: Path,
                                                                               clock: Clock):
    old = backups_in(r, tmp_path / "old-store", clock)
    moved = save_etcd(old, tmp_path, clock, b"from before the move")
    new = backups_in(r, tmp_path / "new-store", clock, keep_last=1)
    kept = [save_etcd(new, tmp_path, clock, f"snapshot {n}".encode()) for n in range(2)][-1]
    assert {e.id for e in new.page().entries} == {moved, kept}
    assert (tmp_path / "old-store" / "prod" / "etcd" / f"{moved}.db").exists()
    with pytest.raises(BackupStoreError, match="outside the configured backup store"):
        new.fetch(moved, tmp_path / "restored.db")


def test_a_minute_with_every_id_taken_says_so_instead_of_spinning(r: Redis):
    catalog = Catalog(r)
    ids = {catalog.reserve_id(T0) for _ in range(256)}
    assert len(ids) == 256
    with pytest.raises(RuntimeError, match="no free backup id left for this minute"):
        catalog.reserve_id(T0)
    assert catalog.reserve_id(T0 + 60) not in ids  # the next minute has its own
