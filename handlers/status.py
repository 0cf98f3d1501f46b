"""status: nodes, control-plane versions and version-skew warnings (read-only).

Up to SUMMARY_ABOVE nodes the answer is one table of every node. Above that a table is no use in
chat (a 2,000-node fleet showed its first 25 rows), so the answer counts the nodes by state and
kubelet version, lists the nodes that need attention (not ready, cordoned, named by a skew warning,
needing a reboot) up to ATTENTION_LIMIT, and attaches the full table as a file. `status --all`
posts the full table in the thread instead, as many messages as it takes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import READ_ONLY, Answer, Asking, Attachment, Operation, flag
from bot.domain.skew import NodeVersions, SkewWarning, check_skew
from bot.domain.text import MAX_LINE_CHARS, MAX_MESSAGE_CHARS, clip, escape, fit
from handlers.common import node_shell

# The nodes are asked at once; one that has not answered by then shows "?" (status must stay quick).
REBOOT_CHECK_SECONDS = 3.0
SUMMARY_ABOVE = 50  # nodes; up to this many, one table of every node (unchanged since the first release)
ATTENTION_LIMIT = 20  # rows of the "needs attention" table; the rest are in the file and `status --all`
TABLE_FILENAME = "cluster-status.txt"


@dataclass(frozen=True)
class StatusOptions:
    all: bool = flag(help="every node's row, in as many messages as it takes")


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


def answer_status(asking: Asking, options: StatusOptions) -> str | Answer:
    snapshot, pods = kube.read_status(asking.resources["kube"])
    settings = asking.settings
    reboots = reboot_needs(asking, snapshot)
    return status_answer(snapshot, settings.supported_latest_minor, settings.supported_minor_count, reboots,
                         every_node=options.all, pods_per_node=pods)


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
    """The one-message answer: every node's row (as much of the table as fits)."""
    nodes, views, warnings, reboots = _views(snapshot, supported_latest_minor, supported_minors, reboots)
    return status_text(nodes, views, warnings, reboots.notes())


def status_answer(snapshot: ClusterSnapshot, supported_latest_minor: int, supported_minors: int = 3,
                  reboots: RebootNeeds | None = None, *, every_node: bool = False,
                  pods_per_node: Mapping[str, int] | None = None) -> str | Answer:
    """The table up to SUMMARY_ABOVE nodes, the summary with the full table attached above; with
    `every_node`, the full table page by page. `pods_per_node`: the counts, when the snapshot holds
    only some pods (bot/cluster/kube.py read_status)."""
    nodes, views, warnings, reboots = _views(snapshot, supported_latest_minor, supported_minors, reboots,
                                             pods_per_node)
    if every_node:
        return every_node_pages(nodes)
    if len(nodes) <= SUMMARY_ABOVE:
        return status_text(nodes, views, warnings, reboots.notes())
    return Answer(summary_text(nodes, views, warnings, reboots.notes()),
                  files=(Attachment(TABLE_FILENAME, f"Cluster status: {len(nodes)} nodes", table_file(nodes)),))


def _views(snapshot: ClusterSnapshot, supported_latest_minor: int, supported_minors: int,
           reboots: RebootNeeds | None, pods_per_node: Mapping[str, int] | None = None,
           ) -> tuple[list[NodeView], list[ComponentView], list[SkewWarning], RebootNeeds]:
    components = snapshot.component_versions()
    reboots = reboots or RebootNeeds({}, {})
    if pods_per_node is None:
        # One pass over the pods: asking `pods_on` per node was nodes x pods (40 million steps at 2,000 nodes).
        pods_per_node = Counter(pod.node for pod in snapshot.pods if pod.node)
    nodes = [NodeView(n.name, n.ready, n.schedulable, n.roles, n.kubelet, pods_per_node.get(n.name, 0),
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
    return nodes, views, warnings, reboots


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
    fitted = fit([escape(line) for line in table_lines(nodes)], budget - 8, "nodes")
    return "```\n" + "\n".join(fitted) + "\n```"


def table_lines(nodes: Sequence[NodeView]) -> list[str]:
    """The node table as plain lines, header first (not escaped: a file is not mrkdwn)."""
    header = ("NODE", "READY", "SCHEDULING", "ROLES", "KUBELET", "PODS", "REBOOT")
    rows = [
        (node.name, "yes" if node.ready else "NO", "enabled" if node.schedulable else "cordoned",
         ",".join(node.roles) or "-", node.kubelet, str(node.pods), node.reboot)
        for node in nodes
    ]
    if not any(node.reboot for node in nodes):  # not asked (no ssh section): no empty column
        header, rows = header[:-1], [row[:-1] for row in rows]
    widths = [min(40, max(len(row[i]) for row in [header, *rows])) for i in range(len(header))]
    return ["  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def _headline(nodes: Sequence[NodeView]) -> str:
    ready = sum(node.ready for node in nodes)
    cordoned = sum(not node.schedulable for node in nodes)
    pods = sum(node.pods for node in nodes)
    reboot = sum(node.reboot == "yes" for node in nodes)
    counts = [f"{ready} ready", f"{len(nodes) - ready} not ready", f"{cordoned} cordoned"]
    if any(node.reboot for node in nodes):  # asked over SSH
        counts.append(f"{reboot} need{'s' if reboot == 1 else ''} a reboot")
    return (f"*Cluster status*: {len(nodes)} node{'s' if len(nodes) != 1 else ''} ({', '.join(counts)}), "
            f"{pods} pod{'s' if pods != 1 else ''}")


def skewed_nodes(nodes: Sequence[NodeView], warnings: Sequence[SkewWarning]) -> set[str]:
    """The nodes a skew warning names on its own (a kubelet too old or newer than the API server). A
    version the whole fleet shares is one warning about many nodes: the fleet needs an upgrade, and no
    node stands out, so such a warning marks none."""
    names = {node.name for node in nodes}
    return {w.subject for w in warnings if w.subject in names}


def attention(nodes: Sequence[NodeView], skewed: set[str]) -> list[tuple[NodeView, str]]:
    """The nodes someone should look at, with why, in name order."""
    found = []
    for node in nodes:
        why = [reason for reason, applies in (("not ready", not node.ready), ("cordoned", not node.schedulable),
                                              ("version skew", node.name in skewed),
                                              ("reboot required", node.reboot == "yes")) if applies]
        if why:
            found.append((node, ", ".join(why)))
    return found


def summary_text(nodes: Sequence[NodeView], components: Sequence[ComponentView], warnings: Sequence[SkewWarning],
                 reboot_notes: Sequence[str] = (), limit: int = ATTENTION_LIMIT) -> str:
    """A fleet in one message: counts by state and kubelet version, the nodes that need attention (at
    most `limit` of them), control-plane versions and skew warnings. The full table goes in a file."""
    kubelets = Counter(node.kubelet for node in nodes)
    versions = ", ".join(f"{escape(version)} on {count}" for version, count in
                         sorted(kubelets.items(), key=lambda item: (-item[1], item[0])))
    parts = [_headline(nodes), clip(f"*Kubelet versions*: {versions}", 600)]
    flagged = attention(nodes, skewed_nodes(nodes, warnings))
    if flagged:
        shown = flagged[:limit]
        lines = table_lines([node for node, _ in shown])
        width = max(len(line) for line in lines)
        rows = [lines[0].ljust(width) + "  WHY", *(line.ljust(width) + "  " + why
                                                   for line, (_, why) in zip(lines[1:], shown, strict=True))]
        more = (f"… and {len(flagged) - len(shown)} more: see the attached table or `status --all`"
                if len(flagged) > len(shown) else "")
        parts.append(f"*Needs attention*: {len(flagged)} node{'s' if len(flagged) != 1 else ''}\n```\n"
                     + "\n".join(escape(row) for row in rows) + "\n```" + (f"\n{more}" if more else ""))
    else:
        parts.append("*Needs attention*: none (every node is ready, schedulable and within the skew policy).")
    if reboot_notes:
        parts.append("\n".join(fit([clip(escape(note), 240) for note in reboot_notes], 500, "nodes")))
    if components:
        lines = [f"• {escape(c.component)} {escape(c.version)} on {escape(c.where)}" for c in components]
        parts.append("*Control plane*\n" + "\n".join(fit(lines, 400, "components")))
    footer = f"Every node's row is in the attached `{TABLE_FILENAME}`, or in this thread with `status --all`."
    used = sum(len(part) + 1 for part in parts) + len(footer) + 1
    if warnings:
        lines = [clip(f"⚠️ {escape(w.message)}", MAX_LINE_CHARS * 2) for w in warnings]
        parts.append("*Warnings*\n" + "\n".join(fit(lines, MAX_MESSAGE_CHARS - used - 20, "warnings")))
    else:
        parts.append("No version-skew warnings.")
    parts.append(footer)
    return clip("\n".join(parts), MAX_MESSAGE_CHARS)


def table_file(nodes: Sequence[NodeView]) -> str:
    """The attached file: the headline in plain words, then every node's row."""
    ready = sum(node.ready for node in nodes)
    cordoned = sum(not node.schedulable for node in nodes)
    return "\n".join([f"{len(nodes)} nodes: {ready} ready, {len(nodes) - ready} not ready, {cordoned} cordoned", "",
                      *table_lines(nodes)]) + "\n"


def every_node_pages(nodes: Sequence[NodeView], budget: int = MAX_MESSAGE_CHARS) -> Answer:
    """`status --all`: every node's row, the table cut into messages that each fit Slack's limit
    (each page repeats the header, so a page read alone still makes sense)."""
    if not nodes:
        return Answer("No nodes found.")
    header, *rows = [escape(line) for line in table_lines(nodes)]
    pages: list[list[str]] = [[]]
    room = budget - 200  # the page's own line and the code fence
    used = len(header) + 1
    for row in rows:
        if pages[-1] and used + len(row) + 1 > room:
            pages.append([])
            used = len(header) + 1
        pages[-1].append(row)
        used += len(row) + 1
    texts = []
    start = 1
    for number, page in enumerate(pages, start=1):
        where = f"nodes {start} to {start + len(page) - 1} of {len(nodes)}"
        title = _headline(nodes) + "\n" if number == 1 else ""
        texts.append(f"{title}Every node, page {number} of {len(pages)} ({where}):\n```\n"
                     + "\n".join([header, *page]) + "\n```")
        start += len(page)
    return Answer(texts[0], more=tuple(texts[1:]))


STATUS = Operation(
    name="status", words="status", options=StatusOptions, policy=READ_ONLY, needs=("kube", "ssh"),
    description="show nodes (and which need a reboot), component versions and version-skew warnings; above "
                f"{SUMMARY_ABOVE} nodes, counts and the nodes that need attention, with the full table attached",
    answer=answer_status,
)
