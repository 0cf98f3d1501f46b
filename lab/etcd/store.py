"""The API's objects kept in etcd and served from memory, as kube-apiserver's watch cache does.

Every write is a compare-and-swap txn on the key's mod_revision (absent: 0), so a write based on
an object someone else changed meanwhile fails with 409 Conflict; the object's resourceVersion
is the revision etcd gave the write. A write is in the cache as soon as etcd accepted it (the
lab's controllers read their own writes at once); everything else that happens in etcd (an
`etcdctl put`, a delete) reaches the cache through the watch (lab/etcd/link.py), and an event
the cache already has (its own write, seen again) is recognised by its revision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import orjson

from lab import errors
from lab.etcd import keys
from lab.etcd.client import EtcdClient, EtcdError, EtcdUnavailable, Event, KeyValue
from lab.resources import BY_NAME
from lab.store import Gone, Store, WatchEvent, key_of

log = logging.getLogger("lab.etcd")


def encode(obj: dict) -> bytes:
    """The stored form: the object without its resourceVersion, which is the key's revision
    (kube-apiserver clears it before it writes, and sets it from etcd when it reads)."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return orjson.dumps({**obj, "metadata": meta})


class EtcdStore(Store):
    def __init__(self, client: EtcdClient | None) -> None:
        super().__init__()
        self.client = client
        self.connected = client is not None  # the link says when the watch breaks
        self._revisions: dict[str, int] = {}  # etcd key -> the newest revision applied, deletions too
        self.loaded_at = 0

    @classmethod
    def offline(cls) -> EtcdStore:
        """What the API has before it first reached its etcd: nothing, and no writes."""
        return cls(None)

    @classmethod
    def load(cls, client: EtcdClient) -> EtcdStore:
        """A cache of everything under /registry/, at the revision etcd read it."""
        revision, kvs = client.range_prefix(keys.PREFIX)
        store = cls(client)
        for kv in kvs:
            store._apply(kv, deleted=False)
        store.rv = max(store.rv, revision)
        store.loaded_at = revision
        return store

    def events_since(self, resource: str, rv: int) -> list[WatchEvent]:
        """As a kube-apiserver that has just started: its watch cache begins at the revision it
        loaded, so a watch from before then (or from before a restore rewound etcd) is 410 Gone
        and the client lists again."""
        if rv < self.loaded_at or rv > self.rv:
            raise Gone(f"too old resource version: {rv} ({self.loaded_at})")
        return super().events_since(resource, rv)

    # -- writes ---------------------------------------------------------------------------------

    def put(self, resource: str, obj: dict) -> dict:
        namespace, name = key_of(obj)
        key = keys.key_for(resource, namespace, name)
        current = self.get(resource, namespace, name)
        expected = int(current["metadata"]["resourceVersion"]) if current else 0
        value = encode(obj)
        revision = self._write(lambda client: client.put_if(key, value, expected))
        if revision is None:
            group = BY_NAME[resource].group
            raise (errors.conflict if current else errors.already_exists)(resource, name, group)
        self._revisions[key] = revision
        return self.apply_put(resource, obj, revision)

    def remove(self, resource: str, namespace: str, name: str) -> dict | None:
        current = self.get(resource, namespace, name)
        if current is None:
            return None
        key = keys.key_for(resource, namespace, name)
        expected = int(current["metadata"]["resourceVersion"])
        revision = self._write(lambda client: client.delete_if(key, expected))
        if revision is None:
            raise errors.conflict(resource, name, BY_NAME[resource].group)
        self._revisions[key] = revision
        return self.apply_remove(resource, namespace, name, revision)

    def _write(self, call: Callable[[EtcdClient], int | None]) -> int | None:
        if self.client is None or not self.connected:
            raise errors.storage_unavailable("etcd is not reachable")
        try:
            return call(self.client)
        except EtcdUnavailable as exc:
            self.connected = False  # fail fast until the link has reconnected and reloaded
            raise errors.storage_unavailable(str(exc)) from exc
        except EtcdError as exc:
            raise errors.storage_unavailable(str(exc)) from exc

    # -- what the watch brings ------------------------------------------------------------------

    def apply_events(self, events: Iterable[Event]) -> None:
        for event in events:
            try:
                self._apply(event.kv, event.deleted)
            except Exception:  # an object the lab cannot handle must not stop the watch
                log.exception("etcd key %s at revision %d: the API could not apply it", event.kv.key,
                              event.kv.mod_revision)

    def _apply(self, kv: KeyValue, deleted: bool) -> None:
        where = keys.parse(kv.key)
        if where is None or kv.mod_revision <= self._revisions.get(kv.key, 0):
            return  # not an object the lab serves, or already in the cache
        self._revisions[kv.key] = kv.mod_revision
        resource, namespace, name = where
        if deleted:
            self.apply_remove(resource, namespace, name, kv.mod_revision)
            return
        try:
            obj = orjson.loads(kv.value)
            meta = obj["metadata"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.warning("etcd key %s does not hold a JSON object; the API ignores it", kv.key)
            return
        if (meta.get("namespace", ""), meta.get("name")) != (namespace, name):
            log.warning("etcd key %s holds %s/%s; the API ignores it", kv.key, meta.get("namespace"), meta.get("name"))
            return
        self.apply_put(resource, obj, kv.mod_revision)


def write_all(client: EtcdClient, store: Store) -> int:
    """Replace everything under /registry/ with the objects of `store` (a lab reset); the revision
    after the last write."""
    items = [(keys.key_for(resource, *key), encode(obj))
             for resource, table in store.tables.items() for key, obj in table.objects.items()]
    return client.replace_prefix(keys.PREFIX, items)
