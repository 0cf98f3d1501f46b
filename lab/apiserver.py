"""The lab's kube-apiserver as the static pod of its control-plane machine (labs whose objects
are in etcd): it serves while /etc/kubernetes/manifests/kube-apiserver.yaml is on that machine
and the machine runs, and reads its objects from the etcd its manifest's --etcd-* flags name.

Moving the manifest out of the directory closes the API's port (connections refused); moving
it back opens it again once the API has loaded its objects from etcd. The lab process itself
keeps running throughout, with its admin API behind the same port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from lab.etcd.client import EtcdClient, EtcdEndpoint
from lab.etcd.link import EtcdLink
from lab.etcd.store import EtcdStore
from lab.listener import Listener
from lab.machines.pods import on_own_address

log = logging.getLogger("lab.apiserver")
ETCD_FLAGS = ("--etcd-servers=", "--etcd-cafile=", "--etcd-certfile=", "--etcd-keyfile=")


def etcd_flags(manifest: dict) -> tuple[str, ...] | None:
    """The values of kube-apiserver's --etcd-servers, --etcd-cafile, --etcd-certfile and
    --etcd-keyfile; None when one is missing."""
    command = manifest["spec"]["containers"][0].get("command") or []
    found = {}
    for arg in command:
        for flag in ETCD_FLAGS:
            if arg.startswith(flag):
                found[flag] = arg[len(flag):]
    return tuple(found[flag] for flag in ETCD_FLAGS) if len(found) == len(ETCD_FLAGS) else None


def endpoint(flags: tuple[str, ...], root: Path, address: str) -> EtcdEndpoint:
    """Where the API reaches etcd from the host: the first --etcd-servers URL (on the machine's own
    address rather than 127.0.0.1, lab/machines/pods.py) and the flags' files on the machine."""
    servers, ca, cert, key = flags
    url = on_own_address(servers.split(",")[0], address)
    return EtcdEndpoint(url, root / ca.lstrip("/"), root / cert.lstrip("/"), root / key.lstrip("/"))


class ApiServerPod:
    def __init__(self, listener: Listener, address: str, root: Callable[[], Path | None],
                 loaded: Callable[[EtcdStore], Awaitable[None]], stopped: Callable[[], None],
                 prepare: Callable[[EtcdClient], None]) -> None:
        """`root` is the machine's / seen from the host (None while it is down); `loaded` installs
        each cache loaded from etcd, `stopped` takes the API's objects away, `prepare` may write
        to etcd before a load."""
        self.listener = listener
        self.address = address
        self._root = root
        self._loaded = loaded
        self._stopped = stopped
        self._prepare = prepare
        self._wanted: tuple[str, ...] | None = None  # the --etcd-* flags of the manifest in place
        self._running: tuple[str, ...] | None = None
        self._link: EtcdLink | None = None
        self._lock = asyncio.Lock()
        self._converging: asyncio.Task | None = None
        self.load_count = 0
        self._load_seen = asyncio.Event()

    # -- what the control plane's kubelet sees --------------------------------------------------

    def seen(self, manifests: dict[str, dict]) -> None:
        """The control-plane machine's manifests ({}: the machine is down)."""
        wanted = None
        for manifest in manifests.values():
            if manifest["metadata"]["name"] == "kube-apiserver":
                wanted = etcd_flags(manifest)
                if wanted is None:
                    log.warning("kube-apiserver.yaml names no etcd (--etcd-servers, --etcd-*file): the API stays down")
        if wanted != self._wanted:
            self._wanted = wanted
            if self._converging is None or self._converging.done():
                self._converging = asyncio.get_running_loop().create_task(self._converge())

    async def _converge(self) -> None:
        async with self._lock:
            while self._running != self._wanted:
                if self._running is not None:
                    await self._stop()
                if self._wanted is not None:
                    self._start(self._wanted)

    def _start(self, flags: tuple[str, ...]) -> None:
        log.info("kube-apiserver starting: etcd at %s", flags[0])
        self._running = flags

        def where() -> EtcdEndpoint:
            root = self._root()
            if root is None:
                raise FileNotFoundError("the control-plane machine is down")
            return endpoint(flags, root, self.address)

        self._link = EtcdLink(where, self._on_load, self._prepare)
        self._link.start()

    async def _on_load(self, store: EtcdStore) -> None:
        await self._loaded(store)
        await self.listener.open()  # kube-apiserver serves once its cache is filled
        self.load_count += 1
        self._load_seen.set()

    async def _stop(self) -> None:
        log.info("kube-apiserver stopping")
        self._running = None
        if self._link is not None:
            await self._link.stop()
            self._link = None
        await self.listener.close()
        self._stopped()

    # -- the lab's own calls --------------------------------------------------------------------

    async def wait_loaded(self, after: int, timeout: float) -> None:
        """Until the API has loaded from etcd more than `after` times."""
        async def loaded() -> None:
            while self.load_count <= after:
                self._load_seen.clear()
                await self._load_seen.wait()

        await asyncio.wait_for(loaded(), timeout)

    async def reload(self, while_away: Callable[[], Awaitable[None]], timeout: float) -> None:
        """Stop following etcd, run `while_away` (a lab reset: machines rebuilt, etcd rewritten by
        `prepare`), then load from etcd again, keeping the port open (the reset's request came
        through it)."""
        async with self._lock:
            if self._link is not None:
                await self._link.stop()
                self._link = None
            self._stopped()
            await while_away()
            before = self.load_count
            flags, self._running = self._running, None
            if flags is not None and flags == self._wanted:
                self._start(flags)
        if flags is None:
            return
        await self.wait_loaded(before, timeout)
        if self._converging is None or self._converging.done():
            self._converging = asyncio.get_running_loop().create_task(self._converge())

    async def stop(self) -> None:
        async with self._lock:
            if self._link is not None:
                await self._link.stop()
                self._link = None
            self._running = None
