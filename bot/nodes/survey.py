"""Read-only questions to the nodes for `status`: one node's facts, or one short question to many
nodes at once under a single time cap.

A node that does not answer in time (powered off, a hung sshd, a slow disk) costs the others
nothing: it comes back as a `NodeAnswer` with a problem instead of a value, and its thread is left
to finish on its own (bounded by the command deadline and the connect timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from bot.nodes.errors import NodeError
from bot.nodes.facts import MachineFacts, facts_script, parse_facts
from bot.nodes.shell import JobContext, NodeShell

T = TypeVar("T")
log = structlog.get_logger("kubemaint.nodes")
MAX_PARALLEL = 32  # connections opened at once; a cluster with more nodes is asked in waves

# Whether the node asks for a reboot, and which packages asked (Debian's update-notifier files).
REBOOT_SCRIPT = ["sh", "-c", "if [ -f /var/run/reboot-required ]; then echo yes; "
                             "cat /var/run/reboot-required.pkgs 2>/dev/null; else echo no; fi"]


@dataclass(frozen=True)
class RebootNeed:
    required: bool
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeAnswer(Generic[T]):
    node: str
    value: T | None = None
    problem: str | None = None  # why there is no value: the node's error, or "no answer within 2s"


def parse_reboot_need(output: str) -> RebootNeed:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines or lines[0] not in ("yes", "no"):
        raise ValueError(f"unexpected answer: {output[:80]!r}")
    return RebootNeed(lines[0] == "yes", tuple(lines[1:]))


def read_facts(shell: NodeShell, node: str, address: str | None, *, deadline: float, job: JobContext
               ) -> MachineFacts:
    """The node's OS, kernel, boot time, Kubernetes packages, repo, pending updates and reboot need."""
    return parse_facts(shell.run(node, facts_script(), address=address, deadline=deadline, job=job).stdout)


def ask_nodes(shell: NodeShell, nodes: Mapping[str, str | None], argv: list[str], parse: Callable[[str], T], *,
              cap_seconds: float, job: JobContext) -> dict[str, NodeAnswer[T]]:
    """Run `argv` on every node (name -> InternalIP) at once; whatever has not answered `cap_seconds`
    after the start is reported as such."""
    if not nodes:
        return {}
    started = time.monotonic()

    def one(node: str) -> NodeAnswer[T]:
        try:
            result = shell.run(node, argv, address=nodes[node], deadline=cap_seconds, job=job)
            return NodeAnswer(node, value=parse(result.stdout))
        except NodeError as error:
            return NodeAnswer(node, problem=str(error))
        except ValueError as error:
            return NodeAnswer(node, problem=f"{node}: {error}")

    pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(nodes)), thread_name_prefix="node-survey")
    try:
        futures = {node: pool.submit(one, node) for node in nodes}
        wait(futures.values(), timeout=max(0.0, cap_seconds - (time.monotonic() - started)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # the late ones finish on their own
    return {node: _answer(node, future, cap_seconds) for node, future in futures.items()}


def _answer(node: str, future: Future, cap_seconds: float) -> NodeAnswer:
    if not future.done() or future.cancelled():
        return NodeAnswer(node, problem=f"{node}: no answer within {cap_seconds:g}s")
    error = future.exception()
    if error is not None:  # a fault of ours: shown by its type only (its text could quote output)
        log.error("node.survey_failed", node=node, error=type(error).__name__)
        return NodeAnswer(node, problem=f"{node}: could not be asked ({type(error).__name__})")
    return future.result()
