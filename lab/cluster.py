"""The cluster's moving parts: workload controllers, the scheduler, the kubelet's view of
pods, graceful deletion and PodDisruptionBudget status, over a Store.

Controllers run as one coalesced reconcile pass after every change, limited to the owners
and namespaces that changed, so a drain on a 20,000-pod cluster stays cheap.
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import logging
import random
from collections.abc import Callable
from datetime import timedelta

from lab import errors
from lab import objects as o
from lab.disruption import pdb_status
from lab.selectors import pdb_selects
from lab.store import Key, Store, WatchEvent, key_of

# How long a node may be NotReady before its pods are evicted (the taint-based
# eviction default, tolerationSeconds 300), before --time-scale.
POD_EVICTION_TIMEOUT = 300.0
DAEMONSET_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
WORKLOADS = ("deployments", "replicasets", "statefulsets", "daemonsets")
# After a write failed (the API's etcd away, or changed behind the cache): start over this much later.
RETRY_SECONDS = 0.5
log = logging.getLogger("lab.cluster")


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for tol in tolerations or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_accepts(node: dict, pod_spec: dict, *, ignore_unschedulable: bool = False) -> bool:
    """The scheduler's basic filters: Ready, schedulable, taints, nodeSelector."""
    if not o.node_is_ready(node):
        return False
    if node["spec"].get("unschedulable") and not ignore_unschedulable:
        return False
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
            pod_spec.get("tolerations", []), taint
        ):
            return False
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (pod_spec.get("nodeSelector") or {}).items())


class Cluster:
    def __init__(self, store: Store, *, time_scale: float = 1.0, seed: int = 0) -> None:
        self.store = store
        self.time_scale = time_scale
        self.rng = random.Random(seed)
        self._pod_ips = ipaddress.ip_network("10.244.0.0/14").hosts()
        self._scheduled_pass: asyncio.Handle | None = None
        self._timers: dict[tuple, asyncio.TimerHandle] = {}
        self.dirty_owners: set[str] = set()
        self.dirty_namespaces: set[str] = set()
        self.emptied_namespaces: set[str] = set()  # lost an object: maybe a Terminating one is empty now
        self.nodes_changed = True
        self.pending: set[Key] = set()
        # Pods on each node that are not finished: kept up to date from events so the
        # scheduler never walks every pod of a large cluster.
        self.node_load: dict[str, int] = {}
        self._fitting_nodes: dict[str, list[str]] = {}
        store.listeners.append(self._on_event)

    # -- change tracking ------------------------------------------------------------------

    def _on_event(self, resource: str, event: WatchEvent) -> None:
        if event.type == "DELETED" and event.obj["metadata"].get("namespace"):
            self.emptied_namespaces.add(event.obj["metadata"]["namespace"])
        if resource == "pods":
            self._count_load(event.old, -1)
            if event.type != "DELETED":
                self._count_load(event.obj, +1)
            for obj in (event.old, event.obj):
                if obj is None:
                    continue
                for ref in obj["metadata"].get("ownerReferences") or []:
                    self.dirty_owners.add(ref["uid"])
                self.dirty_namespaces.add(obj["metadata"]["namespace"])
            key = key_of(event.obj)
            if event.type != "DELETED" and not event.obj["spec"].get("nodeName"):
                self.pending.add(key)
            else:
                self.pending.discard(key)
        elif resource == "nodes":
            self.nodes_changed = True
            self._fitting_nodes.clear()
        elif resource in WORKLOADS:
            self.dirty_owners.add(event.obj["metadata"]["uid"])
            for ref in event.obj["metadata"].get("ownerReferences") or []:
                self.dirty_owners.add(ref["uid"])
            if event.type == "DELETED":
                self._collect_garbage(event.obj["metadata"]["uid"])
        elif resource == "poddisruptionbudgets" and event.type != "DELETED":
            self.dirty_namespaces.add(event.obj["metadata"]["namespace"])
        self.kick()

    def _count_load(self, pod: dict | None, delta: int) -> None:
        if pod is None or o.pod_is_terminal(pod):
            return
        node = pod["spec"].get("nodeName")
        if node:
            self.node_load[node] = self.node_load.get(node, 0) + delta

    def kick(self) -> None:
        """Run a reconcile pass soon, once for however many changes come before it."""
        if self._scheduled_pass is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the caller runs reconcile() itself
        self._scheduled_pass = loop.call_soon(self._run_pass)

    def _run_pass(self) -> None:
        self._scheduled_pass = None
        try:
            self.reconcile()
        except errors.ApiError as exc:
            self._retry_later(exc)

    def _retry_later(self, exc: errors.ApiError) -> None:
        """A controller's write failed: the changes it was handling are lost, so look at
        everything again a little later, as controllers resync."""
        log.info("controllers: a write failed (%s); resyncing in %.1fs", exc, RETRY_SECONDS)
        if ("resync",) not in self._timers:
            handle = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._resync_timer)
            self._timers[("resync",)] = handle

    def _resync_timer(self) -> None:
        self._timers.pop(("resync",), None)
        self.resync()

    def resync(self) -> None:
        """Take the store as it is (a cache just loaded from etcd, or after failed writes): count
        every node's pods again, finish deletions in progress, reconcile every owner."""
        self.node_load.clear()
        self.pending.clear()
        self._fitting_nodes.clear()
        for pod in self.store.table("pods").objects.values():
            self._count_load(pod, +1)
            meta = pod["metadata"]
            if not pod["spec"].get("nodeName") and not meta.get("deletionTimestamp"):
                self.pending.add(key_of(pod))
            key = ("delete", meta["namespace"], meta["name"], meta["uid"])
            if meta.get("deletionTimestamp") and key not in self._timers:
                self._later(key, meta.get("deletionGracePeriodSeconds", 0), self._finish_delete,
                            meta["namespace"], meta["name"], meta["uid"])
        for resource in WORKLOADS:
            self.dirty_owners.update(w["metadata"]["uid"] for w in self.store.table(resource).objects.values())
        self.dirty_namespaces.update(n["metadata"]["name"] for n in self.store.table("namespaces").objects.values())
        self.nodes_changed = True
        self.kick()

    def reconcile(self) -> None:
        for _ in range(20):  # converges in a few rounds; bounded so a bug cannot spin
            if self.emptied_namespaces:
                emptied, self.emptied_namespaces = self.emptied_namespaces, set()
                self.finish_namespaces(emptied)
            if not (self.dirty_owners or self.dirty_namespaces or self.nodes_changed or self.pending):
                return
            owners, self.dirty_owners = self.dirty_owners, set()
            namespaces, self.dirty_namespaces = self.dirty_namespaces, set()
            nodes_changed, self.nodes_changed = self.nodes_changed, False
            self._sync_deployments(owners)
            self._sync_replicasets(owners)
            self._sync_statefulsets(owners)
            self._sync_daemonsets(owners, nodes_changed)
            self._schedule()
            if nodes_changed:
                self._sync_node_health()
            self._sync_pdbs(namespaces)
            self._sync_workload_status(owners)

    # -- helpers ---------------------------------------------------------------------------

    def owned_pods(self, uid: str) -> list[dict]:
        pods = self.store.table("pods").objects
        return [pods[k] for k in self.store.pods_by_owner.get(uid, ()) if k in pods]

    def pods_on(self, node_name: str) -> list[dict]:
        pods = self.store.table("pods").objects
        return [pods[k] for k in self.store.pods_by_node.get(node_name, ()) if k in pods]

    def _workloads(self, resource: str, uids: set[str] | None) -> list[dict]:
        items = self.store.table(resource).objects.values()
        if uids is None:
            return list(items)
        return [w for w in items if w["metadata"]["uid"] in uids]

    def create_pod(self, template: dict, name: str, owner: dict | None, node: str = "") -> dict:
        pod = o.pod_from_template(
            template, name=name, namespace_name=owner["metadata"]["namespace"] if owner else "default",
            owner=owner,
        )
        if node:
            pod["spec"]["nodeName"] = node
        self._start_if_possible(pod)
        return self.store.put("pods", pod)

    def _start_if_possible(self, pod: dict) -> None:
        name = pod["spec"].get("nodeName")
        if not name or pod["status"].get("phase") != "Pending":
            return
        node = self.store.get("nodes", "", name)
        if node is not None and o.node_is_ready(node):
            o.mark_running(pod, node, str(next(self._pod_ips)))

    def _unique_pod_name(self, prefix: str, namespace: str) -> str:
        while True:
            name = f"{prefix}-{o.random_suffix(rng=self.rng)}"
            if self.store.get("pods", namespace, name) is None:
                return name

    # -- controllers -----------------------------------------------------------------------

    def _sync_deployments(self, owners: set[str]) -> None:
        for deploy in self._workloads("deployments", owners):
            meta = deploy["metadata"]
            template = deploy["spec"].get("template", {})
            suffix = o.template_hash(template)
            rs_name = f"{meta['name']}-{suffix}"
            replicas = deploy["spec"].get("replicas", 1)
            existing = self.store.get("replicasets", meta["namespace"], rs_name)
            if existing is None:
                rs_template = o.clone(template)
                rs_template.setdefault("metadata", {}).setdefault("labels", {})[
                    "pod-template-hash"] = suffix
                selector = o.clone(deploy["spec"].get("selector") or {})
                selector.setdefault("matchLabels", {})["pod-template-hash"] = suffix
                rs = o.stamp({
                    "kind": "ReplicaSet",
                    "apiVersion": "apps/v1",
                    "metadata": {
                        "name": rs_name,
                        "namespace": meta["namespace"],
                        "labels": dict(rs_template["metadata"]["labels"]),
                        "ownerReferences": [o.owner_ref(deploy)],
                        "annotations": {"deployment.kubernetes.io/revision": "1"},
                    },
                    "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
                    "status": {"replicas": 0},
                })
                self.store.put("replicasets", rs)
            elif existing["spec"].get("replicas") != replicas:
                updated = o.clone(existing)
                updated["spec"]["replicas"] = replicas
                updated["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
                self.store.put("replicasets", updated)

    def _sync_replicasets(self, owners: set[str]) -> None:
        for rs in self._workloads("replicasets", owners):
            meta = rs["metadata"]
            active = [p for p in self.owned_pods(meta["uid"]) if o.pod_is_active(p)]
            want = rs["spec"].get("replicas", 1)
            for _ in range(want - len(active)):
                self.create_pod(rs["spec"]["template"], self._unique_pod_name(meta["name"], meta["namespace"]), rs)
            if len(active) > want:
                # Like the ReplicaSet controller: unscheduled first, then not ready, then newest.
                active.sort(key=lambda p: (bool(p["spec"].get("nodeName")), o.pod_is_ready(p),
                                           p["metadata"]["creationTimestamp"]), )
                for pod in active[: len(active) - want]:
                    self.delete_pod(pod)

    def _sync_statefulsets(self, owners: set[str]) -> None:
        for sts in self._workloads("statefulsets", owners):
            meta = sts["metadata"]
            want = sts["spec"].get("replicas", 1)
            existing = {p["metadata"]["name"]: p for p in self.owned_pods(meta["uid"])}
            for ordinal in range(want):
                name = f"{meta['name']}-{ordinal}"
                if name not in existing and self.store.get("pods", meta["namespace"], name) is None:
                    pod = self.create_pod(sts["spec"]["template"], name, sts)
                    del pod  # created in order; the next one waits for this one to be ready
                    break
                if name in existing and not o.pod_is_ready(existing[name]):
                    break  # OrderedReady: wait for each pod before the next
            for name, pod in existing.items():
                ordinal = name.rsplit("-", 1)[-1]
                if ordinal.isdigit() and int(ordinal) >= want and o.pod_is_active(pod):
                    self.delete_pod(pod)

    def _sync_daemonsets(self, owners: set[str], nodes_changed: bool) -> None:
        candidates = None if nodes_changed else owners
        nodes = list(self.store.table("nodes").objects.values())
        for ds in self._workloads("daemonsets", candidates):
            meta = ds["metadata"]
            spec = o.clone(ds["spec"].get("template", {}).get("spec", {}))
            spec["tolerations"] = list(spec.get("tolerations", [])) + DAEMONSET_TOLERATIONS
            covered = {p["spec"].get("nodeName") for p in self.owned_pods(meta["uid"])
                       if not o.pod_is_terminal(p)}
            for node in nodes:
                name = node["metadata"]["name"]
                if name in covered or not node_accepts(node, spec, ignore_unschedulable=True):
                    continue
                template = o.clone(ds["spec"]["template"])
                template["spec"] = spec
                self.create_pod(template, self._unique_pod_name(meta["name"], meta["namespace"]), ds, name)

    def _schedule(self) -> None:
        """Bind pending pods, spreading each owner's pods first, then balancing load.

        Pods are handled per owner with a heap of (same-owner pods, pods, name) over the
        nodes that fit, so a 20,000-pod cluster schedules in seconds, not minutes.
        """
        if not self.pending:
            return
        pods = self.store.table("pods").objects
        nodes = {node["metadata"]["name"]: node for node in self.store.table("nodes").objects.values()}
        groups: dict[tuple, list[dict]] = {}
        for key in sorted(self.pending):
            pod = pods.get(key)
            if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                self.pending.discard(key)
                continue
            owner = o.controller_of(pod)
            spec = pod["spec"]
            signature = (owner["uid"] if owner else key, repr(spec.get("tolerations")),
                         repr(spec.get("nodeSelector")))
            groups.setdefault(signature, []).append(pod)
        for (owner_uid, _, _), group in groups.items():
            self._bind_group(group, owner_uid, nodes)

    def _fitting(self, spec: dict, nodes: dict[str, dict]) -> list[str]:
        """Nodes whose taints, selector and state admit this pod spec; cached until a node changes."""
        signature = repr((spec.get("tolerations"), spec.get("nodeSelector")))
        fitting = self._fitting_nodes.get(signature)
        if fitting is None:
            fitting = [name for name, node in nodes.items() if node_accepts(node, spec)]
            self._fitting_nodes[signature] = fitting
        return fitting

    def _bind_group(self, group: list[dict], owner_uid: str, nodes: dict) -> None:
        load = self.node_load
        same_owner: dict[str, int] = {}
        for key in self.store.pods_by_owner.get(owner_uid, ()):
            pod = self.store.table("pods").objects.get(key)
            if pod is not None and pod["spec"].get("nodeName") and not o.pod_is_terminal(pod):
                name = pod["spec"]["nodeName"]
                same_owner[name] = same_owner.get(name, 0) + 1
        spec = group[0]["spec"]
        heap = [(same_owner.get(name, 0), load.get(name, 0), name) for name in self._fitting(spec, nodes)]
        heapq.heapify(heap)
        for pod in group:
            target = None
            while heap:
                owned, count, name = heapq.heappop(heap)
                capacity = int(nodes[name]["status"]["allocatable"].get("pods", "110"))
                if count >= capacity:
                    continue  # full: it stays out of this pass
                target = name
                break
            if target is None:
                return  # the rest stay Pending until a node has room
            same_owner[target] = owned + 1
            bound = o.clone(pod)
            bound["spec"]["nodeName"] = target
            self._start_if_possible(bound)
            self.store.put("pods", bound)  # the event updates node_load
            heapq.heappush(heap, (owned + 1, load.get(target, 0), target))

    def _sync_node_health(self) -> None:
        """Pods on a NotReady node turn unready; after the eviction timeout they are deleted."""
        for node in self.store.table("nodes").objects.values():
            name = node["metadata"]["name"]
            ready = o.node_is_ready(node)
            for pod in self.pods_on(name):
                if o.pod_is_terminal(pod) or pod["metadata"].get("deletionTimestamp"):
                    continue
                if pod["status"].get("phase") == "Pending" and ready:
                    started = o.clone(pod)
                    self._start_if_possible(started)
                    self.store.put("pods", started)
                elif o.pod_is_ready(pod) != ready and pod["status"].get("phase") == "Running":
                    changed = o.clone(pod)
                    o.set_pod_ready(changed, ready)
                    self.store.put("pods", changed)
            timer_key = ("node-eviction", name)
            if ready:
                self._cancel(timer_key)
            elif timer_key not in self._timers:
                self._later(timer_key, POD_EVICTION_TIMEOUT, self._evict_from_dead_node, name)

    def _evict_from_dead_node(self, name: str) -> None:
        node = self.store.get("nodes", "", name)
        if node is None or o.node_is_ready(node):
            return
        for pod in self.pods_on(name):
            if o.MIRROR_ANNOTATION in pod["metadata"].get("annotations", {}):
                continue
            if o.controller_of(pod) and o.controller_of(pod)["kind"] == "DaemonSet":
                continue
            self.delete_pod(pod, 0)

    def pdb_pods(self, pdb: dict) -> list[dict]:
        namespace = pdb["metadata"]["namespace"]
        selector = pdb["spec"].get("selector")
        return [p for p in self.store.items("pods", namespace) if pdb_selects(selector, p["metadata"].get("labels"))]

    def pdb_status(self, pdb: dict) -> dict:
        return pdb_status(pdb, self.pdb_pods(pdb), self._scale_of)

    def _scale_of(self, pod: dict, ref: dict) -> int | None:
        namespace = pod["metadata"]["namespace"]
        resource = {"ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
                    "Deployment": "deployments"}.get(ref["kind"])
        if resource is None:
            return None
        owner = self.store.get(resource, namespace, ref["name"])
        if owner is None:
            return None
        parent = o.controller_of(owner)
        if resource == "replicasets" and parent and parent["kind"] == "Deployment":
            deploy = self.store.get("deployments", namespace, parent["name"])
            if deploy is not None:
                return deploy["spec"].get("replicas", 1)
        return owner["spec"].get("replicas", 1)

    def _sync_pdbs(self, namespaces: set[str]) -> None:
        for pdb in list(self.store.table("poddisruptionbudgets").objects.values()):
            if pdb["metadata"]["namespace"] not in namespaces:
                continue
            status = self.pdb_status(pdb)
            if pdb.get("status") != status:
                self.store.put("poddisruptionbudgets", {**pdb, "status": status})

    def _sync_workload_status(self, owners: set[str]) -> None:
        for resource in ("replicasets", "statefulsets", "daemonsets"):
            for obj in self._workloads(resource, owners):
                pods = [p for p in self.owned_pods(obj["metadata"]["uid"]) if o.pod_is_active(p)]
                ready = sum(1 for p in pods if o.pod_is_ready(p))
                generation = obj["metadata"].get("generation", 1)
                if resource == "daemonsets":
                    status = {
                        "currentNumberScheduled": len(pods), "numberMisscheduled": 0,
                        "desiredNumberScheduled": len(pods), "numberReady": ready,
                        "observedGeneration": generation, "updatedNumberScheduled": len(pods),
                        "numberAvailable": ready,
                    }
                    if len(pods) - ready:
                        status["numberUnavailable"] = len(pods) - ready
                else:
                    status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                              "readyReplicas": ready, "availableReplicas": ready,
                              "observedGeneration": generation}
                    if resource == "statefulsets":
                        del status["fullyLabeledReplicas"]
                        status.update(currentReplicas=len(pods), updatedReplicas=len(pods))
                if obj.get("status") != status:
                    self.store.put(resource, {**obj, "status": status})
                    self.dirty_owners.update(
                        r["uid"] for r in obj["metadata"].get("ownerReferences") or [])
        for deploy in self._workloads("deployments", owners | self.dirty_owners):
            replicas = deploy["spec"].get("replicas", 1)
            sets = [rs for rs in self.store.items("replicasets", deploy["metadata"]["namespace"])
                    if (o.controller_of(rs) or {}).get("uid") == deploy["metadata"]["uid"]]
            current = sum(rs.get("status", {}).get("replicas", 0) for rs in sets)
            ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in sets)
            status = {
                "observedGeneration": deploy["metadata"].get("generation", 1),
                "replicas": current, "updatedReplicas": current, "readyReplicas": ready,
                "availableReplicas": ready,
            }
            if replicas - ready > 0:
                status["unavailableReplicas"] = replicas - ready
            status["conditions"] = [{
                "type": "Available", "status": "True" if ready >= replicas else "False",
                "reason": "MinimumReplicasAvailable" if ready >= replicas
                else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability." if ready >= replicas
                else "Deployment does not have minimum availability.",
            }]
            if deploy.get("status") != status:
                self.store.put("deployments", {**deploy, "status": status})

    def _collect_garbage(self, owner_uid: str) -> None:
        """Background cascading deletion of what a deleted owner controlled."""
        for resource in ("replicasets", "pods"):
            for obj in list(self.store.table(resource).objects.values()):
                if any(r["uid"] == owner_uid for r in obj["metadata"].get("ownerReferences") or []):
                    if resource == "pods":
                        self.delete_pod(obj)
                    else:
                        self.store.remove(resource, obj["metadata"]["namespace"], obj["metadata"]["name"])

    # -- deletion --------------------------------------------------------------------------

    def finish_namespaces(self, names: set[str]) -> None:
        """The namespace controller's last step: a Terminating namespace with nothing left in it
        is removed."""
        for name in names:
            namespace = self.store.get("namespaces", "", name)
            if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
                continue
            if any(next(self.store.items(resource, name), None) is not None
                   for resource in list(self.store.tables) if resource != "namespaces"):
                continue
            self.store.remove("namespaces", "", name)

    def delete_pod(self, pod: dict, grace: int | None = None) -> dict:
        """Graceful deletion: mark the pod terminating, remove it when its grace period ends.

        Returns the pod as the API returns it from a DELETE.
        """
        meta = pod["metadata"]
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if (
            grace <= 0
            or not pod["spec"].get("nodeName")
            or o.pod_is_terminal(pod)
        ):
            return self.store.remove("pods", meta["namespace"], meta["name"]) or pod
        if meta.get("deletionTimestamp"):
            remaining = meta.get("deletionGracePeriodSeconds", grace)
            if grace >= remaining:
                return pod
        doomed = o.clone(pod)
        doomed["metadata"]["deletionTimestamp"] = o.timestamp(o.now() + timedelta(seconds=grace))
        doomed["metadata"]["deletionGracePeriodSeconds"] = grace
        stored = self.store.put("pods", doomed)
        self._later(("delete", meta["namespace"], meta["name"], meta["uid"]), grace,
                    self._finish_delete, meta["namespace"], meta["name"], meta["uid"])
        return stored

    def _finish_delete(self, namespace: str, name: str, uid: str) -> None:
        current = self.store.get("pods", namespace, name)
        if current is not None and current["metadata"]["uid"] == uid:
            self.store.remove("pods", namespace, name)

    def _later(self, key: tuple, seconds: float, callback: Callable, *args: object) -> None:
        self._cancel(key)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            try:
                callback(*args)
            except errors.ApiError as exc:
                self._retry_later(exc)

        self._timers[key] = loop.call_later(seconds * self.time_scale, fire)

    def _cancel(self, key: tuple) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

