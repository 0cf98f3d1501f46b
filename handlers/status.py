"""status: nodes, control-plane versions and version-skew warnings (read-only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import READ_ONLY, Asking, NoOptions, Operation
from bot.domain.skew import NodeVersions, SkewWarning, check_skew
from bot.domain.text import MAX_LINE_CHARS, MAX_MESSAGE_CHARS, clip, escape, fit
from handlers.common import node_shell

# The nodes are asked at once; one that has not answered by then shows "?" (status must stay quick).
REBOOT_CHECK_SECONDS = 3.0


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: bool
    schedulable: bool
    roles: tuple[str, ...]
    kubelet: str
    pods: int
    reboot: str = ""  # "yes", "no", "?" (no answer), "" (not asked)


@dataclass(frozen=True)
class RebootNeeds:
    """What the nodes said about "reboot required" (by node), and why some said nothing."""

    required: Mapping[str, bool]
    problems: Mapping[str, str]
    not_asked: str | None = None  # why nobody was asked

    def marker(self, node: str) -> str:
        if node in self.required:
            return "yes" if self.required[node] else "no"
        return "?" if node in self.problems else ""

    def notes(self) -> list[str]:
        if self.not_asked:
            return [self.not_asked]
        return [f"REBOOT ? {problem}" for _, problem in sorted(self.problems.items())]


@dataclass(frozen=True)
class ComponentView:
    component: str  # "kube-apiserver"
    where: str  # the control-plane node it runs on
    version: str


def answer_status(asking: Asking, options: NoOptions) -> str:
    snapshot = kube.read_snapshot(asking.resources["kube"], budgets=False)
    settings = asking.settings
    reboots = reboot_needs(asking, snapshot)
    return status_report(snapshot, settings.supported_latest_minor, settings.supported_minor_count, reboots)


def reboot_needs(asking: Asking, snapshot: ClusterSnapshot) -> RebootNeeds:
    """Every node's "reboot required", asked over SSH at once; what does not answer in time is "?"."""
    from bot.nodes import JobRef
    from bot.nodes.survey import REBOOT_SCRIPT, ask_nodes, parse_reboot_need

    shell, reason = node_shell(asking.resources)
    if shell is None:
        return RebootNeeds({}, {}, f"Reboot required: {reason}")
    answers = ask_nodes(shell, {n.name: n.address for n in snapshot.nodes.values()}, REBOOT_SCRIPT,
                        parse_reboot_need, cap_seconds=REBOOT_CHECK_SECONDS,
                        job=JobRef(job_id=None, requester=asking.user))
    return RebootNeeds({node: answer.value.required for node, answer in answers.items() if answer.value},
                       {node: answer.problem for node, answer in answers.items() if answer.problem})


def status_report(snapshot: ClusterSnapshot, supported_latest_minor: int, supported_minors: int = 3,
                  reboots: RebootNeeds | None = None) -> str:
    components = snapshot.component_versions()
    reboots = reboots or RebootNeeds({}, {})
    nodes = [NodeView(n.name, n.ready, n.schedulable, n.roles, n.kubelet, len(snapshot.pods_on(n.name)),
                      reboots.marker(n.name))
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
    return status_text(nodes, views, warnings, reboots.notes())


def status_text(nodes: Sequence[NodeView], components: Sequence[ComponentView], warnings: Sequence[SkewWarning],
                reboot_notes: Sequence[str] = ()) -> str:
    """A node table (with why a node's reboot need is "?"), control-plane versions, then skew warnings."""
    ready = sum(node.ready for node in nodes)
    cordoned = sum(not node.schedulable for node in nodes)
    pods = sum(node.pods for node in nodes)
    summary = (
        f"*Cluster status*: {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
        f"({ready} ready, {cordoned} cordoned), {pods} pod{'s' if pods != 1 else ''}"
    )
    parts = [summary, _node_table(nodes, budget=2000)]
    if reboot_notes:
        parts.append("\n".join(fit([clip(escape(note), 240) for note in reboot_notes], 700, "nodes")))
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
    header = ("NODE", "READY", "SCHEDULING", "ROLES", "KUBELET", "PODS", "REBOOT")
    rows = [
        (node.name, "yes" if node.ready else "NO", "enabled" if node.schedulable else "cordoned",
         ",".join(node.roles) or "-", node.kubelet, str(node.pods), node.reboot)
        for node in nodes
    ]
    if not any(node.reboot for node in nodes):  # not asked (no ssh section): no empty column
        header, rows = header[:-1], [row[:-1] for row in rows]
    widths = [min(40, max(len(row[i]) for row in [header, *rows])) for i in range(len(header))]
    lines = ["  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    fitted = fit([escape(line) for line in lines], budget - 8, "nodes")
    return "```\n" + "\n".join(fitted) + "\n```"


STATUS = Operation(
    name="status", words="status", policy=READ_ONLY, needs=("kube", "ssh"),
    description="show nodes (and which need a reboot), component versions and version-skew warnings",
    answer=answer_status,
)
