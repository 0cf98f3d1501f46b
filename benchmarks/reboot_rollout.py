"""Rolling reboots: one node's reboot round trip, and `reboot --needed` over N workers in waves, against the
ideal of (waves x one node) measured in the same run, on `upgrade-fleet:N` (3 control planes and N workers,
every one a machine; the lab's machines boot in `bootSeconds` x time scale).

First `reboot node01` alone: its step is one node's cycle (checks, cordon, drain, `systemctl reboot`, a new
boot id, Ready and SSH, uncordon, health gate), and its "back in Ns" is the reboot round trip (from
`systemctl reboot` to the node Ready on its new boot). Then every other worker asks for a reboot
(/var/run/reboot-required) and `reboot --needed --max-unavailable W` rolls them: the rollout is from the first
wave's start to the last wave's end. Target: rollout <= 1.3 x (waves x one node).

    python benchmarks/reboot_rollout.py [--workers 20] [--wave 5] [--record docs/benchmarks.md]
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
from benchmarks.upgrade_rollout import run_job
from lab.stack import Stack

TARGET_RATIO = 1.3
POLICIES = {verb: {"approval_required": False} for verb in ("reboot", "reboot-needed")}


def run(workers: int, wave: int) -> str:
    with Stack(scenario=f"upgrade-fleet:{workers}", time_scale=0.2, approval_required=(),
               policy_overrides=POLICIES) as stack:
        redis = Redis.from_url(stack.redis.url)
        first = run_job(stack, redis, "reboot node01")
        alone = first.steps[0]
        one_node = alone.finished_at - alone.started_at
        found = re.search(r"back in (\d+)s", alone.detail or "")
        round_trip = float(found[1]) if found else float("nan")
        others = [f"node{i:02d}" for i in range(2, workers + 1)]
        for name in others:
            done = stack.lab.ssh(name, "sudo touch /var/run/reboot-required")
            if done.returncode != 0:
                raise RuntimeError(f"{name}: {done.stderr}")
        rest = run_job(stack, redis, f"reboot --needed --max-unavailable {wave}")
        waves = [s for s in rest.steps if s.action == "maintain.nodes"]
        rollout = max(s.finished_at for s in waves) - min(s.started_at for s in waves)
        boot_seconds = stack.lab.machine("node01").get("bootSeconds", 30) * 0.2
    ideal = math.ceil((workers - 1) / wave) * one_node
    ratio = rollout / ideal
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    longest = max(s.finished_at - s.started_at for s in waves)
    return "\n".join([
        "| measure | seconds |", "|---|---:|",
        f"| the lab machine's boot (bootSeconds x time scale) | {boot_seconds:.1f} |",
        f"| reboot round trip: `systemctl reboot` to Ready on the new boot (node01) | {round_trip:.0f} |",
        f"| one worker alone (checks, cordon, drain, reboot, back, uncordon, gate) | {one_node:.1f} |",
        f"| {workers - 1} workers in {len(waves)} waves of {wave} (first start to last end) | {rollout:.1f} |",
        f"| ideal: {len(waves)} waves x one worker alone | {ideal:.1f} |",
        f"| longest wave | {longest:.1f} |",
        "",
        f"Rollout / ideal = **{ratio:.2f}** (target <= {TARGET_RATIO}: {verdict}).",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--wave", type=int, default=5)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    publish(run(args.workers, args.wave), record=args.record, heading="Reboot rollout in waves",
            script="reboot_rollout.py",
            setup="2 cores, lab time scale 0.2 (a machine boots in 6 s), one worker process.", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
