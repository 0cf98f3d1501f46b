"""status NODE: one node as the API sees it and as its machine says over SSH (read-only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import NodeInfo, PodInfo
from bot.contract import READ_ONLY, Asking, Operation
from bot.domain.text import MAX_MESSAGE_CHARS, clip, escape, fit
from bot.nodes.facts import MachineFacts, Pending
from handlers.common import group_pods, node_shell
from handlers.cordon import NodeOptions

# `apt-get -s upgrade` on a node that has not been updated for months takes a few seconds.
FACTS_DEADLINE_SECONDS = 20
PENDING_SHOWN = 10


def answer_node_status(asking: Asking, options: NodeOptions) -> str:
    snapshot = kube.read_snapshot(asking.resources["kube"], budgets=False, node=options.node)
    node = snapshot.nodes.get(options.node)
    if node is None:
        known = ", ".join(sorted(snapshot.nodes)) or "none"
        return f"node {escape(options.node)} not found; the cluster's nodes are: {escape(known)}"
    shell, reason = node_shell(asking.resources)
    if shell is None:
        return node_status_text(node, snapshot.pods_on(node.name), None, reason)
    facts, problem = machine_facts(shell, node, asking.user)
    # What a node prints is the node's text: a private mirror's password in its apt source stays there.
    return node_status_text(node, snapshot.pods_on(node.name), facts, problem, redact=shell.redact)


def machine_facts(shell: Any, node: NodeInfo, user: str) -> tuple[MachineFacts | None, str | None]:
    """The machine's facts, or None and why they could not be read (the API's view is shown anyway)."""
    from bot.nodes import JobRef, NodeError
    from bot.nodes.survey import read_facts

    # The configured deadline bounds every command; status asks for less when it is longer.
    deadline = min(FACTS_DEADLINE_SECONDS, shell.config.command_deadline_seconds)
    try:
        return read_facts(shell, node.name, node.address, deadline=deadline,
                          job=JobRef(job_id=None, requester=user)), None
    except NodeError as error:
        return None, f"not reached over SSH: {error}"


def node_status_text(node: NodeInfo, pods: Sequence[PodInfo], facts: MachineFacts | None,
                     problem: str | None, redact: Callable[[str], str] = str) -> str:
    """The API's view of the node, then its machine's (or why the machine was not read)."""
    parts = [_api_view(node, pods)]
    if facts is None:
        parts.append(f"*Machine*: {escape(problem or 'not read')}")
    else:
        parts.append(redact(_machine_view(node, facts)))
    return clip("\n".join(parts), MAX_MESSAGE_CHARS)


def _api_view(node: NodeInfo, pods: Sequence[PodInfo]) -> str:
    roles = ",".join(node.roles) or "worker"
    state = [
        "Ready" if node.ready else "*NotReady*",
        "schedulable" if node.schedulable else "*cordoned*",
        f"kubelet {node.kubelet or '?'}",
        f"InternalIP {node.address or 'none'}",
    ]
    lines = [f"*{escape(node.name)}* ({escape(roles)}): " + escape(", ".join(state))]
    taints = [f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in node.taints]
    lines.append(f"Taints: {escape(', '.join(taints)) if taints else 'none'}")
    running = [p for p in pods if p.phase not in ("Succeeded", "Failed")]
    if running:
        lines.append(f"*Pods* ({len(running)}):")
        lines.extend(fit([f"• {escape(line)}" for line in group_pods(running)], 1200, "workloads"))
    else:
        lines.append("No pods run there.")
    return "\n".join(lines)


def _machine_view(node: NodeInfo, facts: MachineFacts) -> str:
    lines = ["*Machine* (over SSH):",
             f"• {escape(facts.os_image)}, kernel {escape(facts.kernel or '?')}, "
             f"booted {escape(facts.booted or '?')} (node's local time)"]
    packages = [f"{name} {version}" + (" (held)" if name in facts.held else " (not held)")
                for name, version in sorted(facts.packages.items())]
    lines.append(f"• {escape(', '.join(packages)) if packages else 'no kubeadm, kubelet or kubectl package installed'}")
    lines.append(f"• Package repo: {escape(facts.repo) if facts.repo else 'none configured'}")
    restart = _kubelet_restart_note(node, facts)
    if restart:
        lines.append(f"• ⚠️ {escape(restart)}")
    lines.append(_pending_line(facts.pending))
    if facts.kept_back:
        lines.append(f"• Kept back (held): {escape(', '.join(facts.kept_back))}")
    if facts.reboot_required:
        asking = f" by {', '.join(facts.reboot_packages)}" if facts.reboot_packages else ""
        lines.append(f"• *Reboot required*{escape(asking)}")
    else:
        lines.append("• No reboot required.")
    return "\n".join(lines)


def _pending_line(pending: Sequence[Pending]) -> str:
    if not pending:
        return "• No pending updates."
    shown = [f"{p.package} {p.installed} → {p.candidate}" for p in pending[:PENDING_SHOWN]]
    more = f", and {len(pending) - PENDING_SHOWN} more" if len(pending) > PENDING_SHOWN else ""
    return f"• Pending updates ({len(pending)}): {escape(', '.join(shown))}{more}"


def _kubelet_restart_note(node: NodeInfo, facts: MachineFacts) -> str | None:
    """The seeds' lesson: the node reports the kubelet it runs, which is the installed package only
    after a restart of the kubelet."""
    installed = facts.packages.get("kubelet")
    if not installed or not node.kubelet:
        return None
    upstream = "v" + installed.split(":")[-1].split("-")[0]
    if upstream == node.kubelet:
        return None
    return (f"kubelet package {installed} is installed but the node reports {node.kubelet}: "
            "the kubelet runs the new version after `systemctl restart kubelet`")


NODE_STATUS = Operation(
    name="status-node", words="status NODE", options=NodeOptions, policy=READ_ONLY, needs=("kube", "ssh"),
    description="one node: the API's view and its machine's (OS, kernel, packages, updates, reboot)",
    answer=answer_node_status,
)
