"""Taking nodes out of service and back, shared by upgrades, OS upgrades and reboots.

A step works on one node, or on a wave of nodes at once (a thread per node), through an operation's
phases (say cordon, drain, packages, reboot, back, uncordon). Each phase re-checks the node before it
acts and is recorded in the step's checkpoint when done, so a resumed or re-run step continues where
it stopped. The first failure stops every node of the step at its next phase boundary.

Two rules hold whatever the operation:
- a node is uncordoned only if this job cordoned it (a node someone cordoned before stays cordoned);
- a failed node stays as it is, and the message puts the way out first: which nodes stay cordoned and
  the `uncordon` that puts each back, then what was done on the failed node and why it stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import node_from_api
from bot.domain.text import clip
from bot.engine import JobCancelled, StepContext
from handlers.drain.plan import DrainOptions
from handlers.drain.run import DrainFailed, evict, forget_drain, wait_gone

COMMAND_SECONDS = 60
POLL_SECONDS = 0.5
CORDONED = "upgrade: cordoned"  # job data: the nodes this job cordoned (only those are uncordoned)
MAX_REASON_CHARS = 400  # per failed node: the failure must stay readable in the job's message

Phase = Callable[[], "str | None"]  # does the phase's work; returns a note for the step's detail, or None


class StepFailed(Exception):
    """A node step stopped; the message says what was done, why it stopped and the way out."""


@dataclass(frozen=True)
class Target:
    node: str
    address: str | None
    role: str  # "first" (kubeadm upgrade apply), "control-plane" or "worker"


class Board:
    """Where each node of a step stands, shown as one progress line."""

    def __init__(self, ctx: StepContext, nodes: list[str]) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._states = dict.fromkeys(nodes, "waiting")

    def say(self, node: str, detail: str) -> None:
        with self._lock:
            self._states[node] = detail
            line = (detail if len(self._states) == 1
                    else " · ".join(f"{name}: {state}" for name, state in self._states.items()))
        self._ctx.progress(line)


class NodeContext:
    """The step's context as one node's thread sees it: its progress goes to the board."""

    def __init__(self, ctx: StepContext, node: str, board: Board) -> None:
        self._ctx, self._node, self._board = ctx, node, board

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def progress(self, detail: str) -> None:
        self._board.say(self._node, detail)


# -- running the phases of one step ---------------------------------------------------------------------


def run_nodes(ctx: StepContext, targets: list[Target], order: tuple[str, ...],
              phases_of: Callable[[Any, Target], dict[str, Phase]], goal: str, reached: str = "",
              failure: type[StepFailed] = StepFailed) -> dict[str, str]:
    """Run every target's phases (in `order`), the targets at once; {node: what was done}. `goal` names
    the work in a failure ("on its way to v1.29.15", "during its reboot"), `reached` the outcome
    ("at v1.29.15"); `failure` is the exception the step fails with (its name heads the job's report)."""
    board = Board(ctx, [t.node for t in targets])
    stop = threading.Event()  # set by the first failure: the other nodes start no further phase
    results: dict[str, str] = {}
    failures: dict[str, BaseException] = {}

    def one(target: Target) -> None:
        node_ctx = NodeContext(ctx, target.node, board)
        try:
            results[target.node] = _run_phases(node_ctx, target, order, phases_of(node_ctx, target), stop, reached)
        except BaseException as error:
            failures[target.node] = error
            stop.set()

    if len(targets) == 1:
        one(targets[0])
    else:
        threads = [threading.Thread(target=one, args=(t,), name=f"node-{t.node}") for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        real = {node: error for node, error in failures.items() if not isinstance(error, JobCancelled)}
        if not real:
            raise JobCancelled()
        raise failure(failure_text(ctx, targets, order, goal, results, real))
    return results


def _run_phases(ctx: Any, target: Target, order: tuple[str, ...], work: dict[str, Phase],
                stop: threading.Event, reached: str) -> str:
    node = target.node
    started = time.monotonic()
    said = []
    for phase in order:
        if phase in done_phases(ctx, node):
            continue
        if stop.is_set() or ctx.cancelled():
            raise JobCancelled()
        ctx.progress(phase)
        note = work[phase]()
        if note:
            said.append(note)
        ctx.checkpoint_data[node] = [*done_phases(ctx, node), phase]
    took = f"{node}{' ' + reached if reached else ''} in {time.monotonic() - started:.0f}s"
    return took + (f" ({'; '.join(said)})" if said else "")


def done_phases(ctx: Any, node: str) -> list[str]:
    return list(ctx.checkpoint_data.get(node) or [])


def failure_text(ctx: Any, targets: list[Target], order: tuple[str, ...], goal: str, results: dict[str, str],
                 failures: dict[str, BaseException]) -> str:
    # What to do comes first: a long reason (a drain's pods) is what gets clipped in a chat message.
    cordoned = [t.node for t in targets if t.node in cordoned_by_job(ctx)]
    parts = []
    if cordoned:
        parts.append(f"{', '.join(cordoned)} stay{'s' if len(cordoned) == 1 else ''} cordoned ("
                     + ", ".join(f"`uncordon {n}`" for n in cordoned) + " puts it back in service); no further "
                     "node was touched")
    else:
        parts.append("no further node was touched")
    for node, error in failures.items():
        done = [phase for phase in order if phase in done_phases(ctx, node)]
        parts.append(f"{node} failed {goal} (done on it: {', '.join(done) or 'nothing'}): "
                     f"{clip(str(error), MAX_REASON_CHARS)}")
    finished = [t.node for t in targets if t.node in results]
    if finished:
        parts.append(f"{', '.join(finished)} finished")
    stopped = [t.node for t in targets if t.node not in results and t.node not in failures]
    if stopped:
        parts.append(f"{', '.join(stopped)} stopped at a safe point")
    return ". ".join(parts)


# -- commands on the node ---------------------------------------------------------------------------------


def run_on(ctx: Any, target: Target, argv: list[str], deadline: float, *, sudo: bool = True) -> str:
    return ctx.resources["ssh"].run(target.node, argv, address=target.address, sudo=sudo, deadline=deadline,
                                    job=ctx).stdout


def command(ctx: Any, target: Target, argv: list[str], deadline: float, *, sudo: bool = True) -> str:
    """Run a command that must succeed; its failure becomes the step's reason, with its stderr tail."""
    from bot.nodes import CommandError, NodeError

    try:
        return run_on(ctx, target, argv, deadline, sudo=sudo)
    except CommandError as error:
        tail = error.stderr_tail.strip().splitlines()[-3:] if error.stderr_tail else []
        code = error.result.exit_code if error.result else None
        raise StepFailed(f"`{' '.join(argv)}` failed on {target.node} (exit {code if code is not None else '?'}"
                         f"{': ' + ' / '.join(tail) if tail else ''})") from None
    except NodeError as error:
        raise StepFailed(str(error)) from None


def on_each(ctx: StepContext, targets: list[Target], work: Callable[[Any, Target], Any]) -> list[str]:
    """Run `work(ctx, target)` on every node at once; the nodes' problems, one line each."""
    from bot.nodes import NodeError

    def one(target: Target) -> str | None:
        try:
            work(ctx, target)
        except NodeError as error:
            return f"{target.node} ({getattr(error, 'stderr_tail', '') or error})"
        return None

    with ThreadPoolExecutor(max_workers=min(32, len(targets)), thread_name_prefix="nodes") as pool:
        return [problem for problem in pool.map(one, targets) if problem]


# -- out of service and back --------------------------------------------------------------------------------

_JOB_DATA_LOCK = threading.Lock()  # read-modify-write of the shared "cordoned" list by a wave's threads


def cordoned_by_job(ctx: Any) -> list[str]:
    return list(ctx.job_data.get(CORDONED) or [])


def cordon(ctx: Any, target: Target) -> str | None:
    """Cordon the node, noting that this job did (a node already cordoned is left to whoever did it)."""
    client: kube.Kube = ctx.resources["kube"]
    node = node_from_api(kube.read_node(client, target.node))
    note = None
    if node.schedulable:
        with _JOB_DATA_LOCK:
            ctx.job_data[CORDONED] = sorted({*cordoned_by_job(ctx), target.node})
        kube.set_unschedulable(client, target.node, True)
    elif target.node not in cordoned_by_job(ctx):
        note = "it was already cordoned: it stays cordoned afterwards"
    ctx.checkpoint_data[f"{target.node}: workloads"] = _workloads_on(client, target.node)
    return note


def _workloads_on(client: kube.Kube, node: str) -> list[list[str]]:
    """The ReplicaSets and StatefulSets whose pods the drain will move: what the health gate waits for."""
    data = kube.raw(client.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}",
                                                            _preload_content=False))
    found = set()
    for pod in data.get("items") or []:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in ("ReplicaSet", "StatefulSet"):
                found.add((pod["metadata"]["namespace"], ref["kind"], ref["name"]))
    return [list(item) for item in sorted(found)]


def drain(ctx: Any, target: Target, options: DrainOptions) -> str | None:
    try:
        evicted = evict(ctx, target.node, options, None)
        wait_gone(ctx, target.node, options)
    except DrainFailed as error:
        # The drain's own "stays cordoned" advice is given once, for the whole step, by failure_text.
        raise StepFailed(f"its drain stopped: {str(error).split(f' {target.node} stays cordoned')[0]}") from None
    return None if evicted.startswith("nothing") else evicted


def uncordon(ctx: Any, target: Target, before: str = "before") -> str | None:
    """Uncordon the node if this job cordoned it; say so if it stays cordoned."""
    forget_drain(ctx.job_data, target.node)  # a later drain of it in this job plans afresh
    if target.node not in cordoned_by_job(ctx):
        return f"left cordoned, as it was {before}"
    kube.set_unschedulable(ctx.resources["kube"], target.node, False)
    with _JOB_DATA_LOCK:
        ctx.job_data[CORDONED] = [n for n in cordoned_by_job(ctx) if n != target.node]
    return None


def health_gate(ctx: StepContext, targets: list[Target], timeout: int,
                failure: type[StepFailed] = StepFailed) -> None:
    """Before the next node: every node Ready and the workloads moved off these nodes available again."""
    client: kube.Kube = ctx.resources["kube"]
    workloads = {tuple(w) for t in targets for w in ctx.checkpoint_data.get(f"{t.node}: workloads") or []}
    deadline = time.monotonic() + timeout
    ctx.progress(f"health gate: nodes Ready, {len(workloads)} workloads available")
    while True:
        not_ready = sorted(n.name for n in kube.read_nodes(client).nodes.values() if not n.ready)
        short = [f"{ns}/{name} ({have}/{want} available)" for ns, kind, name in sorted(workloads)
                 for have, want in [_availability(client, ns, kind, name)] if have < want]
        if not not_ready and not short:
            return
        if time.monotonic() > deadline:
            why = ([f"{', '.join(not_ready)} NotReady"] if not_ready else []) + short
            raise failure(f"health gate after {', '.join(t.node for t in targets)}: {'; '.join(why)} after "
                             f"{timeout}s; no further node was touched")
        if ctx.cancelled():
            raise JobCancelled()
        time.sleep(POLL_SECONDS)


def _availability(client: kube.Kube, namespace: str, kind: str, name: str) -> tuple[int, int]:
    from kubernetes.client.exceptions import ApiException

    try:
        if kind == "ReplicaSet":
            obj = kube.raw(client.apps.read_namespaced_replica_set(name, namespace, _preload_content=False))
            return int(obj.get("status", {}).get("availableReplicas") or 0), int(obj["spec"].get("replicas", 1))
        obj = kube.raw(client.apps.read_namespaced_stateful_set(name, namespace, _preload_content=False))
        return int(obj.get("status", {}).get("readyReplicas") or 0), int(obj["spec"].get("replicas", 1))
    except ApiException as error:
        if error.status == 404:
            return 0, 0  # gone (a Deployment rolled it away): nothing to wait for
        raise
