"""A rolling kubeadm upgrade of 30 workers in waves of 5, against the ideal of 6 waves x one node's upgrade
time measured in the same run, on `upgrade-fleet:30` (3 control planes, 30 workers, all machines, v1.28 on
pkgs.k8s.io v1.28, Deployments with PDBs).

First `upgrade to v1.29.N --nodes node01` upgrades the control planes and node01 alone: node01's step is one
node's upgrade time (repo switch, kubeadm, `kubeadm upgrade node`, drain, kubelet, Ready, uncordon, health
gate). Then `upgrade to v1.29.N --max-unavailable 5` rolls the 29 other workers in 6 waves: the rollout is
from the first wave's start to the last wave's end. Target: rollout <= 1.3 x (6 x one node).

    python benchmarks/upgrade_rollout.py [--workers 30] [--wave 5] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.recording import publish
from bot.engine.store import JobRecord, get_job
from lab.stack import CHANNEL, USERS, Stack
from lab.testing import wait_until

BOT = "U0BOT"
TARGET_RATIO = 1.3


def ask(stack: Stack, text: str) -> dict:
    said = stack.slack.client.say(USERS["operator"], CHANNEL, f"<@{BOT}> {text}")
    return stack.slack.client.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == said["ts"]
                                               and m.get("ts") != said["ts"], channel=CHANNEL, timeout=300)


def run_job(stack: Stack, redis: Redis, text: str) -> JobRecord:
    reply = ask(stack, text)
    found = re.search(r"j-[0-9a-f]{8}", reply["text"])
    if found is None:
        raise RuntimeError(f"{text!r} did not start a job: {reply['text']}")
    record = wait_until(lambda: (r := get_job(redis, found[0])) and r.state in ("succeeded", "failed", "halted",
                                                                                   "cancelled") and r,
                        timeout=3600, interval=1.0, message=f"{text} to end")
    if record.state != "succeeded":
        failed = [(s.name, s.detail) for s in record.steps if s.state == "failed"]
        raise RuntimeError(f"{text!r} ended {record.state}: {failed}")
    return record


def newest_patch(stack: Stack) -> str:
    reply = ask(stack, "upgrade plan")
    found = re.search(r"to (v1\.29\.\d+)", reply["text"])
    if found is None:
        raise RuntimeError(f"`upgrade plan` found no v1.29 target: {reply['text'][:400]}")
    return found[1]


def run(workers: int, wave: int) -> str:
    with Stack(scenario=f"upgrade-fleet:{workers}", time_scale=0.2, approval_required=(),
               policy_overrides={"upgrade": {"approval_required": False}}) as stack:
        redis = Redis.from_url(stack.redis.url)
        target = newest_patch(stack)
        first = run_job(stack, redis, f"upgrade to {target} --nodes node01 --skip-snapshot")
        alone = next(s for s in first.steps if s.name == f"{target} · node01")
        one_node = alone.finished_at - alone.started_at
        planes = [s for s in first.steps if s.action == "upgrade.nodes" and s is not alone]
        control_planes = sum(s.finished_at - s.started_at for s in planes)
        rest = run_job(stack, redis, f"upgrade to {target} --max-unavailable {wave} --skip-snapshot")
        waves = [s for s in rest.steps if s.action == "upgrade.nodes"]
        rollout = max(s.finished_at for s in waves) - min(s.started_at for s in waves)
    ideal = math.ceil((workers - 1) / wave) * one_node
    ratio = rollout / ideal
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    longest = max(s.finished_at - s.started_at for s in waves)
    return "\n".join([
        "| measure | seconds |", "|---|---:|",
        f"| one worker alone (node01: packages, kubeadm, drain, kubelet, Ready, uncordon, gate) | {one_node:.1f} |",
        f"| 3 control planes, one at a time (the first with `kubeadm upgrade apply`) | {control_planes:.1f} |",
        f"| {workers - 1} workers in {len(waves)} waves of {wave} (first start to last end) | {rollout:.1f} |",
        f"| ideal: {len(waves)} waves x one worker alone | {ideal:.1f} |",
        f"| longest wave | {longest:.1f} |",
        "",
        f"Rollout / ideal = **{ratio:.2f}** (target <= {TARGET_RATIO}: {verdict}); upgrade to {target}.",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=30)
    parser.add_argument("--wave", type=int, default=5)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    publish(run(args.workers, args.wave), record=args.record, heading="Upgrade rollout in waves",
            script="upgrade_rollout.py",
            setup="2 cores, lab time scale 0.2 (the kubelet's and the pods' waits are real), one worker process.",
            started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
