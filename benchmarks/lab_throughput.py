"""Throughput of the lab (the Kubernetes API simulator) that the suite and the demo lean on.

Three measurements in one run, all against labs on 127.0.0.1 started by this script:

1. paginated list: `GET /api/v1/pods?limit=500` following `continue`, by 1 and by 16 clients;
2. eviction round trip: `POST .../pods/{name}/eviction` -> 201 on distinct fresh pods,
   by 1 and by 16 clients;
3. start-up of a `large:2000:10` lab (launch to kubeconfig), then the real
   `kubectl get nodes` against it with a fresh cache directory, and the eviction round trip
   once more on that 20,000-pod lab (1 client) to show how its cost grows with the cluster;
4. (as root) 1. and 2. again on `large:200:10:1:etcd`, whose objects are in the control-plane
   machine's etcd: what each write's etcd transaction costs.

Each client is an aiohttp session with exactly one keep-alive connection, verifying TLS with
the lab's CA from the kubeconfig. Every loop is bounded by a count and by a deadline.

    python benchmarks/lab_throughput.py [--quick] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime
import math
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.testing import LabProcess, cpu_model, cpu_seconds  # noqa: E402

CLIENT_COUNTS = (1, 16)
PAGE = 500


@dataclass
class Profile:
    list_scenario: str
    startup_scenario: str
    phase_seconds: float  # the deadline of one measured phase
    max_list_requests: int  # per phase, across all clients
    max_evictions: int  # per phase, across all clients
    etcd_scenario: str = ""  # the list scenario with its objects in the control plane's etcd
    startup_target: float = 30.0


FULL = Profile("large:200:10", "large:2000:10", phase_seconds=5.0, max_list_requests=20000,
               max_evictions=1500, etcd_scenario="large:200:10:1:etcd")
QUICK = Profile("large:50:10", "large:500:10", phase_seconds=1.5, max_list_requests=2000,
                max_evictions=400, etcd_scenario="large:50:10:1:etcd")


@dataclass
class Result:
    benchmark: str
    clients: int | str
    ops: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    connections: int | str = ""
    lab_cpu: float | None = None  # lab process CPU seconds / wall seconds
    note: str = ""
    ratio: float | None = None

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no samples)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)
FIRST_ERRORS: dict[str, str] = {}  # the first failure of each kind, printed after the table


class LabDied(RuntimeError):
    pass


def ensure_alive(lab: LabProcess) -> None:
    """After a failed request: stop at once if the lab process is gone, with its log's tail."""
    if lab.process is not None and lab.process.poll() is not None:
        raise LabDied(f"the lab exited with code {lab.process.returncode}; log tail:\n{log_tail(lab)}")


def log_tail(lab: LabProcess, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(lab.log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


# -- clients -------------------------------------------------------------------------------------


def tls_from_kubeconfig(path: Path) -> tuple[str, ssl.SSLContext]:
    """The lab's server URL (which must be on 127.0.0.1) and a context trusting only its CA."""
    cluster = yaml.safe_load(path.read_text())["clusters"][0]["cluster"]
    server = cluster["server"]
    if urllib.parse.urlsplit(server).hostname != "127.0.0.1":
        raise RuntimeError(f"refusing to benchmark a server that is not on 127.0.0.1: {server}")
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    return server, ssl.create_default_context(cadata=ca)


class Clients:
    """N aiohttp sessions, each limited to a single keep-alive connection to the lab."""

    def __init__(self, lab: LabProcess, count: int) -> None:
        self.lab = lab
        self.count = count
        self.connections = 0
        self.sessions: list[aiohttp.ClientSession] = []
        self.server, self.ssl = tls_from_kubeconfig(lab.kubeconfig)

    async def __aenter__(self) -> Clients:
        trace = aiohttp.TraceConfig()

        async def created(_session, _ctx, _params) -> None:
            self.connections += 1

        trace.on_connection_create_end.append(created)
        headers = {"Authorization": f"Bearer {self.lab.token}", "Accept": "application/json"}
        for _ in range(self.count):
            connector = aiohttp.TCPConnector(limit=1, ssl=self.ssl, keepalive_timeout=60)
            self.sessions.append(aiohttp.ClientSession(
                self.server, connector=connector, headers=headers, trace_configs=[trace],
                timeout=aiohttp.ClientTimeout(total=30), trust_env=False))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in self.sessions:
            await session.close()


def page_metadata(raw: bytes) -> dict:
    """The list's metadata without decoding its items.

    Decoding a 500-pod page (1.1 MB) costs the client ~8 ms, more than the lab takes to serve
    it, so the timed loops decode only the head, which precedes "items" in the lab's lists.
    """
    cut = raw.find(b',"items":[', 0, 4096)
    if cut > 0:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(raw[:cut] + b"}").get("metadata") or {}
    return orjson.loads(raw).get("metadata") or {}


async def list_all(session: aiohttp.ClientSession, latencies: list[float], deadline: float,
                   budget: list[int], *, decode: bool = False) -> tuple[int, int, int]:
    """One paginated list of every pod; returns (requests, items (when decoded), errors)."""
    token = ""
    requests = items = errors = 0
    for _ in range(1000):  # pages of one list; 1000 x 500 is far more pods than any scenario
        if time.monotonic() > deadline or budget[0] <= 0:
            break
        budget[0] -= 1
        params = {"limit": str(PAGE)}
        if token:
            params["continue"] = token
        started = time.perf_counter()
        try:
            async with session.get("/api/v1/pods", params=params) as resp:
                raw = await resp.read()
                status = resp.status
        except TRANSPORT_ERRORS as exc:
            raw, status = repr(exc).encode(), 0
        latencies.append(time.perf_counter() - started)
        requests += 1
        if status != 200:
            errors += 1
            FIRST_ERRORS.setdefault("list", f"{status or 'transport'}: {raw[:200].decode(errors='replace')}")
            break
        if decode:
            page = orjson.loads(raw)
            items += len(page["items"])
            meta = page["metadata"]
        else:
            meta = page_metadata(raw)
        token = meta.get("continue", "")
        if not token:
            break
    return requests, items, errors


async def bench_list(lab: LabProcess, clients: int, profile: Profile) -> Result:
    latencies: list[float] = []
    totals = {"requests": 0, "errors": 0}
    budget = [profile.max_list_requests]
    async with Clients(lab, clients) as pool:
        # Warm-up, decoding everything: each connection's TLS handshake, the lab's per-object
        # encoding cache, and how many pods one complete list returns.
        pages, pods, errors = 0, 0, 0
        for session in pool.sessions:
            pages, pods, errors = await list_all(session, [], time.monotonic() + 10, [1000], decode=True)
        if errors or not pods:
            raise RuntimeError(f"warm-up list failed: {pages} pages, {pods} pods, {errors} errors")
        deadline = time.monotonic() + profile.phase_seconds

        async def client(session: aiohttp.ClientSession) -> None:
            for _ in range(100000):  # full lists; bounded by the deadline and the budget anyway
                if time.monotonic() > deadline or budget[0] <= 0:
                    return
                requests, _, errors = await list_all(session, latencies, deadline, budget)
                totals["requests"] += requests
                totals["errors"] += errors
                if errors:
                    ensure_alive(lab)

        cpu0, started = cpu_seconds(lab.process.pid), time.monotonic()
        await asyncio.gather(*(client(s) for s in pool.sessions))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(lab.process.pid) - cpu0
    rate = totals["requests"] / elapsed * pods / pages
    return Result(f"list pods, limit={PAGE} ({profile.list_scenario})", clients, totals["requests"], elapsed, latencies,
                  totals["errors"], pool.connections, cpu / elapsed,
                  note=f"{pods} pods in {pages} pages; ~{rate:,.0f} pods/s")


async def fresh_pods(session: aiohttp.ClientSession, namespace: str) -> list[str]:
    """Names of the Running, not terminating pods of a namespace."""
    names: list[str] = []
    token = ""
    for _ in range(1000):
        params = {"limit": str(PAGE), **({"continue": token} if token else {})}
        async with session.get(f"/api/v1/namespaces/{namespace}/pods", params=params) as resp:
            resp.raise_for_status()
            page = orjson.loads(await resp.read())
        names += [p["metadata"]["name"] for p in page["items"]
                  if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    return names


async def settle(session: aiohttp.ClientSession, namespace: str, want: int, timeout: float) -> int:
    """Wait (bounded) until the ReplicaSets have replaced what was evicted."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = len(await fresh_pods(session, namespace))
        if count >= want:
            break
        await asyncio.sleep(0.2)
    return count


async def bench_evict(lab: LabProcess, clients: int, profile: Profile, namespace: str,
                      baseline: int) -> Result:
    latencies: list[float] = []
    totals = {"ok": 0, "errors": 0}
    async with Clients(lab, clients) as pool:
        await settle(pool.sessions[0], namespace, baseline, 15.0)
        names = deque((await fresh_pods(pool.sessions[0], namespace))[: profile.max_evictions])
        available = len(names)
        # Warm-up the other connections (TLS handshakes) with a cheap request.
        for session in pool.sessions:
            async with session.get("/version") as resp:
                await resp.read()
        deadline = time.monotonic() + profile.phase_seconds

        async def client(session: aiohttp.ClientSession) -> None:
            while names and time.monotonic() < deadline:  # bounded: each name is used once
                name = names.popleft()
                body = orjson.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                                     "metadata": {"name": name, "namespace": namespace}})
                started = time.perf_counter()
                try:
                    async with session.post(f"/api/v1/namespaces/{namespace}/pods/{name}/eviction",
                                            data=body, headers={"Content-Type": "application/json"}) as resp:
                        raw = await resp.read()
                        status = resp.status
                except TRANSPORT_ERRORS as exc:
                    raw, status = repr(exc).encode(), 0
                latencies.append(time.perf_counter() - started)
                if status == 201:
                    totals["ok"] += 1
                else:
                    totals["errors"] += 1
                    FIRST_ERRORS.setdefault("evict", f"{status or 'transport'}: {raw[:200].decode(errors='replace')}")
                    ensure_alive(lab)

        cpu0, started = cpu_seconds(lab.process.pid), time.monotonic()
        await asyncio.gather(*(client(s) for s in pool.sessions))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(lab.process.pid) - cpu0
    exhausted = " (pool used up)" if not names else ""
    return Result(f"evict pod -> 201 ({profile.list_scenario})", clients, totals["ok"], elapsed, latencies,
                  totals["errors"], pool.connections, cpu / elapsed, note=f"{available} fresh pods{exhausted}")


async def api_benchmarks(profile: Profile, time_scale: float) -> list[Result]:
    results: list[Result] = []
    lab = LabProcess(profile.list_scenario, time_scale=time_scale)
    lab.start()
    try:
        for clients in CLIENT_COUNTS:
            results.append(await bench_list(lab, clients, profile))
            print(f"  list, {clients} client(s): {results[-1].rate:,.0f} req/s", flush=True)
        async with Clients(lab, 1) as one:
            baseline = len(await fresh_pods(one.sessions[0], "default"))
        for clients in CLIENT_COUNTS:
            results.append(await bench_evict(lab, clients, profile, "default", baseline))
            print(f"  evict, {clients} client(s): {results[-1].rate:,.0f} evictions/s", flush=True)
    except Exception as exc:
        if not isinstance(exc, LabDied):
            print(f"lab log tail ({profile.list_scenario}, exit code {lab.process.poll()}):\n{log_tail(lab)}",
                  file=sys.stderr)
        raise
    finally:
        lab.stop()
    for offset in (0, 2):
        one, many = results[offset], results[offset + 1]
        many.ratio = many.rate / one.rate if one.rate else None
    return results


# -- start-up and kubectl --------------------------------------------------------------------------


def bench_startup(profile: Profile) -> list[Result]:
    lab = LabProcess(profile.startup_scenario, time_scale=0.01, ready_timeout=90.0)
    started = time.monotonic()
    lab.start()
    ready = time.monotonic() - started
    results = [Result(f"start-up {profile.startup_scenario}", "-", 1, ready, [ready],
                      note=f"launch to kubeconfig; target < {profile.startup_target:.0f} s"
                           + ("" if ready < profile.startup_target else " MISSED"))]
    try:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            results.append(Result("kubectl get nodes", "-", 0, 0.0, note="skipped: kubectl not found"))
        else:
            results.append(kubectl_get_nodes(kubectl, lab, profile))
        # The same eviction round trip on the big lab: how its cost grows with the cluster.
        big = dataclasses.replace(profile, list_scenario=profile.startup_scenario,
                                  phase_seconds=min(2.0, profile.phase_seconds), max_evictions=300)
        results.append(asyncio.run(bench_evict(lab, 1, big, "default", 0)))
    except Exception as exc:
        if not isinstance(exc, LabDied):
            print(f"lab log tail ({profile.startup_scenario}, exit code {lab.process.poll()}):\n{log_tail(lab)}",
                  file=sys.stderr)
        raise
    finally:
        lab.stop()
    return results


def kubectl_get_nodes(kubectl: str, lab: LabProcess, profile: Profile) -> Result:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1"
    with tempfile.TemporaryDirectory(prefix="kubemaint-bench-kubectl-") as cache:
        started = time.monotonic()
        proc = subprocess.run(
            [kubectl, "--kubeconfig", str(lab.kubeconfig), "--cache-dir", cache,
             "--request-timeout", "60s", "get", "nodes"],
            capture_output=True, text=True, timeout=120, env=env)
        wall = time.monotonic() - started
    lines = len(proc.stdout.splitlines())
    nodes = int(profile.startup_scenario.split(":")[1])
    note = f"exit {proc.returncode}, {lines} lines (want {nodes + 1} incl. header)"
    if proc.returncode:
        note += f": {proc.stderr.strip()[:200]}"
    return Result("kubectl get nodes (fresh cache)", "-", 1 if proc.returncode == 0 else 0,
                  wall, [wall], errors=1 if proc.returncode else 0, note=note)


# -- report ----------------------------------------------------------------------------------------


HEADERS = ("benchmark", "clients", "conns", "ops", "secs", "ops/s", "p50 ms", "p99 ms", "x vs 1",
           "lab CPU", "errors", "notes")


def rows(results: list[Result]) -> list[tuple[str, ...]]:
    out = []
    for r in results:
        timed = isinstance(r.clients, int)
        out.append((
            r.benchmark,
            str(r.clients),
            str(r.connections),
            str(r.ops),
            f"{r.seconds:.2f}",
            f"{r.rate:,.0f}" if timed else "",
            f"{percentile(r.latencies, 0.50) * 1000:.1f}" if timed and r.latencies else "",
            f"{percentile(r.latencies, 0.99) * 1000:.1f}" if timed and r.latencies else "",
            f"{r.ratio:.2f}" if r.ratio is not None else "",
            f"{r.lab_cpu:.0%}" if r.lab_cpu is not None else "",
            str(r.errors),
            r.note,
        ))
    return out


def text_table(results: list[Result]) -> str:
    table = [HEADERS, *rows(results)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    numeric = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(table[0]), rule, *(line(r) for r in table[1:])])


def markdown_table(results: list[Result]) -> str:
    out = ["| " + " | ".join(HEADERS) + " |",
           "|" + "|".join("---" if i in (0, len(HEADERS) - 1) else "---:" for i in range(len(HEADERS))) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(results)]
    return "\n".join(out)


def machine() -> str:
    kubectl = ""
    if shutil.which("kubectl"):
        with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError, KeyError):
            out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True,
                                 text=True, timeout=20).stdout
            kubectl = ", kubectl " + orjson.loads(out)["clientVersion"]["gitVersion"]
    return (f"{os.cpu_count()} CPU cores ({cpu_model()}), {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
            f"{kubectl}")


INTRO = """# Benchmarks

`benchmarks/lab_throughput.py` measures the lab (the Kubernetes API simulator in `lab/`) from
the outside, the way kubemaint and `kubectl` use it. Each run starts its own labs on 127.0.0.1:

1. **list pods**: `GET /api/v1/pods?limit=500`, following `continue` to the end and starting
   over, on a `large:200:10` lab (1,994 pods, 4 pages of about 1.1 MB), by 1 and by 16
   concurrent clients;
2. **evict pod**: `POST /api/v1/namespaces/default/pods/{name}/eviction` (a policy/v1
   Eviction, answered 201) on distinct Running pods of the same lab, by 1 and by 16 clients.
   The lab runs at `--time-scale 0.01`, so graceful deletion ends after 0.3 s and the
   ReplicaSets replace the evicted pods between phases;
3. **start-up**: launching `python -m lab up --scenario large:2000:10` until its kubeconfig
   appears (target: under 30 s), then the real `kubectl --cache-dir <fresh> get nodes`
   against it (exit code, wall time, 2,001 lines with the header), and finally the eviction
   round trip again on that 20,000-pod lab (1 client) to show how it scales.

A client is an aiohttp session with exactly one keep-alive HTTPS connection that verifies the
lab's CA from the kubeconfig (`conns` counts the connections actually opened). All clients
share one asyncio loop in the benchmark process, and the lab is one single-threaded process,
so on two cores 16 clients mainly overlap the client's and the lab's work. `lab CPU` is the
lab process's CPU time over the phase's wall time (100% = one core saturated). The timed list
loops decode only each page's metadata (for `continue`): decoding the 500 items costs the
client about 8 ms, more than the lab needs to serve the page, and would measure the client.
Latencies are per HTTP request (one page for lists); p99 is nearest-rank. Every phase is
bounded by a deadline (5 s; 2 s on the big lab) and a request budget (1,500 evictions).

Run it with:

    make bench                                       # = .venv/bin/python benchmarks/lab_throughput.py
    .venv/bin/python benchmarks/lab_throughput.py --quick   # smaller labs, 1.5 s phases, ~10 s
    .venv/bin/python benchmarks/lab_throughput.py --record docs/benchmarks.md   # adds a section below

The script exits non-zero when a request failed or start-up missed its target. Figures vary
by about 10% between runs on a shared machine.
"""


def record(path: Path, results: list[Result], profile_name: str, elapsed: float) -> None:
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    section = (f"\n## {stamp} ({profile_name} run, {elapsed:.0f} s)\n\n"
               f"Machine: {machine()}.\n\n{markdown_table(results)}\n")
    text = path.read_text() if path.exists() else INTRO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n" + section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller labs and shorter phases")
    parser.add_argument("--record", type=Path, metavar="MARKDOWN",
                        help="append the results as a dated section to this Markdown file")
    parser.add_argument("--skip-startup", action="store_true", help="only the list and eviction phases")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    os.chdir(ROOT)  # `python -m lab` must resolve to this checkout
    started = time.monotonic()
    print(f"lab throughput ({'quick' if args.quick else 'full'}): {os.cpu_count()} cores", flush=True)
    print(f"- list and eviction on {profile.list_scenario}", flush=True)
    try:
        results = asyncio.run(api_benchmarks(profile, time_scale=0.01))
        if not args.skip_startup:
            print(f"- start-up of {profile.startup_scenario} and kubectl get nodes", flush=True)
            results += bench_startup(profile)
        if os.geteuid() == 0:  # the control plane's etcd runs on a machine, which needs root
            print(f"- list and eviction on {profile.etcd_scenario}", flush=True)
            results += asyncio.run(api_benchmarks(dataclasses.replace(profile, list_scenario=profile.etcd_scenario),
                                                  time_scale=0.01))
        else:
            print(f"- skipped {profile.etcd_scenario}: its machine needs root", flush=True)
    except LabDied as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    print()
    print(text_table(results))
    for kind, error in FIRST_ERRORS.items():
        print(f"first {kind} error: {error}")
    print(f"\ntotal {elapsed:.1f} s")
    if args.record:
        record(args.record, results, "quick" if args.quick else "full", elapsed)
        print(f"recorded in {args.record}")
    failed = any(r.errors for r in results) or any("MISSED" in r.note for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
