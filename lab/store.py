"""In-memory object store with resourceVersions, pagination and watch fan-out.

Objects are treated as immutable once stored: a change stores a new dict. That lets a
watch event, a cached JSON encoding and a list page share the same object safely.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

Key = tuple[str, str]  # (namespace or "", name)
# How many events a resource keeps for watches that resume from an older resourceVersion.
HISTORY = 20000


def key_of(obj: dict) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


@dataclass
class WatchEvent:
    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict
    old: dict | None


@dataclass
class Watcher:
    queue: asyncio.Queue
    accepts: Callable[[dict], bool]


@dataclass
class Table:
    """All objects of one resource."""

    objects: dict[Key, dict] = field(default_factory=dict)
    sorted_keys: list[Key] = field(default_factory=list)
    encoded: dict[Key, bytes] = field(default_factory=dict)
    history: deque[WatchEvent] = field(default_factory=lambda: deque(maxlen=HISTORY))
    watchers: list[Watcher] = field(default_factory=list)

    def encode(self, key: Key) -> bytes:
        data = self.encoded.get(key)
        if data is None:
            data = self.encoded[key] = orjson.dumps(self.objects[key])
        return data


class Gone(Exception):
    """The requested resourceVersion is older than the history kept (HTTP 410)."""


class Store:
    def __init__(self) -> None:
        self.rv = 1
        self.tables: dict[str, Table] = {}
        # Secondary indexes the controllers and field selectors lean on.
        self.pods_by_node: dict[str, set[Key]] = {}
        self.pods_by_owner: dict[str, set[Key]] = {}
        self.listeners: list[Callable[[str, WatchEvent], None]] = []

    def table(self, resource: str) -> Table:
        table = self.tables.get(resource)
        if table is None:
            table = self.tables[resource] = Table()
        return table

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        return self.table(resource).objects.get((namespace, name))

    def items(self, resource: str, namespace: str | None = None) -> Iterator[dict]:
        objects = self.table(resource).objects
        if namespace is None:
            yield from list(objects.values())
        else:
            yield from [o for k, o in objects.items() if k[0] == namespace]

    # -- writes ---------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, resource: str, obj: dict) -> dict:
        """Create or replace `obj`, stamping a new resourceVersion."""
        return self.apply_put(resource, obj, self._next_rv())

    def remove(self, resource: str, namespace: str, name: str) -> dict | None:
        if self.get(resource, namespace, name) is None:
            return None
        return self.apply_remove(resource, namespace, name, self._next_rv())

    def apply_put(self, resource: str, obj: dict, rv: int) -> dict:
        """Store `obj` as written at revision `rv` (the next one, or the one etcd gave the write)."""
        table = self.table(resource)
        key = key_of(obj)
        old = table.objects.get(key)
        self.rv = max(self.rv, rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        table.objects[key] = obj
        table.encoded.pop(key, None)
        if old is None:
            bisect.insort(table.sorted_keys, key)
        self._index(resource, key, old, obj)
        self._emit(resource, table, WatchEvent(rv, "MODIFIED" if old else "ADDED", obj, old))
        return obj

    def apply_remove(self, resource: str, namespace: str, name: str, rv: int) -> dict | None:
        """Remove an object as deleted at revision `rv`; the object as it was, at `rv`."""
        table = self.table(resource)
        key = (namespace, name)
        old = table.objects.pop(key, None)
        if old is None:
            return None
        table.encoded.pop(key, None)
        index = bisect.bisect_left(table.sorted_keys, key)
        del table.sorted_keys[index]
        self.rv = max(self.rv, rv)
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(rv)}}
        self._index(resource, key, old, None)
        self._emit(resource, table, WatchEvent(rv, "DELETED", gone, old))
        return gone

    def _index(self, resource: str, key: Key, old: dict | None, new: dict | None) -> None:
        if resource != "pods":
            return
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            node = obj["spec"].get("nodeName") or ""
            owners = [ref["uid"] for ref in obj["metadata"].get("ownerReferences", [])]
            for index, value in [(self.pods_by_node, node), *((self.pods_by_owner, o) for o in owners)]:
                bucket = index.setdefault(value, set())
                if add:
                    bucket.add(key)
                else:
                    bucket.discard(key)

    def _emit(self, resource: str, table: Table, event: WatchEvent) -> None:
        table.history.append(event)
        for watcher in list(table.watchers):
            watcher.queue.put_nowait(event)
        for listener in self.listeners:
            listener(resource, event)

    # -- reads ----------------------------------------------------------------------------

    def page(
        self,
        resource: str,
        namespace: str | None,
        accepts: Callable[[dict], bool],
        limit: int,
        continue_token: str | None,
        candidates: set[Key] | None = None,
    ) -> tuple[list[Key], str | None, int | None]:
        """One page of matching objects in key order, like the apiserver's paginated list.

        Returns the keys of the items, the continue token for the next page and the remaining
        item count (None when unknown because a filter is applied).
        """
        table = self.table(resource)
        start: Key | None = None
        if continue_token:
            start = decode_continue(continue_token)
        keys = sorted(candidates) if candidates is not None else table.sorted_keys
        # Keys sort by (namespace, name): one namespace is a contiguous range of them.
        low, high = 0, len(keys)
        if namespace is not None:
            low = bisect.bisect_left(keys, (namespace, ""))
            high = bisect.bisect_left(keys, (namespace + "\x00",), low)
        index = bisect.bisect_right(keys, start, low, high) if start else low
        if candidates is None and accepts is ALL:
            # Every key in the range matches: the page is a slice, not a per-item loop.
            end = min(high, index + limit) if limit else high
            out = keys[index:end]
            if end >= high or not out:
                return out, None, None
            remaining = high - end  # etcd counts the rest of the key range, one namespace too
            return out, encode_continue(out[-1], self.rv), remaining
        out: list[Key] = []
        last: Key | None = None
        has_more = False
        while index < high:
            key = keys[index]
            obj = table.objects.get(key)
            if obj is None or not accepts(obj):
                index += 1
                continue
            if limit and len(out) == limit:
                has_more = True
                break
            out.append(key)
            last = key
            index += 1
        if not has_more or last is None:
            return out, None, None
        return out, encode_continue(last, self.rv), None

    def end_watches(self) -> None:
        """End every open watch stream (its client watches again, from the store that replaces this one)."""
        for table in self.tables.values():
            for watcher in table.watchers:
                watcher.queue.put_nowait(None)

    def watch(self, resource: str, accepts: Callable[[dict], bool]) -> Watcher:
        watcher = Watcher(asyncio.Queue(), accepts)
        self.table(resource).watchers.append(watcher)
        return watcher

    def unwatch(self, resource: str, watcher: Watcher) -> None:
        table = self.table(resource)
        if watcher in table.watchers:
            table.watchers.remove(watcher)

    def events_since(self, resource: str, rv: int) -> list[WatchEvent]:
        """Events after `rv`, or Gone when the history no longer reaches back that far."""
        history = self.table(resource).history
        if len(history) == history.maxlen and rv < history[0].rv - 1:
            raise Gone(f"too old resource version: {rv} ({history[0].rv - 1})")
        return [event for event in history if event.rv > rv]


def ALL(_obj: dict) -> bool:
    return True


def encode_continue(key: Key, rv: int) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0]}/{key[1]}"})
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> Key:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, _, name = data["start"].partition("/")
        return (namespace, name)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"invalid continue token: continue key is not valid: {exc}") from exc
