"""A read-only picture of the cluster that planners work on (pure: built from API JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.domain.selectors import LabelSelector

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
    address: str | None = None  # the InternalIP: where the bot reaches the node over SSH by default


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
class PDBInfo:
    """A PodDisruptionBudget with the status the disruption controller last wrote."""

    namespace: str
    name: str
    # None: no selector, which matches no pod; an empty selector matches every pod of the namespace (policy/v1).
    selector: LabelSelector | None
    min_available: int | str | None
    max_unavailable: int | str | None
    current_healthy: int
    desired_healthy: int
    disruptions_allowed: int
    expected_pods: int

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def covers(self, pod: PodInfo) -> bool:
        return self.selector is not None and pod.namespace == self.namespace and self.selector.matches(pod.labels)


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: dict[str, NodeInfo]
    pods: tuple[PodInfo, ...]
    pdbs: tuple[PDBInfo, ...] = ()
    # "namespace/name" of every DaemonSet; None when they were not read (then none counts as missing).
    daemonsets: frozenset[str] | None = None

    def pods_on(self, node: str) -> list[PodInfo]:
        return [p for p in self.pods if p.node == node]

    def pdbs_covering(self, pod: PodInfo) -> list[PDBInfo]:
        return [pdb for pdb in self.pdbs if pdb.covers(pod)]

    def daemonset_exists(self, namespace: str, name: str) -> bool:
        return self.daemonsets is None or f"{namespace}/{name}" in self.daemonsets

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
        address=next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
                     None),
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


def _int_or_percent(value: object) -> int | str | None:
    if value is None or isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else text


def pdb_from_api(obj: dict) -> PDBInfo:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    return PDBInfo(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        selector=None if selector is None else LabelSelector.from_api(selector),
        min_available=_int_or_percent(spec.get("minAvailable")),
        max_unavailable=_int_or_percent(spec.get("maxUnavailable")),
        current_healthy=int(status.get("currentHealthy", 0)),
        desired_healthy=int(status.get("desiredHealthy", 0)),
        disruptions_allowed=int(status.get("disruptionsAllowed", 0)),
        expected_pods=int(status.get("expectedPods", 0)),
    )


def snapshot_from_api(
    nodes: list[dict], pods: list[dict], pdbs: Iterable[dict] = (), daemonsets: Iterable[dict] | None = None
) -> ClusterSnapshot:
    """`daemonsets` None means "not read": callers that only need nodes and pods keep working."""
    return ClusterSnapshot(
        nodes={n.name: n for n in map(node_from_api, nodes)},
        pods=tuple(map(pod_from_api, pods)),
        pdbs=tuple(map(pdb_from_api, pdbs)),
        daemonsets=None if daemonsets is None else frozenset(
            f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}" for d in daemonsets
        ),
    )
