"""Reaching every node once, for `kubemaint check-config --nodes`: the host key, the login and sudo,
each node checked on its own (concurrently) so that one bad node does not hide the others."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.nodes.errors import NodeError
from bot.nodes.shell import JobRef, NodeShell

CHECK_DEADLINE_SECONDS = 20
MAX_PARALLEL = 16
CHECKED_BY = JobRef(job_id=None, requester="check-config")


@dataclass(frozen=True)
class NodeCheck:
    node: str
    address: str | None
    problem: str | None = None  # "host key: ...", "auth: ...", "sudo: ..."
    stage: str | None = None
    summary: str = ""  # what worked

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_node(shell: NodeShell, node: str, address: str | None) -> NodeCheck:
    """Log in and run `true`, then `sudo -n true` unless the user is root."""
    try:
        target = shell.address_of(node, address)
    except NodeError as error:
        return NodeCheck(node, None, str(error), error.stage)
    try:
        shell.run(node, ["true"], address=target, deadline=CHECK_DEADLINE_SECONDS, job=CHECKED_BY)
        seen = shell.connection(node, target).host_key
        key = f"host key {seen.key_type} {seen.fingerprint}" if seen else "host key trusted"
        done = f"{key}, logged in as {shell.config.user}"
        if shell.config.is_root:
            return NodeCheck(node, target, summary=f"{done} (root: no sudo needed)")
        shell.run(node, ["true"], address=target, sudo=True, deadline=CHECK_DEADLINE_SECONDS, job=CHECKED_BY)
        return NodeCheck(node, target, summary=f"{done}, sudo -n works")
    except NodeError as error:
        return NodeCheck(node, target, str(error), error.stage)


def check_nodes(shell: NodeShell, nodes: Mapping[str, str | None]) -> list[NodeCheck]:
    """Every node in `nodes` (name -> InternalIP or None), in name order."""
    names = sorted(nodes)
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names)), thread_name_prefix="node-check") as pool:
        return list(pool.map(lambda name: check_node(shell, name, nodes[name]), names))


def report(checks: list[NodeCheck]) -> list[str]:
    """One line per node: what worked, or which stage failed and why."""
    lines = []
    for check in checks:
        where = check.address or "-"
        if check.ok:
            lines.append(f"  {check.node} {where}: OK: {check.summary}")
        else:
            lines.append(f"  {check.node} {where}: {check.stage}: {check.problem}")
    return lines
