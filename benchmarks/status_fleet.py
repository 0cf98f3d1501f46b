"""`status` on a 2,000-node fleet: the reads it makes, old and new side by side, and the answer through chat.

Against one lab `large:NODES:PODS` (API objects only, no machines, so no SSH is involved):

1. the reads, in this process, ROUNDS times each, alternating: every node and every pod in full (what
   `status` read until now: `read_snapshot`) versus every node, kube-system's pods and the pod count
   per node from the API's pod Table without objects (`read_status`); and the text built from each;
2. through chat (the bot with its handler processes, Redis, the Slack emulator): the first `status`
   after the bot started and later ones, from the message to the summary in the thread, and to the
   attached table; the bot's resident memory (its process and every child) after them.

    python benchmarks/status_fleet.py [--nodes 2000] [--pods 10] [--rounds 5] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.recording import publish
from bot.cluster import kube
from handlers.status import status_answer, status_report
from lab.stack import CHANNEL, Stack
from lab.testing import LabProcess, child_pids, cpu_seconds, wait_until

BOT = "U0BOT"
TARGETS_MS = {"first": 1500.0, "later": 1000.0}
ANALYSIS = """\
Where the time went: the old `status` listed every pod in full (20,000 pods, 43 MB of JSON from the
lab's API, decoded and turned into PodInfo objects: about 2-3 s of its 2.6-2.9 s) and counted each
node's pods by scanning every pod once per node (40 million comparisons at 2,000 nodes); its first
call also built the kube client and opened its first TLS connection (1.2 s in a fresh process). Now it reads every
node in full, kube-system's pods in full (the static pods name the control plane's versions) and the
pods as the API's Table without objects (the cells only, 2 MB, in pages of 5,000 rows), counts them in
one pass, and each handler process builds its kube client and connects before its first request.
What is left is the floor of this lab: its Python API server prints the 20,000 pod rows (about
0.4 s of the read; a real kube-apiserver prints them in Go), and the chat path adds 0.3-0.4 s
(the emulator's delivery, the ack, the pipe to a handler process, the outbox through Redis and
`chat.postMessage`). On the idle 2-core machine both targets are met (first about 0.4 s, later
ones' median about 0.4 s, slowest 0.7 s). Under load the margin goes: with a load average of 6-10 from
other work on the same cores, the later answers' median was about 1 s and the slowest went over it,
while the first still met its 1.5 s. The bot's memory is its five Python processes (the Slack
process, the fork server, two handlers and the background process), about 110 MB each on average;
`status` keeps nothing between requests (no cache of nodes or pods)."""


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def reads(lab: LabProcess, rounds: int) -> dict[str, list[float]]:
    """ms per read and per answer built, old path vs new, alternating so both see the same machine load."""
    client = kube.connect(lab.kubeconfig)
    times: dict[str, list[float]] = {"old read": [], "old answer": [], "new read": [], "new answer": []}
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            snapshot = kube.read_snapshot(client, budgets=False)
            times["old read"].append(ms_since(started))
            started = time.perf_counter()
            status_report(snapshot, 21)
            times["old answer"].append(ms_since(started))
            started = time.perf_counter()
            system, pods = kube.read_status(client)
            times["new read"].append(ms_since(started))
            started = time.perf_counter()
            status_answer(system, 21, pods_per_node=pods)
            times["new answer"].append(ms_since(started))
    finally:
        client.close()
    return times


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants (the bot's fork server and handler processes), MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(child_pids(current))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def chat(scenario: str, rounds: int) -> tuple[list[float], list[float], float]:
    """(ms to the summary [first, later...], ms to the attached table [first, later...], the bot's RSS in MB)."""
    with Stack(scenario=scenario, machines=False, time_scale=0.2, workers=1) as stack:
        client = stack.slack.client
        settled(stack)
        to_reply, to_file = [], []
        for _ in range(rounds + 1):
            started = time.perf_counter()
            said = client.say("U0ALICE", CHANNEL, f"<@{BOT}> status")
            client.wait_for_message(lambda m, ts=said["ts"]: m.get("user") == BOT and m.get("thread_ts") == ts
                                    and m.get("ts") != ts, channel=CHANNEL, timeout=120)
            to_reply.append(ms_since(started))
            client.wait_for(lambda ts=said["ts"]: client.files(CHANNEL, thread_ts=ts), timeout=120,
                            what="the attached table")
            to_file.append(ms_since(started))
        return to_reply, to_file, rss_mb(stack.bot.pid)


def settled(stack: Stack, processes: int = 3) -> None:
    """Until the bot's handler and background processes have started and stopped working (their
    start-up: imports, the kube client's first connection): the first `status` is the first answer
    of a running bot, not a wait for its start."""
    wait_until(lambda: len(stack.bot_handlers()) >= processes, 120, "the bot's handler processes")

    def idle() -> bool:
        before = sum(cpu_seconds(pid) for pid in stack.bot_handlers())
        time.sleep(1.0)
        return sum(cpu_seconds(pid) for pid in stack.bot_handlers()) - before < 0.05

    wait_until(idle, 120, "the bot's start-up to finish")


def row(name: str, values: list[float]) -> str:
    return f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} |"


def run(nodes: int, pods: int, rounds: int) -> str:
    scenario = f"large:{nodes}:{pods}"
    with LabProcess(scenario, time_scale=0.2, machines=False) as lab:
        times = reads(lab, rounds)
    to_reply, to_file, rss = chat(scenario, rounds)
    old = statistics.median(times["old read"]) + statistics.median(times["old answer"])
    new = statistics.median(times["new read"]) + statistics.median(times["new answer"])
    first, later = to_reply[0], to_reply[1:]
    met = {"first": first <= TARGETS_MS["first"], "later": max(later) <= TARGETS_MS["later"]}
    return "\n".join([
        f"Lab `{scenario}`: {nodes} nodes, {(nodes - 1) * pods} pods; {rounds} rounds.",
        "",
        "| reads and answer, in process (ms) | median | min | max |",
        "|---|---:|---:|---:|",
        row("old: every node and pod in full (`read_snapshot`)", times["old read"]),
        row("old: the answer built from it", times["old answer"]),
        row("new: nodes, kube-system pods, pod Table without objects (`read_status`)", times["new read"]),
        row("new: the summary and the table file built", times["new answer"]),
        "",
        f"Old vs new, read and answer: {old:,.0f} ms vs {new:,.0f} ms, {old / new:.1f}x faster.",
        "",
        "| through chat (ms, message to reply) | first | later, median | later, max | target |",
        "|---|---:|---:|---:|---|",
        f"| `status`: the summary in the thread | {first:,.0f} | {statistics.median(later):,.0f} | "
        f"{max(later):,.0f} | first <= {TARGETS_MS['first']:,.0f}, later <= {TARGETS_MS['later']:,.0f}: "
        f"{'met' if met['first'] else 'NOT met'} / {'met' if met['later'] else 'NOT met'} |",
        f"| `status`: the table attached | {to_file[0]:,.0f} | {statistics.median(to_file[1:]):,.0f} | "
        f"{max(to_file[1:]):,.0f} | |",
        "",
        f"The bot's resident memory after these (its process, fork server, handler and background "
        f"processes): {rss:,.0f} MB.",
        "",
        ANALYSIS,
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    publish(run(args.nodes, args.pods, args.rounds), record=args.record, heading="Status at fleet scale",
            script="status_fleet.py", setup="2 cores shared by the lab, the bot (a Slack process and 2 handler "
            "processes), Redis and the Slack emulator.", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
