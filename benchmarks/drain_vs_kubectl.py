"""kubemaint's drain against `kubectl drain`, on two identical fresh lab clusters per scenario.

For each scenario (terminationGracePeriodSeconds 0, then 2 s) this starts two labs from the same
generated scenario file: a tainted control plane, `node01` holding 200 pods of ten Deployments
(one of them with an emptyDir volume) plus two DaemonSet pods, and four other workers with room
for 440 pods. No PodDisruptionBudgets. The labs run at time scale 1.0, so grace periods are real.

- kubectl: `kubectl drain node01 --ignore-daemonsets --delete-emptydir-data --force` with a fresh
  `--cache-dir`, timed from launch to exit (its discovery included);
- kubemaint: the drain planned as the bot plans it before approval (`read_snapshot` +
  `plan_drain` of `drain node01 --force --delete-emptydir-data`), then submitted to a private
  Redis with `bot.jobs.queue.submit`, to one job worker (`python -m bot.jobs`, in-process jobs
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
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.testing import LabProcess  # noqa: E402

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


def resources():
    """The worker's resources factory (`--resources-factory benchmarks.drain_vs_kubectl:resources`):
    what `kubemaint worker` builds, for the lab named in the environment."""
    from redis import Redis

    from bot.jobs.actions import Resources
    from handlers.kube import connect

    return Resources(kube=connect(Path(os.environ[ENV_KUBECONFIG])), redis=Redis.from_url(os.environ[ENV_REDIS]))


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


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc), 0 when unavailable."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# -- request accounting -------------------------------------------------------------------------------

KINDS = (
    (re.compile(r"^POST /api/v1/namespaces/[^/]+/pods/[^/]+/eviction$"), "POST pod eviction"),
    (re.compile(r"^GET /api/v1/namespaces/[^/]+/pods/[^/]+$"), "GET one pod"),
    (re.compile(r"^GET /api/v1/pods$"), "GET pod list"),
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
    lab_cpu: float = 0.0
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
    """`python -m bot.jobs` for one lab: handlers' actions, in-process jobs, this module's resources."""

    def __init__(self, lab: LabProcess, redis_url: str, workdir: Path, name: str) -> None:
        self.log = workdir / f"{name}.log"
        env = {**loopback_env(), ENV_KUBECONFIG: str(lab.kubeconfig), ENV_REDIS: redis_url,
               "PYTHONPATH": str(ROOT)}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.jobs", "--redis-url", redis_url, "--name", name, "--import", "handlers",
                 "--resources-factory", "benchmarks.drain_vs_kubectl:resources", "--worker-class", "simple",
                 "--log-level", "WARNING"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def submit_and_wait(redis, plan, text: str, worker: Worker, timeout: float) -> tuple[float, float, object]:
    """Submit the planned job; returns (submitted at, finished at, final record), both in time.time()."""
    from bot.jobs import queue
    from bot.jobs.model import JobSpec
    from bot.jobs.store import get_job

    spec = JobSpec.create(plan.verb, text, "U0BENCH", plan.steps, approvers=["U0APPROVER"], channel="C0BENCH",
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

    from bot.grammar import parse
    from handlers import kube
    from handlers.cordon import plan_uncordon
    from handlers.drain import plan_drain

    check_loopback(lab)
    redis = Redis.from_url(redis_url)
    worker = Worker(lab, redis_url, workdir, name)
    client = kube.connect(lab.kubeconfig)
    try:
        # Warm-up, not measured: a no-op job (the node is already schedulable) so that the worker
        # has imported everything and is waiting on the queue, as a long-running worker is.
        warm = plan_uncordon(kube.read_snapshot(client), parse(f"uncordon {other_workers()[0]}"))
        _, _, record = submit_and_wait(redis, warm, "uncordon (warm-up)", worker, 30)
        if str(record.state) != "succeeded":
            raise BenchError(f"warm-up job {record.state}: {record.message}\n{worker.tail()}")

        # The plan the approver sees: read before approval, so outside the measured interval.
        lab.admin("POST", "counters/reset")
        planning = time.monotonic()
        command = parse(DRAIN_COMMAND)
        plan = plan_drain(kube.read_snapshot(client), command)
        planning = time.monotonic() - planning
        plan_requests = lab.counters()["total"]
        if plan.refusal or not plan.steps:
            raise BenchError(f"the drain was refused: {plan.refusal}")
        evicted = len(plan.steps[1].args["pods"])

        lab.admin("POST", "counters/reset")
        cpu = cpu_seconds(lab.process.pid if lab.process else None)
        worker_cpu = cpu_seconds(worker.proc.pid)
        submitted, finished, record = submit_and_wait(redis, plan, command.text, worker, DRAIN_TIMEOUT)
        run = Run("kubemaint", finished - submitted, lab_cpu=cpu_seconds(lab.process.pid if lab.process else None) - cpu)
        worker_cpu = cpu_seconds(worker.proc.pid) - worker_cpu
        counters = lab.counters()
        run.requests, run.kinds = counters["total"], by_kind(counters["requests"])
        steps = ", ".join(f"{s.action} {(s.finished_at or 0) - (s.started_at or 0):.2f} s" for s in record.steps
                          if s.started_at)
        run.note = (f"{evicted} pods in the plan; steps: {steps}; worker CPU {worker_cpu:.2f} s; "
                    f"plan before approval (not counted): {plan_requests} requests, {planning:.2f} s")
        if str(record.state) != "succeeded":
            run.error = f"job {record.id} {record.state}: {record.message}\n{worker.tail()}"
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
    return "\n".join(out)


def kubectl_version() -> str:
    with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError, KeyError):
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=20, env=loopback_env()).stdout
        return json.loads(out)["clientVersion"]["gitVersion"]
    return "unknown"


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPU cores ({model or platform.machine()}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, kubectl {kubectl_version()}")


EXPLANATION = """\
What the figures say:

- **Requests.** Anyone who respects PodDisruptionBudgets must send one eviction `POST` per pod,
  so 200 requests is the floor for this drain, for kubectl and kubemaint alike. kubectl adds
  one `GET` of each pod per second while it waits for the pod to go (from the moment its
  eviction is accepted: one per pod with grace 0, more with a real grace period), plus its
  discovery, the node, the pod list and one `GET` per DaemonSet. kubemaint adds a handful of
  lists: the worker's re-plan snapshot (nodes, pods, PDBs, DaemonSets), the pods on the node
  before evicting and before waiting, and one watch instead of the per-pod `GET`s. Both end
  up close to their floors; the 0.25x request target is below the eviction floor (0.25 x
  kubectl's ~{kubectl_req} requests = ~{quarter} < 200 evictions) and no drain that evicts
  pod by pod through the Eviction API can meet it. Meeting it would need deleting pods
  without evictions (ignoring PDBs) or a server-side drain, neither of which kubemaint does.
- **Wall time.** kubectl's time is mostly its own client-side rate limiter (client-go's token
  bucket: it logs `Waited for ... due to client-side throttling`); its {kubectl_req} requests
  take {kubectl_wall} s. kubemaint's worker sends its evictions from 16 threads without a
  client-side limiter, so the drain takes about as long as the lab needs to answer 200
  evictions plus the longest grace period. Both ratios are far under 0.5x.
- kubemaint's figure is the drain after approval (submission to job succeeded) through a
  private Redis and one warm worker, not through the chat; the plan shown before approval
  costs {plan_req} more requests (a full snapshot) and is not counted, as kubectl's drain has
  no such step. The lab, Redis, the worker and kubectl all share the machine's cores.
"""


def record(path: Path, results: list[Result], pods: int, elapsed: float) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    first = results[0]
    plan_req = re.search(r"plan before approval \(not counted\): (\d+) requests", first.kubemaint.note)
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
        + EXPLANATION.format(kubectl_req=first.kubectl.requests, quarter=int(first.kubectl.requests * 0.25),
                             kubectl_wall=f"{first.kubectl.wall:.1f}",
                             plan_req=plan_req.group(1) if plan_req else "a few")
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
    from lab.redis_server import RedisServer

    os.chdir(ROOT)  # `python -m lab` and `python -m bot.jobs` must resolve to this checkout
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
            print(f"grace {r.grace} s, {run.tool}: {run.requests} requests: "
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
