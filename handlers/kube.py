"""Cluster access through the official kubernetes client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from handlers.snapshot import ClusterSnapshot, snapshot_from_api

PAGE = 500  # what kubectl asks for
POOL_SIZE = 32


@dataclass
class Kube:
    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    policy: client.PolicyV1Api

    def close(self) -> None:
        self.api.close()


def connect(kubeconfig: Path | None = None, context: str | None = None) -> Kube:
    """Clients for the cluster in `kubeconfig` (or the in-cluster service account)."""
    if kubeconfig is None:
        config.load_incluster_config()
        api = client.ApiClient()
    else:
        api = config.new_client_from_config(config_file=str(kubeconfig), context=context)
    # The bot reads the cluster from many threads at once; urllib3's default pool of 4
    # connections would make them queue.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = POOL_SIZE
    return Kube(api, client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api))


def _raw(response) -> dict:
    return json.loads(response.data)


def list_all(list_call, **kwargs) -> list[dict]:
    """Every item of a paginated list, as plain JSON (skipping the client's model objects,
    which are slow to build and not needed by the planners)."""
    items: list[dict] = []
    token = None
    while True:
        page = _raw(list_call(limit=PAGE, _continue=token, _preload_content=False, **kwargs))
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


def read_snapshot(kube: Kube) -> ClusterSnapshot:
    nodes = list_all(kube.core.list_node)
    pods = list_all(kube.core.list_pod_for_all_namespaces)
    return snapshot_from_api(nodes, pods)


def read_node(kube: Kube, name: str) -> dict:
    return _raw(kube.core.read_node(name, _preload_content=False))


def set_unschedulable(kube: Kube, name: str, unschedulable: bool) -> None:
    # The same strategic-merge patch kubectl sends; null removes the field on uncordon.
    kube.core.patch_node(name, {"spec": {"unschedulable": True if unschedulable else None}})
