"""kubemaint's drain against `kubectl drain`, on two identical fresh lab clusters per scenario.

For each scenario (terminationGracePeriodSeconds 0, then 2 s) this starts two labs from the same
generated scenario file: a tainted control plane, `node01` holding 200 pods of ten Deployments
(one of them with an emptyDir volume) plus two DaemonSet pods, and four other workers with room
for 440 pods. No PodDisruptionBudgets. The labs run at time scale 1.0, so grace periods are real.

- kubectl: `kubectl drain node01 --ignore-daemonsets --delete-emptydir-data --force` with a fresh
  `--cache-dir`, timed from launch to exit (its discovery included);
- kubemaint: the drain planned as the bot plans it before approval (`read_snapshot` +
  `plan_drain` of `drain node01 --force --delete-emptydir-data`), then submitted to a private
  Redis with `bot.engine.queue.submit`, to one job worker (`python -m bot.engine`, in-process jobs
  as `kubemaint worker` runs them) started and warmed up beforehand; timed from submission until
  the job has succeeded. This is the drain as an operator sees it after approving; the chat
  layer (Slack round trips, approval card) is not part of it.

The lab counts every API request; the counters are reset right before each drain and read when
it has finished. Targets (from the issue): kubemaint at most 0.5x kubectl's wall time and at
most 0.25x its requests.

    python benchmarks/drain_vs_kubectl.py [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.testing import LabProcess, cpu_model, cpu_seconds, stop_process_group  # noqa: E402

NODE = "node01"
PODS = 200  # evictable pods on NODE
PER_DEPLOYMENT = 20
OTHER_WORKERS = 4
OTHER_CAPACITY = 110  # pods per other worker: 440 in all, room for the 200
GRACES = (0, 2)
WALL_TARGET = 0.5
REQUEST_TARGET = 0.25
KUBECTL_TIMEOUT = 75.0  # seconds; kubectl needs about 40 here
DRAIN_TIMEOUT = 60.0  # seconds for kubemaint's job
SETTLE_TIMEOUT = 20.0
DRAIN_COMMAND = f"drain {NODE} --force --delete-emptydir-data"
KUBECTL_ARGS = ["drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--force"]
SECTION = "## Drain vs kubectl"

ENV_KUBECONFIG = "DRAIN_BENCH_KUBECONFIG"
ENV_REDIS = "DRAIN_BENCH_REDIS_URL"


CONNECTIONS_KEY = "drain-bench:connections"  # HTTPS connections the worker opened during its last job run
_opened = [0]
_opened_lock = threading.Lock()


def _count_new_connections() -> None:
    """Count the HTTPS connections urllib3 opens in this (the worker's) process; measurement only."""
    import urllib3.connectionpool as pools

    if getattr(pools.HTTPSConnectionPool, "_drain_bench_counted", False):
        return
    original = pools.HTTPSConnectionPool._new_conn

    def new_conn(self):
        with _opened_lock:
            _opened[0] += 1
        return original(self)

    pools.HTTPSConnectionPool._new_conn = new_conn
    pools.HTTPSConnectionPool._drain_bench_counted = True


def resources(cluster: str = ""):
    """The worker's resources factory (`--resources-factory benchmarks.drain_vs_kubectl:resources`):
    what `kubemaint worker` builds, for the lab named in the environment, plus a count of the
    HTTPS connections opened during the job run (stored in Redis when the run closes them)."""
    from redis import Redis

    from bot.cluster.kube import connect
    from bot.engine.actions import Resources

    _count_new_connections()

    class Counted(Resources):
        def close(self) -> None:
            with contextlib.suppress(Exception):
                self["redis"].set(CONNECTIONS_KEY, _opened[0] - self.opened_before)
            super().close()

    made = Counted(kube=connect(Path(os.environ[ENV_KUBECONFIG])), redis=Redis.from_url(os.environ[ENV_REDIS]))
    made.opened_before = _opened[0]
    return made


# -- the scenario ------------------------------------------------------------------------------------


def _daemonset(name: str) -> dict:
    labels = {"k8s-app": name}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": name, "image": f"registry.k8s.io/{name}:v1.27.3"}]}}},
    }


def _deployment(name: str, replicas: int, grace: int, emptydir: bool) -> dict:
    container: dict = {"name": name, "image": "nginx:1.25"}
    spec: dict = {"terminationGracePeriodSeconds": grace, "containers": [container]}
    if emptydir:
        container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    }


def scenario(grace: int, pods: int = PODS) -> dict:
    """The other workers start cordoned so that every replica lands on NODE; `prepare` uncordons them."""
    count = math.ceil(pods / PER_DEPLOYMENT)
    deployments = [_deployment(f"app{i:02d}", min(PER_DEPLOYMENT, pods - i * PER_DEPLOYMENT), grace,
                               emptydir=i == count - 1) for i in range(count)]
    return {
        "name": f"drain-bench-grace-{grace}", "version": "v1.27.3", "seed": 7,
        "nodes": [{"name": "controlplane", "controlPlane": True, "tainted": True},
                  {"name": NODE, "pods": pods + 20},
                  *({"name": f"node{i:02d}", "pods": OTHER_CAPACITY, "unschedulable": True}
                    for i in range(2, OTHER_WORKERS + 2))],
        "objects": [_daemonset("kube-proxy"), _daemonset("kube-flannel-ds"), *deployments],
    }


def other_workers() -> list[str]:
    return [f"node{i:02d}" for i in range(2, OTHER_WORKERS + 2)]


# -- the labs -----------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    pass


def check_loopback(lab: LabProcess) -> None:
    host = urllib.parse.urlsplit(lab.server).hostname
    if host != "127.0.0.1":
        raise BenchError(f"refusing to talk to a lab that is not on 127.0.0.1: {lab.server}")


def placement(lab: LabProcess) -> dict[str, int]:
    """Running, non-terminating pods per node (DaemonSet and static pods included)."""
    counts: Counter[str] = Counter()
    for pod in lab.pods():
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            counts[pod["spec"].get("nodeName", "")] += 1
    return dict(sorted(counts.items()))


def prepare(lab: LabProcess, pods: int) -> dict[str, int]:
    """Uncordon the other workers (the replicas are all on NODE by now) and wait until it settles."""
    check_loopback(lab)
    for name in other_workers():
        code, body = lab.request("PATCH", f"/api/v1/nodes/{name}", {"spec": {"unschedulable": None}},
                                 content_type="application/merge-patch+json")
        if code != 200:
            raise BenchError(f"uncordon {name}: {code} {body}")
    wanted = pods + 2  # + kube-proxy and kube-flannel-ds
    return lab.wait_for(lambda: (p := placement(lab)).get(NODE) == wanted and p, timeout=SETTLE_TIMEOUT,
                        interval=0.1, message=f"{wanted} Running pods on {NODE}")


def drained(lab: LabProcess, pods: int) -> str:
    """'' if NODE is cordoned, holds only its DaemonSet pods and every replica runs elsewhere; else why not."""
    node = lab.get(f"/api/v1/nodes/{NODE}")
    if not node["spec"].get("unschedulable"):
        return f"{NODE} is not cordoned"
    on_node = [p for p in lab.pods(node=NODE)
               if (p["metadata"].get("ownerReferences") or [{}])[0].get("kind") != "DaemonSet"]
    if on_node:
        return f"{len(on_node)} non-DaemonSet pods still on {NODE}"
    running = [p for p in lab.pods("shop") if p["status"].get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")]
    if len(running) != pods:
        return f"{len(running)} of {pods} replicas Running elsewhere"
    return ""


def wait_drained(lab: LabProcess, pods: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        why = drained(lab, pods)
        if not why or time.monotonic() > deadline:
            return why
        time.sleep(0.1)


# -- request accounting -------------------------------------------------------------------------------

KINDS = (
    (re.compile(r"^POST /api/v1/namespaces/[^/]+/pods/[^/]+/eviction$"), "POST pod eviction"),
    (re.compile(r"^GET /api/v1/namespaces/[^/]+/pods/[^/]+$"), "GET one pod"),
    (re.compile(r"^GET /api/v1/pods$"), "GET pod list or watch"),
    (re.compile(r"^(GET|PATCH|PUT) /api/v1/nodes/[^/]+$"), r"\1 node"),
    (re.compile(r"^GET /api/v1/nodes$"), "GET node list"),
    (re.compile(r"^GET /apis/apps/v1/namespaces/[^/]+/daemonsets/[^/]+$"), "GET one daemonset"),
    (re.compile(r"^GET /(version|api|apis|api/v1|apis/[^/]+/[^/]+)$"), "GET discovery"),
)


def by_kind(requests: dict[str, int]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for key, count in requests.items():
        for pattern, label in KINDS:
            if pattern.match(key):
                kinds[pattern.sub(label, key)] += count
                break
        else:
            kinds[key] += count
    return dict(kinds.most_common())


@dataclass
class Run:
    tool: str
    wall: float = 0.0
    requests: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    lab_cpu: float = 0.0  # CPU seconds the lab process spent during the drain
    plan_requests: int = 0  # kubemaint: the plan shown before approval (not in `requests`)
    connections: int | None = None  # kubemaint: HTTPS connections its worker opened for the drain
    note: str = ""
    error: str = ""


# -- kubectl ------------------------------------------------------------------------------------------


def loopback_env() -> dict[str, str]:
    """The environment without proxies: every request must go straight to 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    env.pop("KUBECONFIG", None)
    return env


def run_kubectl(lab: LabProcess, workdir: Path) -> Run:
    check_loopback(lab)
    cache = Path(tempfile.mkdtemp(prefix="kubectl-cache-", dir=workdir))
    command = ["kubectl", "--kubeconfig", str(lab.kubeconfig), "--cache-dir", str(cache), *KUBECTL_ARGS]
    lab.admin("POST", "counters/reset")
    cpu = cpu_seconds(lab.process.pid if lab.process else None)
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT, env=loopback_env())
    except subprocess.TimeoutExpired:
        return Run("kubectl", time.monotonic() - started, error=f"kubectl drain ran over {KUBECTL_TIMEOUT:.0f} s")
    wall = time.monotonic() - started
    run = Run("kubectl", wall, lab_cpu=cpu_seconds(lab.process.pid if lab.process else None) - cpu)
    counters = lab.counters()
    run.requests, run.kinds = counters["total"], by_kind(counters["requests"])
    waits = [float(w) for w in re.findall(r"Waited for ([0-9.]+)s due to client-side throttling", done.stderr)]
    if waits:
        run.note = f"client-side throttling: {len(waits)} waits logged, longest {max(waits):.1f} s"
    if done.returncode != 0 or "drained" not in done.stdout:
        run.error = f"kubectl exited {done.returncode}: {(done.stderr or done.stdout)[-400:]}"
    return run


# -- kubemaint ----------------------------------------------------------------------------------------


class Worker:
    """`python -m bot.engine` for one lab: handlers' actions, in-process jobs, this module's resources."""

    def __init__(self, lab: LabProcess, redis_url: str, workdir: Path, name: str) -> None:
        self.log = workdir / f"{name}.log"
        env = {**loopback_env(), ENV_KUBECONFIG: str(lab.kubeconfig), ENV_REDIS: redis_url,
               "PYTHONPATH": str(ROOT)}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.engine", "--redis-url", redis_url, "--name", name, "--import", "handlers",
                 "--resources-factory", "benchmarks.drain_vs_kubectl:resources", "--worker-class", "simple",
                 "--log-level", "WARNING"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        stop_process_group(self.proc)


def submit_and_wait(redis, verb: str, plan, text: str, worker: Worker, timeout: float
                    ) -> tuple[float, float, object]:
    """Submit the planned job; returns (submitted at, finished at, final record), both in time.time()."""
    from bot.engine import queue
    from bot.engine.model import JobSpec
    from bot.engine.store import get_job

    spec = JobSpec.create(verb, text, "U0BENCH", plan.steps, approvers=["U0APPROVER"], channel="C0BENCH",
                          locks=plan.locks)
    submitted = time.time()
    queue.submit(redis, spec)
    deadline = time.monotonic() + timeout
    while True:
        record = get_job(redis, spec.id)
        if record is not None and str(record.state) in ("succeeded", "failed", "cancelled", "halted"):
            return submitted, record.finished_at or time.time(), record
        if worker.proc.poll() is not None:
            raise BenchError(f"the job worker exited ({worker.proc.returncode}):\n{worker.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"job {spec.id} not finished after {timeout:.0f} s: {record and record.state}")
        time.sleep(0.01)


def run_kubemaint(lab: LabProcess, redis_url: str, workdir: Path, name: str) -> Run:
    from redis import Redis

    from bot.chat.grammar import parse
    from bot.cluster import kube
    from bot.contract.reports import ending_text
    from handlers.cordon import plan_uncordon
    from handlers.drain import plan_drain

    check_loopback(lab)
    redis = Redis.from_url(redis_url)
    worker = Worker(lab, redis_url, workdir, name)
    client = kube.connect(lab.kubeconfig)
    try:
        # Warm-up, not measured: a no-op job (the node is already schedulable) so that the worker
        # has imported everything and is waiting on the queue, as a long-running worker is.
        warm = plan_uncordon(kube.read_snapshot(client), parse(f"uncordon {other_workers()[0]}").options)
        _, _, record = submit_and_wait(redis, "uncordon", warm, "uncordon (warm-up)", worker, 30)
        if str(record.state) != "succeeded":
            raise BenchError(f"warm-up job {record.state}: {ending_text(record)}\n{worker.tail()}")

        # The plan the approver sees: read before approval, so outside the measured interval.
        lab.admin("POST", "counters/reset")
        planning = time.monotonic()
        command = parse(DRAIN_COMMAND)
        plan = plan_drain(kube.read_snapshot(client), command.options)
        planning = time.monotonic() - planning
        plan_requests = lab.counters()["total"]
        if plan.refusal or not plan.steps:
            raise BenchError(f"the drain was refused: {plan.refusal}")
        evicted = len(plan.steps[1].args["pods"])

        redis.delete(CONNECTIONS_KEY)
        lab.admin("POST", "counters/reset")
        cpu = cpu_seconds(lab.process.pid if lab.process else None)
        worker_cpu = cpu_seconds(worker.proc.pid)
        submitted, finished, record = submit_and_wait(redis, "drain", plan, command.text, worker, DRAIN_TIMEOUT)
        lab_cpu = cpu_seconds(lab.process.pid if lab.process else None) - cpu
        run = Run("kubemaint", finished - submitted, lab_cpu=lab_cpu, plan_requests=plan_requests)
        worker_cpu = cpu_seconds(worker.proc.pid) - worker_cpu
        counters = lab.counters()
        run.requests, run.kinds = counters["total"], by_kind(counters["requests"])
        deadline = time.monotonic() + 3  # the runner closes the resources just after the job's end
        while (opened := redis.get(CONNECTIONS_KEY)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        run.connections = None if opened is None else int(opened)
        steps = ", ".join(f"{s.action} {(s.finished_at or 0) - (s.started_at or 0):.2f} s" for s in record.steps
                          if s.started_at)
        run.note = (f"{evicted} pods in the plan; steps: {steps}; worker CPU {worker_cpu:.2f} s; "
                    f"HTTPS connections opened by the worker: {run.connections}; "
                    f"plan before approval (not counted): {plan_requests} requests, {planning:.2f} s")
        if str(record.state) != "succeeded":
            run.error = f"job {record.id} {record.state}: {ending_text(record)}\n{worker.tail()}"
        return run
    finally:
        client.close()
        worker.stop()


# -- one scenario -------------------------------------------------------------------------------------


@dataclass
class Result:
    grace: int
    placement: dict[str, int]
    kubectl: Run
    kubemaint: Run

    @property
    def wall_ratio(self) -> float:
        return self.kubemaint.wall / self.kubectl.wall if self.kubectl.wall else math.inf

    @property
    def request_ratio(self) -> float:
        return self.kubemaint.requests / self.kubectl.requests if self.kubectl.requests else math.inf


def start_labs(path: Path, count: int) -> list[LabProcess]:
    labs = [LabProcess(str(path), time_scale=1.0) for _ in range(count)]
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(lab.start) for lab in labs]
        errors = [f.exception() for f in futures]
    if any(errors):
        for lab in labs:
            lab.stop()
        raise next(e for e in errors if e)
    return labs


def run_scenario(grace: int, pods: int, redis_url: str, workdir: Path) -> Result:
    path = workdir / f"drain-bench-grace-{grace}.yaml"
    path.write_text(yaml.safe_dump(scenario(grace, pods), sort_keys=False))
    labs = start_labs(path, 2)
    try:
        shapes = [prepare(lab, pods) for lab in labs]
        if shapes[0] != shapes[1]:
            raise BenchError(f"the two labs differ before the drain: {shapes[0]} vs {shapes[1]}")
        print(f"  grace {grace} s: both labs ready, pods per node {shapes[0]}", flush=True)
        kubectl = run_kubectl(labs[0], workdir)
        if not kubectl.error:
            kubectl.error = wait_drained(labs[0], pods)
        print(f"  grace {grace} s: kubectl   {kubectl.wall:6.2f} s, {kubectl.requests} requests "
              f"{kubectl.error or ''}", flush=True)
        kubemaint = run_kubemaint(labs[1], redis_url, workdir, f"bench-worker-g{grace}")
        if not kubemaint.error:
            kubemaint.error = wait_drained(labs[1], pods)
        print(f"  grace {grace} s: kubemaint {kubemaint.wall:6.2f} s, {kubemaint.requests} requests "
              f"{kubemaint.error or ''}", flush=True)
        return Result(grace, shapes[0], kubectl, kubemaint)
    finally:
        for lab in labs:
            lab.stop()


# -- output -------------------------------------------------------------------------------------------

HEADERS = ["scenario", "kubectl s", "kubemaint s", "wall ratio", "<= 0.5x", "kubectl req", "kubemaint req",
           "req ratio", "<= 0.25x"]


def rows(results: list[Result], pods: int) -> list[list[str]]:
    out = []
    for r in results:
        out.append([
            f"{pods} pods, grace {r.grace} s", f"{r.kubectl.wall:.2f}", f"{r.kubemaint.wall:.2f}",
            f"{r.wall_ratio:.3f}", "yes" if r.wall_ratio <= WALL_TARGET else "NO",
            str(r.kubectl.requests), str(r.kubemaint.requests), f"{r.request_ratio:.3f}",
            "yes" if r.request_ratio <= REQUEST_TARGET else "NO",
        ])
    return out


def text_table(results: list[Result], pods: int) -> str:
    table = [HEADERS, *rows(results, pods)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(results: list[Result], pods: int) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|---|" + "---:|" * 3 + "---|" + "---:|" * 3 + "---|"]
    out += ["| " + " | ".join(row) + " |" for row in rows(results, pods)]
    return "\n".join(out)


def breakdown(results: list[Result]) -> str:
    """Requests by kind, per tool and scenario, as a Markdown table."""
    runs = [(f"{run.tool}, grace {r.grace} s", run) for r in results for run in (r.kubectl, r.kubemaint)]
    kinds: list[str] = []
    for _, run in runs:
        kinds += [k for k in run.kinds if k not in kinds]
    out = ["| request | " + " | ".join(name for name, _ in runs) + " |", "|---|" + "---:|" * len(runs)]
    for kind in kinds:
        out.append(f"| `{kind}` | " + " | ".join(str(run.kinds.get(kind, "")) for _, run in runs) + " |")
    out.append("| **total** | " + " | ".join(f"**{run.requests}**" for _, run in runs) + " |")
    out.append("| lab CPU s | " + " | ".join(f"{run.lab_cpu:.2f}" for _, run in runs) + " |")
    out.append("| HTTPS connections opened | " + " | ".join(
        "-" if run.connections is None else str(run.connections) for _, run in runs) + " |")
    return "\n".join(out)


def kubectl_version() -> str:
    with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError, KeyError):
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=20, env=loopback_env()).stdout
        return json.loads(out)["clientVersion"]["gitVersion"]
    return "unknown"


def machine() -> str:
    return (f"{os.cpu_count()} CPU cores ({cpu_model()}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, kubectl {kubectl_version()}")


def explanation(results: list[Result], pods: int) -> str:
    """What the figures say, with this run's numbers."""
    g0, last = results[0], results[-1]
    evictions = g0.kubectl.kinds.get("POST pod eviction", 0)
    kubectl_gets = ", ".join(f"{r.kubectl.kinds.get('GET one pod', 0)} with grace {r.grace} s" for r in results)
    extra = ", ".join(f"{r.kubemaint.requests - r.kubemaint.kinds.get('POST pod eviction', 0)} with grace {r.grace} s"
                      for r in results)
    rate = evictions / g0.kubectl.wall if g0.kubectl.wall else 0.0
    evict_steps = ", ".join(re.search(r"drain\.evict ([0-9.]+ s)", r.kubemaint.note).group(1) for r in results
                            if re.search(r"drain\.evict ([0-9.]+ s)", r.kubemaint.note))
    connections = ", ".join(f"{r.kubemaint.connections} with grace {r.grace} s" for r in results)
    churn = all((r.kubemaint.connections or 0) >= pods for r in results)
    lines = [
        "What the figures say:",
        "",
        f"- **Requests.** Anyone who respects PodDisruptionBudgets sends one eviction `POST` per pod, so "
        f"{pods} requests is the floor of this drain for kubectl and kubemaint alike. On top of it kubectl "
        f"polls each evicted pod with a `GET` once a second until it is gone ({kubectl_gets}; the count "
        f"is capped by its rate limiter, below), plus discovery, the node (GET, PATCH), one pod list and "
        f"one `GET` per DaemonSet. kubemaint adds {extra}: the cordon (GET and PATCH of the node), the "
        f"worker's re-plan snapshot (nodes, pods, PDBs, DaemonSets), the node's pods before evicting and "
        f"before waiting, and with a grace period one watch (`GET /api/v1/pods?watch=1`, counted with the "
        f"lists) instead of per-pod polling. So kubemaint needs about half of kubectl's requests, and the "
        f"0.25x target cannot be met by any drain that evicts through the Eviction API: 0.25 x "
        f"{g0.kubectl.requests} = {g0.kubectl.requests // 4}, fewer than the {pods} evictions. Only deleting "
        f"pods without evictions (ignoring PDBs) would go lower, and kubemaint does not do that.",
        f"- **Wall time.** kubectl's drain is paced by client-go's client-side rate limiter (it logs "
        f"`Waited for ... due to client-side throttling`): {evictions} evictions in {g0.kubectl.wall:.1f} s is "
        f"{rate:.1f} per second, which matches client-go's default limit of 5 requests/s with a burst of 10 "
        f"(({evictions} - 10) / 5 = {(evictions - 10) / 5:.0f} s). kubectl's total rate is about twice that "
        f"({g0.kubectl.requests / g0.kubectl.wall:.1f} requests/s), consistent with one limiter per API-group "
        f"client when no QPS is set: the per-pod `GET`s (core/v1) do not wait behind the evictions "
        f"(policy/v1), but are capped at about 5/s themselves. kubemaint's "
        f"worker evicts from 16 threads with no client-side limiter (evict step: {evict_steps}), then "
        f"watches the pods go; with a 2 s grace period most of its time is the grace period itself "
        f"({last.kubemaint.wall:.2f} s in all).",
    ]
    if churn:
        lines.append(
            f"- **A cost in kubemaint's figures.** Its worker opened a new HTTPS connection for nearly every "
            f"eviction ({connections}; counted in the benchmark's resources factory). `evict_one` in "
            f"`handlers/drain/run.py` asks for the eviction with `_preload_content=False` and never reads or "
            f"releases the response, so urllib3 never returns the connection to its pool: every eviction "
            f"pays a TCP connect and a TLS handshake on both ends (see the lab CPU row). Reading and "
            f"releasing the response keeps 16 connections alive; in an experiment on 2026-11-22 (patched "
            f"in memory, not committed) that took the evict step to about 0.35 s and halved the worker's "
            f"and the lab's CPU.")
    lines.append(
        f"- **Scope.** kubemaint's figure is the drain after approval, submission to job succeeded, through "
        f"a private Redis and one warm worker; the chat round trips are not in it. The plan the approver "
        f"sees costs another {g0.kubemaint.plan_requests} requests (one snapshot) before approval and is not "
        f"counted; kubectl has no such step. The lab, Redis, the worker and kubectl share the machine's "
        f"{os.cpu_count()} cores, and single runs vary by 10-30% for kubemaint (sub-second figures).")
    return "\n".join(lines) + "\n"


def record(path: Path, results: list[Result], pods: int, elapsed: float) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = "\n".join(f"- {r.kubectl.tool}, grace {r.grace} s: {r.kubectl.note or '-'}\n"
                      f"- {r.kubemaint.tool}, grace {r.grace} s: {r.kubemaint.note or '-'}" for r in results)
    section = (
        f"\n{SECTION}\n\n"
        f"`python benchmarks/drain_vs_kubectl.py` on {stamp} ({elapsed:.0f} s). Machine: {machine()}.\n\n"
        f"Each scenario runs on two identical fresh labs (time scale 1.0: grace periods are real seconds): "
        f"`{NODE}` with {pods} pods of {math.ceil(pods / PER_DEPLOYMENT)} Deployments (one with an emptyDir "
        f"volume) and 2 DaemonSet pods, {OTHER_WORKERS} other workers with room for "
        f"{OTHER_WORKERS * OTHER_CAPACITY} pods, a tainted control plane, no PodDisruptionBudgets. kubectl: "
        f"`kubectl {' '.join(KUBECTL_ARGS)}` with a fresh `--cache-dir`, launch to exit. kubemaint: "
        f"`{DRAIN_COMMAND}` planned as before approval, then submitted to one warm job worker through a "
        f"private Redis, submission to job succeeded (measured without the chat layer). Requests are "
        f"the lab's counters, reset right before each drain.\n\n"
        f"{markdown_table(results, pods)}\n\n"
        f"Requests by kind:\n\n{breakdown(results)}\n\n{notes}\n\n"
        + explanation(results, pods)
    )
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    if f"\n{SECTION}\n" in existing:  # replace this benchmark's previous section, keep the others
        start = existing.index(f"\n{SECTION}\n")
        end = existing.find("\n## ", start + 1)
        existing = existing[:start] + (existing[end:] if end != -1 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(existing.rstrip("\n") + "\n" + section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", type=Path, metavar="MARKDOWN",
                        help=f"write the results as the '{SECTION[3:]}' section of this Markdown file")
    parser.add_argument("--pods", type=int, default=PODS, help=f"evictable pods on {NODE} (default {PODS})")
    args = parser.parse_args(argv)
    if not shutil.which("kubectl"):
        print("kubectl is not on PATH", file=sys.stderr)
        return 2
    if not 1 <= args.pods <= OTHER_WORKERS * OTHER_CAPACITY - 20:
        print(f"--pods must be between 1 and {OTHER_WORKERS * OTHER_CAPACITY - 20}", file=sys.stderr)
        return 2
    from bot.engine.audit import configure_logging
    from lab.redis_server import RedisServer

    configure_logging("WARNING")  # queue.submit's audit lines would interleave with the progress lines
    for name in [k for k in os.environ if k.lower() in ("http_proxy", "https_proxy", "all_proxy")]:
        del os.environ[name]  # this process's own requests to the labs go straight to 127.0.0.1 too
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"
    os.chdir(ROOT)  # `python -m lab` and `python -m bot.engine` must resolve to this checkout
    started = time.monotonic()
    print(f"drain vs kubectl: {args.pods} pods on {NODE}, {os.cpu_count()} cores", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="drain-bench-") as tmp, RedisServer() as redis:
        for grace in GRACES:
            results.append(run_scenario(grace, args.pods, redis.url, Path(tmp)))
    elapsed = time.monotonic() - started
    print()
    print(text_table(results, args.pods))
    print()
    print("kubemaint: the planned job submitted to one warm worker through a private Redis (not the chat stack)")
    for r in results:
        for run in (r.kubectl, r.kubemaint):
            print(f"grace {r.grace} s, {run.tool}: {run.requests} requests, lab CPU {run.lab_cpu:.2f} s: "
                  + ", ".join(f"{k} {n}" for k, n in run.kinds.items()))
            if run.note:
                print(f"  {run.note}")
            if run.error:
                print(f"  ERROR: {run.error}")
    print(f"\ntotal {elapsed:.1f} s")
    failed = any(run.error for r in results for run in (r.kubectl, r.kubemaint))
    if args.record and not failed:
        record(args.record, results, args.pods, elapsed)
        print(f"recorded in {args.record}")
    elif args.record:
        print("not recorded: a drain failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
