"""`backup etcd` time and `restore etcd` downtime, through chat, on two labs whose API keeps its objects in
the control plane's real etcd: `seeds-upgrade` and a generated lab of about 5,000 pods.

For each lab: the time from asking `backup etcd` to its job's success; then `restore etcd from ID`
(approved by two approvers) with a probe polling the API every 50 ms from this process: the downtime
is from the first refused probe to the first answered one, and the whole job's time beside it.

    python benchmarks/etcd_backup.py [--rounds 3] [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import re
import ssl
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.recording import publish
from lab.stack import CHANNEL, USERS, Stack

BOT = "U0BOT"
LABS = ("seeds-upgrade", "large:50:100:1:etcd")


class Probe:
    """GET /version every 50 ms; records when the API stopped and started answering."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        self.url = config["clusters"][0]["cluster"]["server"] + "/version"
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.down_at: float | None = None
        self.up_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url, context=self.context, timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            up = self._answers()
            now = time.monotonic()
            if not up and self.down_at is None:
                self.down_at = now
            if up and self.down_at is not None and self.up_at is None:
                self.up_at = now

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ask(stack: Stack, text: str, user: str = USERS["operator"]) -> dict:
    said = stack.slack.client.say(user, CHANNEL, f"<@{BOT}> {text}")
    return stack.slack.client.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == said["ts"]
                                               and m.get("ts") != said["ts"], channel=CHANNEL, timeout=60)


def wait_text(stack: Stack, ts: str, pattern: str, timeout: float) -> str:
    thread = lambda: [m for m in stack.slack.client.messages(CHANNEL) if m.get("thread_ts") == ts]  # noqa: E731
    return stack.slack.client.wait_for(lambda: next((m["text"] for m in thread() if re.search(pattern, m["text"])),
                                                    None), timeout=timeout, what=pattern)


def one_round(stack: Stack) -> tuple[float, float, float]:
    started = time.monotonic()
    reply = ask(stack, "backup etcd")
    final = wait_text(stack, reply["thread_ts"], r"succeeded|failed", 300)
    backup_seconds = time.monotonic() - started
    backup_id = re.search(r"backup (b-[0-9a-f]{8})", final)
    if backup_id is None:
        raise RuntimeError(f"backup etcd did not succeed: {final}")
    card = ask(stack, f"restore etcd from {backup_id[1]}")
    stack.slack.client.click(USERS["approver"], CHANNEL, card["ts"], "approve")
    stack.slack.client.wait_for(lambda: "1 of 2" in str(stack.slack.client.message(CHANNEL, card["ts"])),
                                timeout=30, what="one approval")
    with Probe(stack.lab.kubeconfig) as probe:
        approved = time.monotonic()
        stack.slack.client.click(USERS["approver2"], CHANNEL, card["ts"], "approve")
        done = wait_text(stack, card["thread_ts"], r"· succeeded|· failed", 180)
        job_seconds = time.monotonic() - approved
    if "succeeded" not in done or probe.down_at is None or probe.up_at is None:
        raise RuntimeError(f"the restore did not go down and up as expected: {done}")
    return backup_seconds, probe.up_at - probe.down_at, job_seconds


def run(rounds: int) -> str:
    lines = ["| lab | objects in etcd | backup etcd (s) | restore: API down (s) | restore job (s) |",
             "|---|---:|---:|---:|---:|"]
    for scenario in LABS:
        with Stack(scenario=scenario, time_scale=0.2, approval_required=()) as stack:
            keys = stack.lab.ssh("controlplane", "sudo etcdctl --endpoints=https://127.0.0.1:2379 "
                                 "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt "
                                 "--key=/etc/kubernetes/pki/etcd/server.key get /registry --prefix --keys-only "
                                 "| grep -c registry").stdout.strip()
            ask(stack, "help")  # the bot's first message pays its imports
            results = [one_round(stack) for _ in range(rounds)]
        med = [statistics.median(r[i] for r in results) for i in range(3)]
        spread = [f"{min(r[i] for r in results):.1f}-{max(r[i] for r in results):.1f}" for i in range(3)]
        lines.append(f"| `{scenario}` | {keys} | {med[0]:.1f} ({spread[0]}) | {med[1]:.1f} ({spread[1]}) | "
                     f"{med[2]:.1f} ({spread[2]}) |")
    return "\n".join(lines) + f"\n\nMedians of {rounds} rounds, (min-max) beside them."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    publish(run(args.rounds), record=args.record, heading="etcd backup and restore", script="etcd_backup.py",
            setup="2 cores, lab time scale 0.2 (the kubelet's and etcd's waits are real).", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
