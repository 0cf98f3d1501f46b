"""Server-side printing: meta.k8s.io/v1 Table rows as kube-apiserver's printers build them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lab.objects import now, parse_timestamp

NONE = "<none>"


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, which kubectl shows in AGE."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(obj: dict, at: datetime | None = None) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return NONE
    return human_duration(((at or now()) - parse_timestamp(created)).total_seconds())


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> dict:
    column = {"name": name, "type": kind, "format": fmt, "description": "", "priority": priority}
    return column


NAME = _col("Name", fmt="name")
AGE = _col("Age")


def _node_status(node: dict) -> str:
    states = []
    for cond in node.get("status", {}).get("conditions", []):
        if cond["type"] == "Ready":
            states.append("Ready" if cond["status"] == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if node["spec"].get("unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(node: dict) -> str:
    roles = set()
    for label, value in (node["metadata"].get("labels") or {}).items():
        if label.startswith("node-role.kubernetes.io/"):
            roles.add(label.removeprefix("node-role.kubernetes.io/"))
        elif label == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _address(node: dict, kind: str) -> str:
    for address in node["status"].get("addresses", []):
        if address["type"] == kind:
            return address["address"]
    return NONE


def _node_row(node: dict) -> list:
    info = node["status"].get("nodeInfo", {})
    return [
        node["metadata"]["name"], _node_status(node), _node_roles(node), age(node),
        info.get("kubeletVersion", ""), _address(node, "InternalIP"), _address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _pod_status(pod: dict) -> str:
    status = pod.get("status", {})
    reason = status.get("reason") or status.get("phase", "Unknown")
    for container in status.get("containerStatuses", []):
        state = container.get("state", {})
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod: dict) -> list:
    status = pod.get("status", {})
    containers = pod["spec"].get("containers", [])
    ready = restarts = 0
    for container in status.get("containerStatuses", []):  # one loop: a list of 20,000 pods prints this often
        ready += 1 if container.get("ready") else 0
        restarts += container.get("restartCount", 0)
    return [
        pod["metadata"]["name"], f"{ready}/{len(containers)}", _pod_status(pod), str(restarts),
        age(pod), status.get("podIP") or NONE, pod["spec"].get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE, NONE,
    ]


def _containers(obj: dict) -> tuple[str, str]:
    containers = obj["spec"].get("template", {}).get("spec", {}).get("containers", [])
    return ",".join(c["name"] for c in containers), ",".join(c["image"] for c in containers)


def _selector(obj: dict) -> str:
    labels = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items()) or NONE


def _deployment_row(obj: dict) -> list:
    status = obj.get("status", {})
    names, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{obj['spec'].get('replicas', 1)}",
        status.get("updatedReplicas", 0), status.get("availableReplicas", 0), age(obj),
        names, images, _selector(obj),
    ]


def _replicaset_row(obj: dict) -> list:
    status = obj.get("status", {})
    names, images = _containers(obj)
    return [
        obj["metadata"]["name"], obj["spec"].get("replicas", 1), status.get("replicas", 0),
        status.get("readyReplicas", 0), age(obj), names, images, _selector(obj),
    ]


def _daemonset_row(obj: dict) -> list:
    status = obj.get("status", {})
    names, images = _containers(obj)
    node_selector = obj["spec"].get("template", {}).get("spec", {}).get("nodeSelector") or {}
    return [
        obj["metadata"]["name"], status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in node_selector.items()) or NONE, age(obj),
        names, images, _selector(obj),
    ]


def _statefulset_row(obj: dict) -> list:
    status = obj.get("status", {})
    names, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{obj['spec'].get('replicas', 1)}", age(obj),
        names, images,
    ]


def _pdb_row(obj: dict) -> list:
    spec = obj["spec"]
    return [
        obj["metadata"]["name"], str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
        str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
        obj.get("status", {}).get("disruptionsAllowed", 0), age(obj),
    ]


def _namespace_row(obj: dict) -> list:
    return [obj["metadata"]["name"], obj.get("status", {}).get("phase", "Active"), age(obj)]


Printer = tuple[list[dict], Callable[[dict], list]]

PRINTERS: dict[str, Printer] = {
    "nodes": ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version"),
               _col("Internal-IP", priority=1), _col("External-IP", priority=1),
               _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
               _col("Container-Runtime", priority=1)], _node_row),
    "pods": ([NAME, _col("Ready"), _col("Status"), _col("Restarts"), AGE,
              _col("IP", priority=1), _col("Node", priority=1),
              _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)], _pod_row),
    "deployments": ([NAME, _col("Ready"), _col("Up-to-date", "integer"),
                     _col("Available", "integer"), AGE, _col("Containers", priority=1),
                     _col("Images", priority=1), _col("Selector", priority=1)], _deployment_row),
    "replicasets": ([NAME, _col("Desired", "integer"), _col("Current", "integer"),
                     _col("Ready", "integer"), AGE, _col("Containers", priority=1),
                     _col("Images", priority=1), _col("Selector", priority=1)], _replicaset_row),
    "daemonsets": ([NAME, _col("Desired", "integer"), _col("Current", "integer"),
                    _col("Ready", "integer"), _col("Up-to-date", "integer"),
                    _col("Available", "integer"), _col("Node Selector"), AGE,
                    _col("Containers", priority=1), _col("Images", priority=1),
                    _col("Selector", priority=1)], _daemonset_row),
    "statefulsets": ([NAME, _col("Ready"), AGE, _col("Containers", priority=1),
                      _col("Images", priority=1)], _statefulset_row),
    "poddisruptionbudgets": ([NAME, _col("Min Available"), _col("Max Unavailable"),
                              _col("Allowed Disruptions", "integer"), AGE], _pdb_row),
    "namespaces": ([NAME, _col("Status"), AGE], _namespace_row),
    "configmaps": ([NAME, _col("Data", "integer"), AGE],
                   lambda obj: [obj["metadata"]["name"], len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
                                age(obj)]),
}


def partial_metadata(obj: dict) -> dict:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


INCLUDE_OBJECT = ("None", "Metadata", "Object")  # the `includeObject` query parameter's values


def table(resource: str, objects: list[dict], list_meta: dict, with_columns: bool = True,
          include_object: str = "Metadata") -> dict:
    """`include_object` as kube-apiserver's `includeObject`: each row carries the object's metadata
    (the default), the whole object, or nothing (the cells alone: what a client counting rows needs)."""
    columns, row = PRINTERS.get(resource, ([NAME, AGE], lambda o: [o["metadata"]["name"], age(o)]))
    if include_object == "None":
        rows = [{"cells": row(obj)} for obj in objects]
    elif include_object == "Object":
        rows = [{"cells": row(obj), "object": obj} for obj in objects]
    else:
        rows = [{"cells": row(obj), "object": partial_metadata(obj)} for obj in objects]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns if with_columns else None,
        "rows": rows,
    }

