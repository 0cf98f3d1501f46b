"""Reading the nodes over SSH for `status`: 30 lab machines, asked one after another and all at once.

Against one lab with MACHINES nodes that are machines (`large:MACHINES:2:MACHINES`, real sshd each):

1. lab start-up: launch -> kubeconfig, and -> every machine's sshd listening;
2. the cluster `status` reboot check (bot/nodes/survey.py) on every node: with new connections
   (as the first `status` after the bot starts) and reusing them (every later one), asked one
   node after another versus all at once;
3. `status NODE`'s facts script on one node, new connection and reused;
4. the whole thing through chat (bot, Redis, Slack emulator): `status` and `status NODE`, first
   and later, time from the message to the bot's reply.

    python benchmarks/node_status.py [--machines 30] [--rounds 5] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.recording import publish
from bot.nodes import JobRef, NodeShell, SshConfig, survey
from bot.nodes.survey import REBOOT_SCRIPT, ask_nodes, parse_reboot_need, read_facts
from lab.stack import CHANNEL, Stack
from lab.testing import LabProcess, wait_until

JOB = JobRef(job_id=None, requester="benchmark")
CAP = 30.0  # generous: the benchmark measures how long answers take, not the cap
BOT = "U0BOT"


def shell_for(lab: LabProcess) -> NodeShell:
    port = next(iter(lab.machines().values()))["port"]
    return NodeShell(SshConfig(user="kubemaint", known_hosts=lab.known_hosts, key_file=lab.ssh_key, port=port))


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def survey_times(lab: LabProcess, nodes: dict[str, str], parallel: int, rounds: int) -> tuple[float, list[float]]:
    """(first with new connections, [later ones reusing them]) in ms; every node must answer "no"."""
    saved = survey.MAX_PARALLEL
    survey.MAX_PARALLEL = parallel
    shell = shell_for(lab)
    try:
        def ask() -> None:
            answers = ask_nodes(shell, nodes, REBOOT_SCRIPT, parse_reboot_need, cap_seconds=CAP, job=JOB)
            bad = {node: answer.problem for node, answer in answers.items() if answer.value is None}
            if bad:
                raise RuntimeError(f"nodes did not answer: {bad}")
        first, _ = timed(ask)
        return first, [timed(ask)[0] for _ in range(rounds)]
    finally:
        survey.MAX_PARALLEL = saved
        shell.close()


def facts_times(lab: LabProcess, node: str, address: str, rounds: int) -> tuple[float, list[float]]:
    shell = shell_for(lab)
    try:
        first, _ = timed(lambda: read_facts(shell, node, address, deadline=CAP, job=JOB))
        return first, [timed(lambda: read_facts(shell, node, address, deadline=CAP, job=JOB))[0]
                       for _ in range(rounds)]
    finally:
        shell.close()


def chat_times(scenario: str, rounds: int) -> dict[str, tuple[float, list[float]]]:
    with Stack(scenario=scenario, time_scale=0.2) as stack:
        client, channel = stack.slack.client, CHANNEL

        def ask(text: str) -> float:
            started = time.perf_counter()
            said = client.say("U0ALICE", channel, f"<@{BOT}> {text}")
            client.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == said["ts"]
                                    and m.get("ts") != said["ts"], channel=channel, timeout=60)
            return (time.perf_counter() - started) * 1000

        ask("help")  # the bot's own first message costs it imports; not what is measured here
        results = {}
        for text in ("status", "status node0001"):
            first = ask(text)
            results[text] = (first, [ask(text) for _ in range(rounds)])
        return results


def row(name: str, first: float, later: list[float]) -> str:
    return f"| {name} | {first:,.0f} | {statistics.median(later):,.0f} | {max(later):,.0f} |"


def run(machines: int, rounds: int) -> str:
    scenario = f"large:{machines}:2:{machines}"
    started = time.monotonic()
    lab = LabProcess(scenario, time_scale=0.2)
    lab.start()
    kubeconfig_s = time.monotonic() - started
    try:
        wait_until(lambda: len(lab.machines()) == machines
                   and all(m["sshd"] == "listening" for m in lab.machines().values()), 60, "every sshd")
        machines_s = time.monotonic() - started
        nodes = {name: m["address"] for name, m in lab.machines().items()}
        one_by_one = survey_times(lab, nodes, 1, rounds)
        at_once = survey_times(lab, nodes, survey.MAX_PARALLEL, rounds)
        worker = sorted(nodes)[1]
        facts = facts_times(lab, worker, nodes[worker], rounds)
    finally:
        lab.stop()
    chat = chat_times(scenario, rounds)
    lines = [
        f"Lab `{scenario}`: kubeconfig after {kubeconfig_s:.1f} s, all {machines} sshd listening after "
        f"{machines_s:.1f} s.",
        "",
        f"| what (ms; {rounds} later rounds) | first (new connections) | later, median | later, max |",
        "|---|---:|---:|---:|",
        row(f"reboot check, {machines} nodes one after another", *one_by_one),
        row(f"reboot check, {machines} nodes at once (up to {survey.MAX_PARALLEL})", *at_once),
        row("`status NODE` facts script, one node", *facts),
        row(f"chat: `status` ({machines} nodes, reply in thread)", *chat["status"]),
        row("chat: `status node0001`", *chat["status node0001"]),
        "",
        f"At once vs one after another: {one_by_one[0] / at_once[0]:.1f}x faster with new connections, "
        f"{statistics.median(one_by_one[1]) / statistics.median(at_once[1]):.1f}x reusing them.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    # Every node command is logged (bot/nodes); thousands of those lines would bury the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.monotonic()
    publish(run(args.machines, args.rounds), record=args.record, heading="Node status over SSH",
            script="node_status.py", setup="2 cores; lab machines are real sshd processes on loopback addresses, "
            "the bot's side is paramiko (bot/nodes).", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
