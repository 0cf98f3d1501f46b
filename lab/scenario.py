"""Scenarios: a YAML description of nodes and workloads, or the `large:N:P` generator."""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lab import objects as o
from lab.versions import parse

SCENARIO_DIR = Path(__file__).parent / "scenarios"
ETCD_VERSIONS = {19: "3.4.13-0", 20: "3.4.13-0", 21: "3.4.13-0", 22: "3.5.0-0"}
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


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


def available() -> list[str]:
    return [*sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")), "large:NODES:PODS_PER_NODE"]


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
    return Scenario(
        name=data.get("name", default_name),
        version=version,
        nodes=nodes,
        objects=data.get("objects") or [],
        faults=data.get("faults") or {},
        seed=int(data.get("seed", 0)),
    )


def generate_large(spec: str) -> Scenario:
    try:
        _, nodes_text, pods_text = spec.split(":")
        node_count, pods_per_node = int(nodes_text), int(pods_text)
    except ValueError as exc:
        raise ScenarioError(f"expected large:NODES:PODS_PER_NODE, got {spec!r}") from exc
    if node_count < 1 or pods_per_node < 0:
        raise ScenarioError("large:NODES:PODS_PER_NODE needs NODES >= 1 and PODS_PER_NODE >= 0")
    nodes = [{"name": "controlplane", "controlPlane": True, "tainted": True}]
    nodes += [{"name": f"node{i:04d}", "pods": max(110, pods_per_node + 10)}
              for i in range(1, node_count)]
    workers = max(1, node_count - 1)
    total = workers * pods_per_node
    # One deployment per 100 pods keeps owners realistic without one giant ReplicaSet.
    objects = []
    for index in range(0, total, 100):
        objects.append(deployment(f"app-{index // 100:04d}", min(100, total - index)))
    return Scenario(name=f"large-{node_count}-{pods_per_node}", version="v1.19.0",
                    nodes=nodes, objects=objects)


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
    """Nodes get loopback addresses so that later SSH shims can listen on them."""
    return str(ipaddress.ip_address("127.0.1.1") + index)


def build_nodes(scenario: Scenario) -> list[dict]:
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
            name, version=version, address=spec.get("address") or node_address(index),
            control_plane=control_plane, taints=taints, labels=spec.get("labels"),
            pods=int(spec.get("pods", 110)), index=index,
        )
        if spec.get("ready") is False:
            o.set_node_ready(node, False)
        if spec.get("unschedulable"):
            node["spec"]["unschedulable"] = True
        built.append(node)
    return built


def static_pods(node: dict, version: str) -> list[dict]:
    """kubeadm's control-plane static pods as the kubelet mirrors them into the API."""
    name = node["metadata"]["name"]
    minor = parse(version)[1]
    registry = "k8s.gcr.io" if minor < 25 else "registry.k8s.io"
    pods = []
    for component in CONTROL_PLANE_COMPONENTS:
        tag = ETCD_VERSIONS.get(minor, "3.5.9-0") if component == "etcd" else version
        pod = o.new_pod(
            {
                "name": f"{component}-{name}",
                "namespace": "kube-system",
                "labels": {"component": component, "tier": "control-plane"},
                "annotations": {
                    o.MIRROR_ANNOTATION: o.random_suffix(32),
                    "kubernetes.io/config.hash": o.random_suffix(32),
                    "kubernetes.io/config.source": "file",
                },
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name,
                    "uid": node["metadata"]["uid"], "controller": True,
                }],
            },
            {
                "nodeName": name,
                "hostNetwork": True,
                "priorityClassName": "system-node-critical",
                "priority": 2000001000,
                "containers": [{"name": component, "image": f"{registry}/{component}:{tag}",
                                "command": [component]}],
                "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
            },
        )
        o.mark_running(pod, node, o.node_address(node))
        pods.append(pod)
    return pods
