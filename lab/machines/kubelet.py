"""The lab's side of each machine's kubelet: what the API shows of the machine.

- The node's kubeletVersion (and kubeProxyVersion, which the kubelet reports as its own) is
  the version the kubelet service started with (systemctl records it), so an upgraded
  package shows only after `systemctl restart kubelet`, as the seeds teach.
- nodeInfo.bootID, kernelVersion and osImage come from the machine's boot.
- A kubelet that stops (service stopped, machine off or rebooting) stops posting status: the
  node turns NotReady once the node monitor grace period (40 s, scaled) has passed.
- The kubelet runs the static pods in /etc/kubernetes/manifests: their mirror pods follow the
  files (added, changed: deleted and created again with the new hash, removed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab import errors
from lab import objects as o
from lab.machines import manifests
from lab.store import Store

NODE_MONITOR_GRACE = 40.0
log = logging.getLogger("lab.machines")


class HasStore(Protocol):
    store: Store
    time_scale: float

    def static_pods_seen(self, machine: str, manifests: dict[str, dict], root: Path | None) -> None:
        """A machine's kubelet read its manifests directory ({} and None: the machine went down)."""


@dataclass(frozen=True)
class BootFacts:
    boot_id: str
    kernel: str
    os_image: str


def is_mirror_of(pod: dict, node_name: str) -> bool:
    annotations = pod["metadata"].get("annotations") or {}
    return (annotations.get("kubernetes.io/config.source") == "file"
            and pod["spec"].get("nodeName") == node_name)


def static_pod_changes(existing: list[dict], wanted: dict[str, dict], node: dict) -> tuple[list[dict], list[dict]]:
    """(mirror pods to delete, mirror pods to create) so the API matches the manifests. Pure."""
    node_name = node["metadata"]["name"]
    desired = {}
    for manifest in wanted.values():
        pod = manifests.mirror_pod(manifest, node)
        desired[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
    current = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in existing
               if is_mirror_of(p, node_name)}
    delete = [pod for key, pod in current.items()
              if key not in desired or manifests.mirror_hash(pod) != manifests.mirror_hash(desired[key])]
    create = [pod for key, pod in desired.items()
              if key not in current or manifests.mirror_hash(current[key]) != manifests.mirror_hash(pod)]
    return delete, create


class NodeAgent:
    """The kubelet of one machine as the API sees it."""

    def __init__(self, node_name: str, lab: HasStore) -> None:
        self.node_name = node_name
        self.lab = lab
        self.kubelet_active = False
        self._not_ready: asyncio.TimerHandle | None = None

    def _node(self) -> dict | None:
        return self.lab.store.get("nodes", "", self.node_name)

    def _update_node(self, change: Callable[[dict], None]) -> None:
        node = self._node()
        if node is None:
            return  # deleted through the API: a real kubelet would register it again; the lab does not
        updated = o.clone(node)
        change(updated)
        if updated != node:
            try:
                self.lab.store.put("nodes", updated)
            except errors.ApiError as exc:  # etcd away: the lab announces every machine again once it is back
                log.info("%s: node status not posted: %s", self.node_name, exc)

    # -- what the machine tells ---------------------------------------------------------------

    def booted(self, facts: BootFacts) -> None:
        def record(node: dict) -> None:
            info = node["status"]["nodeInfo"]
            info.update(bootID=facts.boot_id, kernelVersion=facts.kernel, osImage=facts.os_image)

        self._update_node(record)

    def kubelet(self, active: bool, version: str | None) -> None:
        """The kubelet service's state, each time it may have changed."""
        self.kubelet_active = active
        if active:
            self._cancel()

            def posting(node: dict) -> None:
                if version:
                    node["status"]["nodeInfo"].update(kubeletVersion=version, kubeProxyVersion=version)
                if not o.node_is_ready(node):
                    o.set_node_ready(node, True)

            self._update_node(posting)
        elif self._not_ready is None:
            delay = NODE_MONITOR_GRACE * self.lab.time_scale
            self._not_ready = asyncio.get_running_loop().call_later(delay, self._grace_over)

    def down(self) -> None:
        """The machine is off: its kubelet posts nothing any more."""
        self.kubelet(False, None)

    def _grace_over(self) -> None:
        self._not_ready = None
        if self.kubelet_active:
            return

        def unknown(node: dict) -> None:
            if o.node_is_ready(node):
                o.set_node_ready(node, False)

        self._update_node(unknown)

    def _cancel(self) -> None:
        if self._not_ready is not None:
            self._not_ready.cancel()
            self._not_ready = None

    def static_pods(self, wanted: dict[str, dict]) -> None:
        node = self._node()
        if node is None:
            return
        store = self.lab.store
        existing = [store.table("pods").objects[key] for key in store.pods_by_node.get(self.node_name, ())
                    if key in store.table("pods").objects]
        delete, create = static_pod_changes(existing, wanted, node)
        for pod in delete:
            store.remove("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for pod in create:
            if store.get("namespaces", "", pod["metadata"]["namespace"]) is None:
                log.warning("%s: static pod %s: namespace %s not found", self.node_name, pod["metadata"]["name"],
                            pod["metadata"]["namespace"])
                continue
            store.put("pods", pod)

    def stop(self) -> None:
        self._cancel()
