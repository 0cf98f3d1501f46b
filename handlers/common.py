"""Plan pieces several operations share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from bot.cluster.snapshot import ClusterSnapshot, PodInfo
from bot.contract import NotConfigured, Plan


def workload_of(pod: PodInfo) -> str:
    """The workload a person would name: a Deployment rather than its ReplicaSet."""
    if pod.mirror:
        return "static pod (kubelet)"
    if pod.owner is None:
        return "no controller"
    if pod.owner.kind == "ReplicaSet":
        pod_hash = pod.labels.get("pod-template-hash")
        if pod_hash and pod.owner.name.endswith(f"-{pod_hash}"):
            return f"Deployment {pod.owner.name.removesuffix(f'-{pod_hash}')}"
    return f"{pod.owner.kind} {pod.owner.name}"


def group_pods(pods: list[PodInfo]) -> list[str]:
    """`namespace: N x Workload` lines, largest groups first."""
    counts = Counter((p.namespace, workload_of(p)) for p in pods)
    lines = []
    for (namespace, workload), count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if workload == "no controller":
            names = sorted(p.name for p in pods if p.namespace == namespace and p.owner is None)
            lines.append(f"{namespace}: {', '.join(names)} (no controller)")
        else:
            lines.append(f"{namespace}: {count} x {workload}")
    return lines


def unknown_node(snapshot: ClusterSnapshot, node: str) -> Plan:
    known = ", ".join(sorted(snapshot.nodes)) or "none"
    return Plan((), refusal=f"node {node} not found; the cluster's nodes are: {known}")


def node_shell(resources: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The "ssh" resource, or None and why not (no ssh section; an unusable key or known_hosts), for
    read-only answers that show what they can without the nodes."""
    from bot.nodes import NodeError  # imported here: paramiko is slow to import, and most answers never need it

    try:
        return resources["ssh"], None
    except NotConfigured:
        return None, "not read: the configuration has no `ssh` section (docs/configuration.md)"
    except NodeError as error:
        return None, f"not read: {error}"
