"""What `appendfsync always` costs kubemaint, beside `everysec`, on its own writes.

kubemaint asks for `always` (docs/operations.md): with `everysec`, a Redis killed while a
background fsync is slow loses up to 2 s of writes it already acknowledged. This runs the writes
a chat command makes (the outbox queueing a reply and coalescing edits of a progress message, the
audit trail) against one lab Redis per mode, from one client and from eight at once, and prints
the latency per write and the writes a second.

    python benchmarks/redis_fsync.py [--writes N] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from redis import Redis

from benchmarks.recording import publish
from bot.chat.outbox import Outbox
from bot.engine.audit import audit
from lab.redis_server import RedisServer

MODES = ("everysec", "always")
CLIENTS = (1, 8)


def one_command(redis: Redis, outbox: Outbox) -> list[float]:
    """The writes of one command, each timed: a reply queued, three edits of it, two audit entries."""
    timings = []
    started = time.perf_counter()
    ref = outbox.post("C0OPS", "Job `j-00000000` · `drain node01` · running")
    timings.append(time.perf_counter() - started)
    for step in range(3):
        started = time.perf_counter()
        outbox.update("C0OPS", ref, f"step {step} done")
        timings.append(time.perf_counter() - started)
    for event in ("job.step", "job.result"):
        started = time.perf_counter()
        audit(redis, event, job="j-00000000", step="evict pods")
        timings.append(time.perf_counter() - started)
    return timings


def measure(url: str, writes: int, clients: int) -> tuple[float, float, float]:
    """Median and p99 latency of one write (ms), and writes a second, with `clients` at once."""
    per_client = max(1, writes // clients // 6)

    def client(_: int) -> list[float]:
        redis = Redis.from_url(url)
        outbox = Outbox(redis, lambda _user: [])
        return [t for _ in range(per_client) for t in one_command(redis, outbox)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = [t for batch in pool.map(client, range(clients)) for t in batch]
    elapsed = time.perf_counter() - started
    timings.sort()
    return (statistics.median(timings) * 1000, timings[int(len(timings) * 0.99)] * 1000, len(timings) / elapsed)


def run(writes: int) -> str:
    lines = ["| appendfsync | clients | median write (ms) | p99 write (ms) | writes/s |", "|---|---:|---:|---:|---:|"]
    results = {}
    for mode in MODES:
        with RedisServer() as server:
            server.client().config_set("appendfsync", mode)
            for clients in CLIENTS:
                results[mode, clients] = measure(server.url, writes, clients)
                median, p99, rate = results[mode, clients]
                lines.append(f"| `{mode}` | {clients} | {median:.2f} | {p99:.2f} | {rate:,.0f} |")
    slower = results["always", 1][0] / results["everysec", 1][0]
    return "\n".join(lines) + (f"\n\n`always` / `everysec`, one client, median write: {slower:.1f}x. "
                               f"{writes} writes per row: a reply queued, three edits, two audit entries per command.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=6000)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # no audit lines
    publish(run(args.writes), record=args.record, heading="Redis appendfsync always vs everysec",
            script="redis_fsync.py", setup="2 cores, the lab's Redis on the machine's disk. kubemaint asks for "
            "`always` (docs/operations.md): with `everysec` a Redis killed during a slow fsync loses up to 2 s of "
            "acknowledged writes. A busy drain writes a few dozen times a second, so either mode has ample room.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
