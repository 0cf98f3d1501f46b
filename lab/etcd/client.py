"""A client for etcd's v3 JSON gateway, which etcd 3.4 serves on its client port
(`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`; keys and values base64, 64-bit numbers as strings),
over TLS with a client certificate as kube-apiserver talks to it.

Unary calls are synchronous (urllib3, one kept-alive connection): the lab's store is called
synchronously by its controllers and must know a write's revision before it returns, and a
local etcd answers in about 2 ms. The watch is a stream read on the event loop (aiohttp).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import urllib3

from lab.etcd.keys import range_end

# etcd's default --max-txn-ops: a txn with more operations is refused.
MAX_TXN_OPS = 128
CONNECT_TIMEOUT = 1.0


class EtcdError(RuntimeError):
    """etcd refused a request."""


class EtcdUnavailable(EtcdError):
    """etcd did not answer: stopped, restarting, or not started yet."""


@dataclass(frozen=True)
class EtcdEndpoint:
    """Where etcd listens and the files kube-apiserver's --etcd-* flags name."""

    url: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class Event:
    deleted: bool
    kv: KeyValue


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _kv(raw: dict) -> KeyValue:
    return KeyValue(base64.b64decode(raw["key"]).decode(), base64.b64decode(raw.get("value", "")),
                    int(raw.get("mod_revision", 0)))


def _compare_mod_revision(key: str, mod_revision: int) -> dict:
    # A missing key compares as mod_revision 0: "create only if absent" is the same compare.
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}


class EtcdClient:
    def __init__(self, endpoint: EtcdEndpoint, timeout: float = 5.0) -> None:
        self.endpoint = endpoint
        self._ssl = endpoint.ssl_context()
        self._http = urllib3.PoolManager(
            ssl_context=self._ssl, maxsize=1, retries=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout))

    def close(self) -> None:
        self._http.clear()

    def _call(self, path: str, body: dict) -> dict:
        try:
            response = self._http.request("POST", self.endpoint.url + path, body=orjson.dumps(body),
                                          headers={"Content-Type": "application/json"})
        except urllib3.exceptions.HTTPError as exc:
            raise EtcdUnavailable(f"etcd at {self.endpoint.url}: {exc}") from exc
        try:
            data = orjson.loads(response.data)
        except orjson.JSONDecodeError as exc:
            raise EtcdError(f"etcd {path}: HTTP {response.status}: {response.data[:200]!r}") from exc
        if response.status != 200:
            raise EtcdError(f"etcd {path}: {data.get('error') or data.get('message') or data}")
        return data

    # -- reads ----------------------------------------------------------------------------------

    def range_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """Every key under `prefix` and the store's revision they were read at."""
        data = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(range_end(prefix))})
        return int(data["header"]["revision"]), [_kv(kv) for kv in data.get("kvs", [])]

    def revision(self) -> int:
        data = self._call("/v3/kv/range", {"key": _b64("\0"), "count_only": True})
        return int(data["header"]["revision"])

    # -- writes: compare-and-swap on the key's mod_revision, as kube-apiserver writes -----------

    def put_if(self, key: str, value: bytes, mod_revision: int) -> int | None:
        """Store `value` if the key is still at `mod_revision` (0: absent); its new revision, or
        None when someone else changed the key first."""
        data = self._call("/v3/kv/txn", {
            "compare": [_compare_mod_revision(key, mod_revision)],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}]})
        return int(data["header"]["revision"]) if data.get("succeeded") else None

    def delete_if(self, key: str, mod_revision: int) -> int | None:
        data = self._call("/v3/kv/txn", {
            "compare": [_compare_mod_revision(key, mod_revision)],
            "success": [{"request_delete_range": {"key": _b64(key)}}]})
        return int(data["header"]["revision"]) if data.get("succeeded") else None

    def replace_prefix(self, prefix: str, items: list[tuple[str, bytes]]) -> int:
        """Delete every key under `prefix`, then store `items` (in txns of etcd's maximum size)."""
        data = self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": _b64(range_end(prefix))})
        revision = int(data["header"]["revision"])
        for start in range(0, len(items), MAX_TXN_OPS):
            batch = items[start:start + MAX_TXN_OPS]
            data = self._call("/v3/kv/txn", {"success": [
                {"request_put": {"key": _b64(key), "value": _b64(value)}} for key, value in batch]})
            revision = int(data["header"]["revision"])
        return revision

    def compact(self, revision: int) -> None:
        """Drop the history before `revision`: a watch or read from earlier is answered "compacted"."""
        self._call("/v3/kv/compaction", {"revision": str(revision)})

    # -- watch ----------------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[Event]]:
        """Batches of events under `prefix` from `start_revision` on, until the stream breaks
        (EtcdUnavailable) or etcd cancels it (EtcdError, e.g. the revision was compacted)."""
        request = {"create_request": {"key": _b64(prefix), "range_end": _b64(range_end(prefix)),
                                      "start_revision": str(start_revision)}}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl),
                                             timeout=timeout) as session, \
                    session.post(self.endpoint.url + "/v3/watch", json=request) as response:
                if response.status != 200:
                    raise EtcdError(f"etcd watch: HTTP {response.status}: {await response.text()}")
                pending = b""
                # Lines can be long (a txn of 128 objects is one line): split them ourselves.
                async for chunk in response.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield _watch_events(orjson.loads(line))
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise EtcdUnavailable(f"etcd watch at {self.endpoint.url}: {exc}") from exc
        raise EtcdUnavailable(f"etcd at {self.endpoint.url} ended the watch")


def _watch_events(message: dict) -> list[Event]:
    if "error" in message:
        raise EtcdError(f"etcd watch: {message['error']}")
    result = message.get("result") or {}
    if result.get("canceled"):
        raise EtcdError(f"etcd watch canceled: {result.get('cancel_reason') or result}")
    return [Event(event.get("type") == "DELETE", _kv(event["kv"])) for event in result.get("events", [])]
