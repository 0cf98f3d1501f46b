"""The lab API's connection to its etcd, as kube-apiserver's reflector keeps its watch cache:
load everything under /registry/, watch from the next revision, and when the watch breaks (etcd
stopped, restarted, restored from a snapshot) wait for etcd and load a fresh cache. A restore
rewinds etcd's revisions and gives it a new cluster identity, so only a fresh load is right.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from lab.etcd import keys
from lab.etcd.client import EtcdClient, EtcdEndpoint, EtcdError
from lab.etcd.store import EtcdStore

log = logging.getLogger("lab.etcd")
RETRY_SECONDS = 0.1  # etcd starts in about a second; the API follows within this
# kube-apiserver's --etcd-compaction-interval: each time, etcd's history is compacted to the
# revision noted the time before, so etcd keeps about this much of it.
COMPACTION_SECONDS = 300.0


class EtcdLink:
    def __init__(self, endpoint: Callable[[], EtcdEndpoint], loaded: Callable[[EtcdStore], Awaitable[None]],
                 prepare: Callable[[EtcdClient], None] | None = None) -> None:
        """`endpoint` says where etcd is (read again at each connection), `prepare` may write to
        etcd before a load (the lab's scenario, once), `loaded` installs each fresh cache."""
        self._endpoint = endpoint
        self._loaded = loaded
        self._prepare = prepare
        self._task: asyncio.Task | None = None
        self._compacting: asyncio.Task | None = None
        self.store: EtcdStore | None = None
        self.loads = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        self._compacting = asyncio.create_task(self._compact())

    async def stop(self) -> None:
        for task in (self._task, self._compacting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._compacting = None
        self._disconnect()

    async def _compact(self) -> None:
        noted = 0
        while True:
            await asyncio.sleep(COMPACTION_SECONDS)
            store = self.store
            if store is None or store.client is None or not store.connected:
                noted = 0
                continue
            try:
                if noted:
                    await asyncio.to_thread(store.client.compact, noted)
                noted = await asyncio.to_thread(store.client.revision)
            except EtcdError as exc:  # e.g. a restore rewound etcd below the noted revision
                log.info("etcd compaction: %s", exc)
                noted = 0

    def _disconnect(self) -> None:
        if self.store is not None:
            self.store.connected = False
            if self.store.client is not None:
                self.store.client.close()

    def _connect(self, client: EtcdClient) -> EtcdStore:
        if self._prepare is not None:
            self._prepare(client)
        return EtcdStore.load(client)

    async def _run(self) -> None:
        reported = ""
        while True:
            try:
                client = EtcdClient(self._endpoint())
                # In a thread: an etcd that is starting accepts connections but may answer only
                # seconds later (leader election), and the lab's event loop must not wait for it.
                store = await asyncio.to_thread(self._connect, client)
            except (EtcdError, OSError, ssl.SSLError) as exc:
                if str(exc) != reported:  # once per cause while etcd is away, not ten times a second
                    log.info("waiting for etcd: %s", exc)
                    reported = str(exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            reported = ""
            self._disconnect()
            self.store = store
            self.loads += 1
            log.info("loaded %d objects from etcd at revision %d", sum(len(t.objects) for t in store.tables.values()),
                     store.rv)
            await self._loaded(store)
            try:
                async for events in client.watch(keys.PREFIX, store.rv + 1):
                    store.apply_events(events)
            except EtcdError as exc:
                log.info("etcd watch ended: %s", exc)
            except Exception:  # whatever it was, a fresh load is the way back
                log.exception("following etcd failed; loading again")
            self._disconnect()
            await asyncio.sleep(RETRY_SECONDS)
