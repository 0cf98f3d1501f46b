"""Every object of the cluster as `kubectl get -o yaml` shows it, without status and managed fields:
what `backup resources` writes, one YAML file per object.

The resource types come from the API's discovery (core and every group's preferred version), so
custom resources are included; events (noise) and subresources are not. Cluster-scoped objects are
limited to nodes and namespaces, as the seeds' resource backup keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
import yaml

from bot.cluster.kube import PAGE, Kube

SKIPPED = {("", "events"), ("events.k8s.io", "events")}
CLUSTER_SCOPED_KEPT = {("", "nodes"), ("", "namespaces")}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    name: str  # plural, as in the URL
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/namespaces/{namespace}/{self.name}" if namespace and self.namespaced else f"{base}/{self.name}"


def get_json(kube: Kube, path: str, query: dict[str, Any] | None = None) -> dict:
    method, url, headers, body, post = kube.api.param_serialize(
        "GET", path + (f"?{urlencode(query)}" if query else ""), header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"])
    response = kube.api.call_api(method, url, headers, body, post, _request_timeout=60)
    response.read()
    if response.status >= 400:
        raise RuntimeError(f"GET {path}: HTTP {response.status}")
    return orjson.loads(response.data) if response.data else {}


def resource_types(kube: Kube) -> list[ResourceType]:
    lists = [("", get_json(kube, "/api/v1"))]
    for group in get_json(kube, "/apis").get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion") or ""
        if preferred:
            lists.append((group["name"], get_json(kube, f"/apis/{preferred}")))
    found = []
    for group, listing in lists:
        version = (listing.get("groupVersion") or "v1").rpartition("/")[2]
        for entry in listing.get("resources") or []:
            name = entry.get("name", "")
            if "/" in name or "list" not in (entry.get("verbs") or []) or (group, name) in SKIPPED:
                continue
            if not entry.get("namespaced") and (group, name) not in CLUSTER_SCOPED_KEPT:
                continue
            found.append(ResourceType(group, version, name, entry.get("kind", ""), bool(entry.get("namespaced"))))
    return found


def exported(kube: Kube, namespace: str | None = None) -> Iterator[tuple[str, str]]:
    """(path in the archive, YAML) for every object; with `namespace`, only that namespace's objects (and the
    namespace itself)."""
    for kind in resource_types(kube):
        if namespace and not kind.namespaced and kind.name != "namespaces":
            continue
        token = None
        while True:
            query = {"limit": PAGE, **({"continue": token} if token else {})}
            if namespace and kind.name == "namespaces":
                items, token = [get_json(kube, f"/api/v1/namespaces/{namespace}")], None
            else:
                page = get_json(kube, kind.path(namespace), query)
                items, token = page.get("items") or [], (page.get("metadata") or {}).get("continue")
            for item in items:
                obj = cleaned(item, kind)
                meta = obj["metadata"]
                folder = meta.get("namespace") or "_cluster"
                yield f"{folder}/{kind.name}.{kind.group or 'core'}/{meta['name']}.yaml", yaml.safe_dump(obj)
            if not token:
                break


def cleaned(item: dict, kind: ResourceType) -> dict:
    """The object as one would apply it again: apiVersion and kind set, no status, no managed fields."""
    obj = {"apiVersion": kind.api_version, "kind": kind.kind, **item}
    obj.pop("status", None)
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    obj["metadata"] = meta
    return obj
