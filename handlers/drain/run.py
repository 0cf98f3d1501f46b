"""The drain's worker steps: evict through the policy/v1 Eviction API, then wait for the pods
to be gone, watching rather than polling each pod.

Both steps are idempotent: a resumed run re-reads the node, skips pods already gone (by
uid) and evicts the rest again (evicting a terminating pod is a plain delete on the server).
They share, through the job's data, the drain's deadline (so `--timeout` bounds the whole
drain) and the pods the eviction step took on (which the wait step waits for).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from bot.cluster import kube
from bot.contract import PlanChanged
from bot.engine import JobCancelled, JobState, StepContext, action, list_jobs
from handlers.drain import DRAIN
from handlers.drain.plan import DrainCommand, DrainOptions, drain_decisions, evicted_pods

EVICTION_WORKERS = 16  # bounded concurrency: enough to be fast, few enough to be kind to the API
BACKOFF_START = 0.5
BACKOFF_MAX = 5.0  # kubectl waits 5 s between retries of a PDB-blocked eviction
MULTIPLE_PDBS = "more than one PodDisruptionBudget"


class DrainFailed(Exception):
    """The drain stopped; the message says which pods remain and why."""


@dataclass
class EvictionState:
    """Where each pod stands, shared by the eviction threads (each writes only its own pod)."""

    pending: dict[str, str] = field(default_factory=dict)  # ref -> uid, not yet accepted
    evicted: dict[str, str] = field(default_factory=dict)  # ref -> uid, eviction accepted by this run
    gone: dict[str, str] = field(default_factory=dict)  # ref -> uid, no longer there (someone else's doing)
    leaving: dict[str, str] = field(default_factory=dict)  # ref -> uid, already being deleted: not evicted again
    blocked: dict[str, str] = field(default_factory=dict)  # ref -> why it waits (PDB ...)
    failed: dict[str, str] = field(default_factory=dict)  # ref -> why it was given up

    def summary(self) -> str:
        done = len(self.evicted) + len(self.gone) + len(self.leaving)
        parts = [f"evicted {done}/{done + len(self.pending) + len(self.failed)}"]
        if self.blocked:
            waiting = sorted(set(self.blocked.values()))
            parts.append(f"waiting on {'; '.join(waiting[:3])}" + (" …" if len(waiting) > 3 else ""))
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


def _started_key(node: str) -> str:
    return f"drain {node}: started at"


def _leaving_key(node: str) -> str:
    return f"drain {node}: waiting for"  # the uids of the pods this drain saw leave


def _pods_key(node: str) -> str:
    return f"drain {node}: pods"


def forget_drain(job_data: MutableMapping[str, Any], node: str) -> None:
    """Forget what this job's drain of `node` noted, so a later drain of it in the same job (the next
    hop of an upgrade) plans, times and waits afresh."""
    for key in (_started_key(node), _leaving_key(node), _pods_key(node)):
        if key in job_data:
            del job_data[key]


def _deadline(ctx: StepContext, node: str, timeout_seconds: int) -> float:
    """The drain's deadline, fixed when its first step that waits starts, so a job resumed after a
    crash keeps it; a drain that failed clears it, so `resume` gives it a fresh --timeout."""
    started = ctx.job_data.get(_started_key(node))
    if started is None:
        started = ctx.job_data[_started_key(node)] = time.time()
    return float(started) + timeout_seconds


def pdb_blocker(error: ApiException) -> str:
    """`PDB web-pdb: needs 2 healthy pods and has 2` from a 429's Status body."""
    try:
        status = json.loads(error.body or "{}")
    except ValueError:
        return "a PodDisruptionBudget"
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "DisruptionBudget":
            message = cause.get("message", "")
            # "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
            words = message.split()
            if len(words) > 4 and words[:3] == ["The", "disruption", "budget"]:
                return f"PDB {words[3]}: {' '.join(words[4:]).removesuffix(' currently')}"
            return message
    return status.get("message") or "the API asked to retry later"


def evict_one(core: client.CoreV1Api, namespace: str, name: str, uid: str, grace: int | None) -> None:
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        # The uid precondition keeps a resumed run from evicting a new pod that reused the name.
        delete_options=client.V1DeleteOptions(grace_period_seconds=grace,
                                              preconditions=client.V1Preconditions(uid=uid)),
    )
    kube.raw(core.create_namespaced_pod_eviction(name, namespace, body, _preload_content=False))


def _evict_with_retries(kube_client: kube.Kube, ref: str, uid: str, grace: int | None, state: EvictionState,
                        deadline: float, stop: Callable[[], bool]) -> None:
    namespace, name = ref.split("/", 1)
    delay = BACKOFF_START
    while True:
        if stop():
            return
        try:
            evict_one(kube_client.core, namespace, name, uid, grace)
            state.evicted[ref] = state.pending.pop(ref)
            state.blocked.pop(ref, None)
            return
        except ApiException as error:
            if error.status in (404, 409):  # gone, or replaced by a new pod with another uid
                state.gone[ref] = state.pending.pop(ref)
                state.blocked.pop(ref, None)
                return
            if error.status == 500 and MULTIPLE_PDBS in (error.body or ""):
                state.failed[ref] = "several PodDisruptionBudgets match it; the Eviction API cannot evict it"
                state.pending.pop(ref, None)
                state.blocked.pop(ref, None)
                return
            if error.status == 429:
                retry_after = (error.headers or {}).get("Retry-After")
                state.blocked[ref] = pdb_blocker(error)
                wait = float(retry_after) if retry_after and retry_after.isdigit() and int(retry_after) > 0 else delay
            elif error.status and error.status >= 500:
                wait = delay  # the API is struggling: a fault slows the drain down, it does not fail it
            else:
                state.failed[ref] = f"eviction refused: HTTP {error.status} {error.reason}"
                state.pending.pop(ref, None)
                return
        except (TransportError, ConnectionError) as error:
            wait = delay
            state.blocked.setdefault(ref, f"API unreachable ({type(error).__name__})")
        if time.time() + wait > deadline:
            time.sleep(max(0.0, deadline - time.time()))
            return
        _sleep_unless(stop, wait)
        delay = min(BACKOFF_MAX, delay * 2)


def _sleep_unless(stop: Callable[[], bool], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop():
        time.sleep(min(0.1, end - time.monotonic()))


@kube.retrying
def _pods_on(kube_client: kube.Kube, node: str) -> tuple[dict[str, dict], str]:
    """Pods on the node by uid, and the list's resourceVersion to watch from."""
    data = kube.raw(kube_client.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}",
                                                                 _preload_content=False))
    return {p["metadata"]["uid"]: p for p in data.get("items") or []}, data["metadata"]["resourceVersion"]


@action("drain.evict")
def evict(ctx: StepContext, node: str, options: DrainOptions, pods: dict[str, str] | None = None) -> str:
    """Evict the pods of `node` the plan names (`pods`, ref -> uid; None: plan now), retrying what a
    PDB or an API fault holds back."""
    kube_client: kube.Kube = ctx.resources["kube"]
    deadline = _deadline(ctx, node, options.timeout)
    if _pods_key(node) not in ctx.job_data:
        # The worker re-plans before it acts: the cluster may have changed since the approval.
        try:
            snapshot = DRAIN.still_holds(ctx.resources, DrainCommand(node=node, **asdict(options)), pods)
        except PlanChanged as changed:
            raise DrainFailed(f"{changed} {node} stays cordoned.") from None
        fresh = evicted_pods(drain_decisions(snapshot, node, options))
        ctx.job_data[_pods_key(node)] = {**(pods or {}), **fresh}
    pods = dict(ctx.job_data[_pods_key(node)])
    grace_period = options.grace_period
    present, _ = _pods_on(kube_client, node)
    state = EvictionState()
    for ref, uid in pods.items():
        if uid not in present:
            state.gone[ref] = uid
        elif present[uid]["metadata"].get("deletionTimestamp"):  # evicted before (by an earlier run, say)
            state.leaving[ref] = uid
        else:
            state.pending[ref] = uid
    stopping = [False]

    def stop() -> bool:
        if not stopping[0] and ctx.cancelled():
            stopping[0] = True
        return stopping[0] or time.time() > deadline

    with ThreadPoolExecutor(max_workers=EVICTION_WORKERS, thread_name_prefix="evict") as pool:
        futures = [pool.submit(_evict_with_retries, kube_client, ref, uid, grace_period, state, deadline, stop)
                   for ref, uid in list(state.pending.items())]
        reported = ""
        while not all(f.done() for f in futures):
            summary = state.summary()
            if summary != reported:
                ctx.progress(summary)
                reported = summary
            time.sleep(0.2)
        for future in futures:
            future.result()  # surface a programming error rather than hide it
    if stopping[0]:
        raise JobCancelled()
    if state.failed or state.pending:
        # A resumed job gets a fresh --timeout; a crashed run (no exception here) keeps its deadline.
        ctx.job_data[_started_key(node)] = None
        raise DrainFailed(_remaining_message(node, state, timed_out=bool(state.pending)))
    ctx.job_data[_leaving_key(node)] = sorted({*state.evicted.values(), *state.leaving.values()})
    return eviction_report(node, state, _previous_drain(ctx, node) if not state.evicted else None)


def eviction_report(node: str, state: EvictionState, previous: str | None) -> str:
    """What this step did, not what was planned: a pod that was already gone was not evicted."""
    if not state.evicted and not state.leaving:
        if not state.gone:
            return f"nothing to evict on {node}"
        by = f" by {previous}" if previous else ""
        return f"nothing left to evict: {node} was already drained{by} ({_pods(len(state.gone))} of the plan gone)"
    parts = [f"{_pods(len(state.evicted))} evicted from {node}"]
    if state.leaving:
        parts.append(f"{_pods(len(state.leaving))} already leaving")
    if state.gone:
        parts.append(f"{_pods(len(state.gone))} already gone")
    return "; ".join(parts)


def _pods(count: int) -> str:
    return f"{count} pod{'s' if count != 1 else ''}"


def _previous_drain(ctx: StepContext, node: str) -> str | None:
    """The latest other job that evicted this node's pods: "job j-1a2b3c4d at 13:42 UTC"."""
    try:
        redis = ctx.resources["redis"]
    except KeyError:  # a worker without Redis among its resources (a benchmark's): no history to tell
        return None
    for record in list_jobs(redis, limit=50):
        if record.id != ctx.job_id and record.state == JobState.SUCCEEDED and any(
                step.action == "drain.evict" and step.args.get("node") == node for step in record.steps):
            when = time.strftime("%H:%M UTC", time.gmtime(record.finished_at)) if record.finished_at else "earlier"
            return f"job {record.id} at {when}"
    return None


def _remaining_message(node: str, state: EvictionState, timed_out: bool) -> str:
    lines = []
    if timed_out:
        lines.append(f"timed out with {len(state.pending)} pods still on {node}:")
        lines += [f"{ref} ({state.blocked.get(ref, 'not evicted yet')})" for ref in sorted(state.pending)]
    if state.failed:
        lines += [f"{ref}: {why}" for ref, why in sorted(state.failed.items())]
    lines.append(f"{node} stays cordoned; `uncordon {node}` puts it back in service.")
    return " ".join(lines)


@action("drain.wait_gone")
def wait_gone(ctx: StepContext, node: str, options: DrainOptions) -> str:
    """Wait until none of the pods this drain evicted (or found leaving) remains on the node, with one watch."""
    kube_client: kube.Kube = ctx.resources["kube"]
    deadline = _deadline(ctx, node, options.timeout)  # the eviction's, unless a resume cleared it
    wanted = set(ctx.job_data.get(_leaving_key(node)) or ())
    if not wanted:
        return f"nothing to wait for: this drain evicted no pod from {node}"
    present, resource_version = _pods_on(kube_client, node)
    remaining = wanted & set(present)
    ctx.progress(f"{len(remaining)} pods still terminating")
    stream = watch.Watch()
    while remaining:
        if ctx.cancelled():
            raise JobCancelled()
        left = deadline - time.time()
        if left <= 0:
            names = sorted(f"{present[u]['metadata']['namespace']}/{present[u]['metadata']['name']}"
                           for u in remaining if u in present)
            ctx.job_data[_started_key(node)] = None  # `resume` waits again, with a fresh --timeout
            raise DrainFailed(f"timed out waiting for {len(remaining)} pods to terminate: {', '.join(names)}. "
                              f"{node} stays cordoned; `uncordon {node}` puts it back in service.")
        try:
            for event in stream.stream(kube_client.core.list_pod_for_all_namespaces,
                                       field_selector=f"spec.nodeName={node}", resource_version=resource_version,
                                       timeout_seconds=max(1, min(int(left), 5)), _request_timeout=min(left, 10) + 5):
                obj = event["object"]
                resource_version = obj.metadata.resource_version or resource_version
                if event["type"] == "DELETED" and obj.metadata.uid in remaining:
                    remaining.discard(obj.metadata.uid)
                    ctx.progress(f"{len(remaining)} pods still terminating")
                    if not remaining:
                        stream.stop()
                        break
        except (ApiException, TransportError, ConnectionError) as error:
            if isinstance(error, ApiException) and error.status == 410:
                present, resource_version = _pods_on(kube_client, node)  # history gone: list again
                remaining &= set(present)
            else:
                _sleep_unless(ctx.cancelled, BACKOFF_START)
    return f"{node} drained: {len(wanted)} pods gone"
