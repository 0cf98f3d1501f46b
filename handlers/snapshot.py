"""A read-only picture of the cluster that planners work on (pure: built from API JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    schedulable: bool
    roles: tuple[str, ...]
    kubelet: str
    kube_proxy: str
    taints: tuple[Taint, ...]
    pod_capacity: int
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    node: str
    phase: str
    ready: bool
    owner: Owner | None  # the controller ownerReference, if any
    mirror: bool  # a static pod's mirror: the kubelet owns it, the API cannot evict it
    terminating: bool
    emptydir_volumes: tuple[str, ...]
    grace_period: int
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    tolerations: tuple[dict, ...] = field(default=(), compare=False, hash=False)
    node_selector: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    images: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: dict[str, NodeInfo]
    pods: tuple[PodInfo, ...]

    def pods_on(self, node: str) -> list[PodInfo]:
        return [p for p in self.pods if p.node == node]

    def component_versions(self) -> dict[str, list[tuple[str, str]]]:
        """(node, version) per control-plane component, read from the static pods' image tags."""
        found: dict[str, list[tuple[str, str]]] = {c: [] for c in CONTROL_PLANE_COMPONENTS}
        for pod in self.pods:
            if pod.namespace != "kube-system" or not pod.mirror:
                continue
            for component in CONTROL_PLANE_COMPONENTS:
                if pod.name == f"{component}-{pod.node}" and pod.images:
                    found[component].append((pod.node, pod.images[0].rsplit(":", 1)[-1]))
        return found


def node_from_api(obj: dict) -> NodeInfo:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    labels = meta.get("labels") or {}
    roles = sorted(
        label.removeprefix("node-role.kubernetes.io/")
        for label in labels if label.startswith("node-role.kubernetes.io/")
    )
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    info = status.get("nodeInfo") or {}
    return NodeInfo(
        name=meta["name"],
        ready=ready,
        schedulable=not spec.get("unschedulable", False),
        roles=tuple(roles),
        kubelet=info.get("kubeletVersion", ""),
        kube_proxy=info.get("kubeProxyVersion", ""),
        taints=tuple(
            Taint(t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in spec.get("taints") or []
        ),
        pod_capacity=int((status.get("allocatable") or {}).get("pods", "110")),
        labels=dict(labels),
    )


def pod_from_api(obj: dict) -> PodInfo:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    controllers = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
    owner = None
    if controllers:
        owner = Owner(controllers[0]["kind"], controllers[0]["name"], controllers[0].get("uid", ""))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return PodInfo(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        uid=meta.get("uid", ""),
        node=spec.get("nodeName") or "",
        phase=status.get("phase", "Unknown"),
        ready=ready,
        owner=owner,
        mirror=MIRROR_ANNOTATION in (meta.get("annotations") or {}),
        terminating=bool(meta.get("deletionTimestamp")),
        emptydir_volumes=tuple(v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v),
        grace_period=int(spec.get("terminationGracePeriodSeconds", 30)),
        labels=dict(meta.get("labels") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        node_selector=dict(spec.get("nodeSelector") or {}),
        images=tuple(c.get("image", "") for c in spec.get("containers") or []),
    )


def snapshot_from_api(nodes: list[dict], pods: list[dict]) -> ClusterSnapshot:
    return ClusterSnapshot(
        nodes={n.name: n for n in map(node_from_api, nodes)},
        pods=tuple(map(pod_from_api, pods)),
    )
