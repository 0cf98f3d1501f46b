"""Scenarios: a YAML description of nodes and workloads, or the `large:N:P` generator."""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lab import objects as o
from lab.machines import manifests
from lab.versions import parse

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class ScenarioError(ValueError):
    pass


@dataclass
class Scenario:
    name: str
    version: str
    nodes: list[dict]
    objects: list[dict] = field(default_factory=list)
    faults: dict = field(default_factory=dict)
    seed: int = 0
    # Defaults for the nodes' machines (lab/machines/spec.py); `false`: no node is a machine.
    machines: dict | bool | None = None
    # Where the API keeps its objects: "etcd" (the control-plane machine's), "memory", or None:
    # etcd when the control plane is a machine (lab/server.py).
    store: str | None = None


def available() -> list[str]:
    return [*sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")), "large:NODES:PODS_PER_NODE[:MACHINES][:etcd]"]


def load(spec: str) -> Scenario:
    """A scenario by name (lab/scenarios/NAME.yaml), by file path, or `large:N:P`."""
    if spec.startswith("large:"):
        return generate_large(spec)
    path = Path(spec)
    if not path.suffix:
        path = SCENARIO_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise ScenarioError(f"unknown scenario {spec!r}; known: {', '.join(available())}")
    data = yaml.safe_load(path.read_text()) or {}
    return from_dict(data, default_name=path.stem)


def from_dict(data: dict, default_name: str = "custom") -> Scenario:
    version = data.get("version", "v1.19.0")
    try:
        parse(version)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from exc
    nodes = data.get("nodes") or []
    if not nodes:
        raise ScenarioError("a scenario needs at least one node under 'nodes'")
    store = data.get("store")
    if store not in (None, "etcd", "memory"):
        raise ScenarioError(f"store must be etcd or memory, got {store!r}")
    return Scenario(
        name=data.get("name", default_name),
        version=version,
        nodes=nodes,
        objects=data.get("objects") or [],
        faults=data.get("faults") or {},
        seed=int(data.get("seed", 0)),
        machines=data.get("machines"),
        store=store,
    )


def generate_large(spec: str) -> Scenario:
    """`large:NODES:PODS_PER_NODE[:MACHINES][:etcd]`: the control plane and the first MACHINES-1
    workers are machines (none by default, so the throughput benchmarks measure the API alone);
    the objects stay in memory unless `etcd` asks for the control plane's etcd (MACHINES >= 1)."""
    parts = spec.split(":")
    store = "memory"  # these measure the API and the machines' start-up, which etcd would only slow
    if parts[-1] == "etcd":
        store, parts = "etcd", parts[:-1]
    try:
        _, nodes_text, pods_text, *machines_text = parts
        node_count, pods_per_node = int(nodes_text), int(pods_text)
        machine_count = int(machines_text[0]) if machines_text else 0
        if len(machines_text) > 1:
            raise ValueError(spec)
    except ValueError as exc:
        raise ScenarioError(f"expected large:NODES:PODS_PER_NODE[:MACHINES][:etcd], got {spec!r}") from exc
    if node_count < 1 or pods_per_node < 0 or not 0 <= machine_count <= node_count:
        raise ScenarioError("large:NODES:PODS_PER_NODE[:MACHINES] needs NODES >= 1, PODS_PER_NODE >= 0 and "
                            "0 <= MACHINES <= NODES")
    if store == "etcd" and machine_count < 1:
        raise ScenarioError("large:...:etcd needs MACHINES >= 1: the control plane's machine runs the etcd")
    nodes = [{"name": "controlplane", "controlPlane": True, "tainted": True}]
    nodes += [{"name": f"node{i:04d}", "pods": max(110, pods_per_node + 10)}
              for i in range(1, node_count)]
    for index, node in enumerate(nodes):
        node["machine"] = index < machine_count
    workers = max(1, node_count - 1)
    total = workers * pods_per_node
    # One deployment per 100 pods keeps owners realistic without one giant ReplicaSet.
    objects = []
    for index in range(0, total, 100):
        objects.append(deployment(f"app-{index // 100:04d}", min(100, total - index)))
    return Scenario(name=f"large-{node_count}-{pods_per_node}", version="v1.19.0",
                    nodes=nodes, objects=objects, machines={} if machine_count else False, store=store)


def deployment(name: str, replicas: int, namespace: str = "default", image: str = "nginx") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def node_address(index: int) -> str:
    """A node's address in a lab without machines (with machines, lab/machines/addresses.py picks them)."""
    return str(ipaddress.ip_address("127.0.1.1") + index)


def build_nodes(scenario: Scenario, addresses: dict[str, str] | None = None,
                node_info: dict[str, dict] | None = None) -> list[dict]:
    """The scenario's nodes; `addresses` and `node_info` (osImage, kernelVersion) come from their machines."""
    addresses = addresses or {}
    built = []
    for index, spec in enumerate(scenario.nodes):
        name = spec["name"]
        version = spec.get("version", scenario.version)
        control_plane = bool(spec.get("controlPlane"))
        taints = copy.deepcopy(spec.get("taints") or [])
        if control_plane and spec.get("tainted"):
            role = o.control_plane_roles(version)[-1]
            taints.append({"key": f"node-role.kubernetes.io/{role}", "effect": "NoSchedule"})
        node = o.node(
            name, version=version, address=addresses.get(name) or spec.get("address") or node_address(index),
            control_plane=control_plane, taints=taints, labels=spec.get("labels"),
            pods=int(spec.get("pods", 110)), index=index,
        )
        node["status"]["nodeInfo"].update((node_info or {}).get(name, {}))
        if spec.get("ready") is False:
            o.set_node_ready(node, False)
        if spec.get("unschedulable"):
            node["spec"]["unschedulable"] = True
        built.append(node)
    return built


def static_pods(node: dict, version: str) -> list[dict]:
    """The mirror pods of kubeadm's control-plane static pods: the same manifests a control-plane
    machine has in /etc/kubernetes/manifests, so its kubelet finds them already there."""
    manifests_by_file = manifests.static_pod_manifests(node["metadata"]["name"], o.node_address(node), version)
    return [manifests.mirror_pod(manifest, node) for manifest in manifests_by_file.values()]
