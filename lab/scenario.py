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
    return [*sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")), "large:NODES:PODS_PER_NODE[:MACHINES][:etcd]",
            "upgrade-fleet:WORKERS"]


def load(spec: str) -> Scenario:
    """A scenario by name (lab/scenarios/NAME.yaml), by file path, or `large:N:P`."""
    if spec.startswith("large:"):
        return generate_large(spec)
    if spec.startswith("upgrade-fleet:"):
        return generate_upgrade_fleet(spec)
    path = Path(spec)
    if not path.suffix:
        path = SCENARIO_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise ScenarioError(f"unknown scenario {spec!r}; known: {', '.join(available())}")
    # libyaml's loader when PyYAML has it: a lab parses its scenario several times while it starts.
    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
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


FLEET_VERSION = "v1.28.15"


def generate_upgrade_fleet(spec: str) -> Scenario:
    """`upgrade-fleet:WORKERS`: a highly available kubeadm cluster to upgrade node by node. Three
    tainted control planes (controlplane-1..3) and WORKERS workers (node01, ...), every one a machine at
    v1.28.15 with pkgs.k8s.io's v1.28 repository (v1.29 needs the repository switched first);
    kube-proxy, CoreDNS, and a few Deployments over the workers (about two pods a worker), each with a
    PodDisruptionBudget that lets one pod go at a time, so draining one node at a time always ends."""
    try:
        _, workers_text = spec.split(":")
        workers = int(workers_text)
    except ValueError as exc:
        raise ScenarioError(f"expected upgrade-fleet:WORKERS, got {spec!r}") from exc
    if not 1 <= workers <= 200:
        raise ScenarioError("upgrade-fleet:WORKERS needs 1 <= WORKERS <= 200")
    nodes: list[dict] = [{"name": f"controlplane-{i}", "controlPlane": True, "tainted": True} for i in (1, 2, 3)]
    nodes += [{"name": f"node{i:02d}"} for i in range(1, workers + 1)]
    registry = manifests.registry(FLEET_VERSION)
    objects = [
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
         "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                  "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                               "spec": {"priorityClassName": "system-node-critical",
                                        "tolerations": [{"operator": "Exists"}],
                                        "containers": [{"name": "kube-proxy",
                                                        "image": f"{registry}/kube-proxy:{FLEET_VERSION}"}]}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                  "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                               "spec": {"priorityClassName": "system-cluster-critical",
                                        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                                        {"key": "node-role.kubernetes.io/control-plane",
                                                         "effect": "NoSchedule"}],
                                        "containers": [{"name": "coredns",
                                                        "image": f"{registry}/coredns/coredns:v1.10.1"}]}}}},
    ]
    apps = [("web", "shop", max(2, workers)), ("api", "shop", max(2, workers // 2)),
            ("cache", "shop", max(2, workers // 3)), ("reports", "back-office", max(2, workers // 4))]
    for name, namespace, replicas in apps:
        objects.append(deployment(name, replicas, namespace, "nginx:1.25"))
        budget = {"maxUnavailable": 1} if name != "api" else {"minAvailable": replicas - 1}
        objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": {"name": name, "namespace": namespace},
                        "spec": {**budget, "selector": {"matchLabels": {"app": name}}}})
    return Scenario(name=f"upgrade-fleet-{workers}", version=FLEET_VERSION, nodes=nodes, objects=objects,
                    seed=11, machines={"packageRepo": "pkgs"})


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


def kubeadm_config(version: str, endpoint: str) -> dict:
    """kube-system/kubeadm-config as `kubeadm init` uploads it: the ClusterConfiguration whose
    kubernetesVersion `kubeadm upgrade apply` updates and `kubeadm upgrade node` reads."""
    minor = parse(version)[1]
    api = "v1beta2" if minor < 22 else "v1beta3" if minor < 31 else "v1beta4"
    cluster = (f"apiServer:\n  extraArgs:\n    authorization-mode: Node,RBAC\n  timeoutForControlPlane: 4m0s\n"
               f"apiVersion: kubeadm.k8s.io/{api}\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\n"
               f"controlPlaneEndpoint: {endpoint}\ncontrollerManager: {{}}\ndns:\n  type: CoreDNS\netcd:\n  local:\n"
               f"    dataDir: /var/lib/etcd\nimageRepository: {manifests.registry(version)}\n"
               f"kind: ClusterConfiguration\n"
               f"kubernetesVersion: {version}\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n"
               f"  serviceSubnet: 10.96.0.0/12\nscheduler: {{}}\n")
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": cluster}}


def static_pods(node: dict, version: str) -> list[dict]:
    """The mirror pods of kubeadm's control-plane static pods: the same manifests a control-plane
    machine has in /etc/kubernetes/manifests, so its kubelet finds them already there."""
    manifests_by_file = manifests.static_pod_manifests(node["metadata"]["name"], o.node_address(node), version)
    return [manifests.mirror_pod(manifest, node) for manifest in manifests_by_file.values()]
