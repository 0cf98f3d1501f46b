"""The backup catalog, in kubemaint's Redis: one entry per stored backup file.

Layout (all keys start with `kubemaint:`):

    kubemaint:backup:{id}                      string: the entry (JSON)
    kubemaint:backup-id:{id}                   string with a TTL: the id is taken (reserved before its file is written)
    kubemaint:backups                          sorted set: every id by creation time (for `backups`, newest first)
    kubemaint:backups:{cluster}:{kind}         sorted set: the same, per cluster and kind (for retention)

An entry and its index memberships are written and removed in one MULTI, so a listing never shows
half an entry. The file is written before its entry and removed before it (see service.py), so an
entry never points at a file that was not there when it was made.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from redis import Redis

from bot.domain.ids import is_backup_id, new_backup_id

KINDS = ("etcd", "resources")
INDEX = "kubemaint:backups"
ID_RESERVATION_TTL = 7 * 24 * 3600  # ids start with the minute they were made: after a week none can recur
ID_DRAWS = 2000  # a minute holds 256 ids; this many random draws miss a free one only when (nearly) none is left


class UnknownBackup(LookupError):
    """No entry with that id; the message is ready for chat."""

    def __init__(self, backup_id: str) -> None:
        self.backup_id = backup_id
        super().__init__(f"No backup {backup_id}: it does not exist, or retention removed it (see `backups`).")


@dataclass(frozen=True)
class Entry:
    """One backup: what it is, where its file is and how to check that file.

    `key` is the file's name in the store, `location` its URL at the time it was written. `node`,
    `etcd_version`, `revision` and `keys` describe an etcd snapshot (`etcdctl snapshot status`); a
    resources backup leaves what does not apply empty (`keys` may count its objects).
    """

    id: str
    kind: str
    cluster: str
    created_at: float
    requester: str
    key: str
    location: str
    size: int
    sha256: str
    node: str = ""
    etcd_version: str = ""
    revision: int | None = None
    keys: int | None = None
    objects: int | None = None  # the API's objects (keys under /registry) live at `revision`: a restore must match it
    job: str = ""  # the job that made it

    def __post_init__(self) -> None:
        if not is_backup_id(self.id):
            raise ValueError(f"bad backup id {self.id!r}: backup ids look like b-1a2b3c4d")
        if self.kind not in KINDS:
            raise ValueError(f"bad backup kind {self.kind!r}: one of {', '.join(KINDS)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Entry:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # a newer writer's extra fields are skipped


@dataclass(frozen=True)
class Page:
    """One page of the catalog, newest first; `number` counts from 1."""

    entries: tuple[Entry, ...]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))


def _entry_key(backup_id: str) -> str:
    return f"kubemaint:backup:{backup_id}"


def _reservation_key(backup_id: str) -> str:
    return f"kubemaint:backup-id:{backup_id}"


def _index_of(cluster: str, kind: str) -> str:
    return f"kubemaint:backups:{cluster}:{kind}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Catalog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def reserve_id(self, now: float) -> str:
        """A fresh backup id, taken atomically: two backups in the same minute never share one."""
        for _ in range(ID_DRAWS):
            backup_id = new_backup_id(now)
            if self.redis.set(_reservation_key(backup_id), "1", nx=True, ex=ID_RESERVATION_TTL) and \
                    not self.redis.exists(_entry_key(backup_id)):
                return backup_id
        raise RuntimeError(f"no free backup id left for this minute after {ID_DRAWS} draws (256 per minute): "
                           "try again in a minute")

    def add(self, entry: Entry) -> None:
        """Record `entry` (again: the same id replaces itself, so a re-run step can add twice)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_entry_key(entry.id), entry.to_json())
            pipe.zadd(INDEX, {entry.id: entry.created_at})
            pipe.zadd(_index_of(entry.cluster, entry.kind), {entry.id: entry.created_at})
            pipe.execute()

    def get(self, backup_id: str) -> Entry | None:
        if not is_backup_id(backup_id):
            return None
        raw = self.redis.get(_entry_key(backup_id))
        return Entry.from_json(raw) if raw else None

    def require(self, backup_id: str) -> Entry:
        """The entry, or UnknownBackup saying so in words for chat."""
        entry = self.get(backup_id)
        if entry is None:
            raise UnknownBackup(backup_id)
        return entry

    def remove(self, entry: Entry) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(_entry_key(entry.id))
            pipe.zrem(INDEX, entry.id)
            pipe.zrem(_index_of(entry.cluster, entry.kind), entry.id)
            pipe.execute()

    def page(self, number: int = 1, size: int = 10) -> Page:
        """Page `number` (from 1) of every entry, newest first."""
        if number < 1 or size < 1:
            raise ValueError("pages count from 1 and hold at least one entry")
        start = (number - 1) * size
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrevrange(INDEX, start, start + size - 1)
            pipe.zcard(INDEX)
            ids, total = pipe.execute()
        return Page(tuple(self._entries([_text(i) for i in ids])), number, size, int(total))

    def newest(self, cluster: str, kind: str, count: int | None = None) -> list[Entry]:
        """The entries of one cluster and kind, newest first (all of them without `count`)."""
        ids = self.redis.zrevrange(_index_of(cluster, kind), 0, -1 if count is None else count - 1)
        return self._entries([_text(i) for i in ids])

    def beyond(self, cluster: str, kind: str, keep_last: int) -> list[Entry]:
        """The entries of one cluster and kind older than the newest `keep_last`, oldest first."""
        ids = self.redis.zrevrange(_index_of(cluster, kind), keep_last, -1)
        return list(reversed(self._entries([_text(i) for i in ids])))

    def newest_times(self) -> dict[tuple[str, str], float]:
        """When the newest backup of each (cluster, kind) was made (what the backup-age metric reports). An
        entry is only added once its file is stored, so each is a successful backup."""
        keys = [_text(key) for key in self.redis.scan_iter(match=_index_of("*", "*"), count=200)]
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrevrange(key, 0, 0, withscores=True)
            newest = pipe.execute()
        times = {}
        for key, top in zip(keys, newest, strict=True):
            cluster, _, kind = key.removeprefix(INDEX + ":").rpartition(":")
            if top and kind in KINDS:
                times[(cluster, kind)] = float(top[0][1])
        return times

    def _entries(self, ids: list[str]) -> list[Entry]:
        if not ids:
            return []
        raws = self.redis.mget([_entry_key(i) for i in ids])
        return [Entry.from_json(raw) for raw in raws if raw]
