"""status: nodes, control-plane versions and version-skew warnings (read-only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import READ_ONLY, Asking, NoOptions, Operation
from bot.domain.skew import NodeVersions, SkewWarning, check_skew
from bot.domain.text import MAX_LINE_CHARS, MAX_MESSAGE_CHARS, clip, escape, fit


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: bool
    schedulable: bool
    roles: tuple[str, ...]
    kubelet: str
    pods: int


@dataclass(frozen=True)
class ComponentView:
    component: str  # "kube-apiserver"
    where: str  # the control-plane node it runs on
    version: str


def answer_status(asking: Asking, options: NoOptions) -> str:
    snapshot = kube.read_snapshot(asking.resources["kube"], budgets=False)
    settings = asking.settings
    return status_report(snapshot, settings.supported_latest_minor, settings.supported_minor_count)


def status_report(snapshot: ClusterSnapshot, supported_latest_minor: int, supported_minors: int = 3) -> str:
    components = snapshot.component_versions()
    nodes = [NodeView(n.name, n.ready, n.schedulable, n.roles, n.kubelet, len(snapshot.pods_on(n.name)))
             for n in sorted(snapshot.nodes.values(), key=lambda n: n.name)]
    views = [ComponentView(component, node, version)
             for component, found in components.items() for node, version in found]
    warnings = check_skew(
        dict(components["kube-apiserver"]),
        [NodeVersions(n.name, n.kubelet, n.kube_proxy) for n in snapshot.nodes.values()],
        dict(components["kube-controller-manager"]),
        dict(components["kube-scheduler"]),
        supported_latest_minor,
        supported_minors,
    )
    return status_text(nodes, views, warnings)


def status_text(nodes: Sequence[NodeView], components: Sequence[ComponentView], warnings: Sequence[SkewWarning]) -> str:
    """A node table, control-plane versions, then skew warnings."""
    ready = sum(node.ready for node in nodes)
    cordoned = sum(not node.schedulable for node in nodes)
    pods = sum(node.pods for node in nodes)
    summary = (
        f"*Cluster status*: {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
        f"({ready} ready, {cordoned} cordoned), {pods} pod{'s' if pods != 1 else ''}"
    )
    parts = [summary, _node_table(nodes, budget=2000)]
    if components:
        lines = [f"• {escape(c.component)} {escape(c.version)} on {escape(c.where)}" for c in components]
        parts.append("*Control plane*\n" + "\n".join(fit(lines, 600, "components")))
    used = sum(len(part) + 1 for part in parts)
    if warnings:
        lines = [clip(f"⚠️ {escape(w.message)}", MAX_LINE_CHARS * 2) for w in warnings]
        parts.append("*Warnings*\n" + "\n".join(fit(lines, MAX_MESSAGE_CHARS - used - 20, "warnings")))
    else:
        parts.append("No version-skew warnings.")
    return clip("\n".join(parts), MAX_MESSAGE_CHARS)


def _node_table(nodes: Sequence[NodeView], budget: int) -> str:
    if not nodes:
        return "No nodes found."
    header = ("NODE", "READY", "SCHEDULING", "ROLES", "KUBELET", "PODS")
    rows = [
        (node.name, "yes" if node.ready else "NO", "enabled" if node.schedulable else "cordoned",
         ",".join(node.roles) or "-", node.kubelet, str(node.pods))
        for node in nodes
    ]
    widths = [min(40, max(len(row[i]) for row in [header, *rows])) for i in range(len(header))]
    lines = ["  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    fitted = fit([escape(line) for line in lines], budget - 8, "nodes")
    return "```\n" + "\n".join(fitted) + "\n```"


STATUS = Operation(
    name="status", words="status", policy=READ_ONLY, needs=("kube",),
    description="show nodes, component versions and version-skew warnings",
    answer=answer_status,
)
