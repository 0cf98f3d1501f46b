"""The seeds' cluster upgrade through chat, on `seeds-upgrade` (controlplane + node01 at v1.19.0, the
legacy apt.kubernetes.io repo, Deployment blue of 5): `upgrade plan`, then `upgrade to v1.20.0`
approved, snapshot first, controlplane then node01, blue available throughout the end; then each way an
upgrade stops (kubeadm apply failing, a kubelet not coming back, a PDB holding a drain past --timeout)
with its report, and `resume` finishing it once the cause is gone; and a worker SIGKILLed at random
moments, the upgrade still ending right. One stack for the module: each case goes one minor further.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from bot.engine.store import get_job
from lab.testing import wait_until
from tests.chat_driver import Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(105)

TERMINAL = ("succeeded", "failed", "halted", "cancelled")

# Every case kills a worker: the survivor takes over after 4 s of silence instead of 6 (recovery settings).
FAST_TAKE_OVER = {"heartbeat_seconds": 1, "dead_after_seconds": 4, "sweep_seconds": 0.5}

@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-upgrade", time_scale=0.02, workers=2, recovery=FAST_TAKE_OVER) as running:
        yield running


@pytest.fixture
def chat(stack: Stack) -> Iterator[Chat]:
    yield Chat(stack, timeout=60)
    for node in ("controlplane", "node01"):
        stack.lab.set_machine_faults(node, {})


def kubectl(stack: Stack, *args: str) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def nodes_table(stack: Stack) -> dict[str, tuple[str, str]]:
    """NAME -> (STATUS, VERSION) as `kubectl get nodes` prints them."""
    rows = [line.split() for line in kubectl(stack, "get", "nodes").splitlines()[1:]]
    return {row[0]: (row[1], row[-1]) for row in rows}


def session_log(stack: Stack, node: str) -> list[str]:
    """Every command the node ran over SSH, one per line (the lab's machines log them)."""
    return stack.lab.ssh(node, "sudo cat /var/log/kubemaint-lab-sessions.log").stdout.splitlines()


def blue_available(stack: Stack) -> int:
    return int(kubectl(stack, "get", "deployment", "blue", "-o", "jsonpath={.status.availableReplicas}") or 0)


def assert_all_at(stack: Stack, version: str) -> None:
    assert nodes_table(stack) == {"controlplane": ("Ready", version), "node01": ("Ready", version)}
    assert blue_available(stack) == 5


def upgrade(chat: Chat, command: str) -> tuple[object, str]:
    thread = chat.ask(command, timeout=90)
    return thread, thread.approve()


def test_upgrade_plan_shows_the_path_to_the_next_minor(stack: Stack, chat: Chat) -> None:
    plan = text_of(chat.ask("upgrade plan", timeout=90).reply)
    assert "from v1.19.0 to v1.20.15: 1 hop (v1.20.15)" in plan, plan
    assert "controlplane (control plane): kubeadm 1.19.0-00 → 1.20.15-00" in plan
    assert "node01: kubeadm 1.19.0-00 → 1.20.15-00, `kubeadm upgrade node`, drain (default: " in plan
    assert "To run it: `upgrade to v1.20.15`" in plan
    assert "The newest version in the package repo is v1.28." in plan  # the legacy repo, frozen at 1.28
    # Read-only: nothing was installed or switched.
    assert stack.lab.ssh("node01", "kubeadm version -o short").stdout.strip() == "v1.19.0"


def test_the_seeds_upgrade_to_v1_20_0_through_chat(stack: Stack, chat: Chat) -> None:
    thread, job_id = upgrade(chat, "upgrade to v1.20.0")
    card = text_of(thread.card())
    assert "from v1.19.0 to v1.20.0: 1 hop (v1.20.0)" in card and "First: an etcd snapshot on controlplane" in card
    final = text_of(thread.wait_progress("succeeded", timeout=240, what="the upgrade to v1.20.0"))
    assert re.search(r"Backup: backup b-[0-9a-f]{8}", final), final
    assert "v1.20.0 · controlplane (kubeadm upgrade apply)" in final and "v1.20.0 · node01" in final
    assert "all 2 nodes and the control plane at v1.20.0, no skew warning" in final
    assert_all_at(stack, "v1.20.0")
    for node in ("controlplane", "node01"):
        held = stack.lab.ssh(node, "apt-mark showhold").stdout.split()
        assert sorted(held) == ["kubeadm", "kubectl", "kubelet"], f"{node}: {held}"
        assert stack.lab.ssh(node, "kubeadm version -o short").stdout.strip() == "v1.20.0"
    manifest = stack.lab.ssh("controlplane", "sudo cat /etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    assert "kube-apiserver:v1.20.0" in manifest
    listing = text_of(chat.ask("backups").reply)
    assert re.search(r"b-[0-9a-f]{8} +etcd", listing), "the snapshot taken first is in the catalog"
    assert job_id in text_of(chat.ask("jobs").reply)


@pytest.mark.parametrize(("command", "said"), [
    ("upgrade to v1.19.0", "v1.19.0 is older than the cluster's v1.20.0: kubemaint does not downgrade"),
    ("upgrade to v1.21.99", "v1.21.99 is not in the package repo: the v1.21 patches there are v1.21.0 to v1.21.14"),
    ("upgrade to v1.21", "is not a Kubernetes version: expected vMAJOR.MINOR.PATCH"),
    ("upgrade to 1.21.0", "is not a Kubernetes version"),
    ("upgrade to v1.21.0 --max-unavailable 0", "is not a count"),
])
def test_refusals_say_why_and_change_nothing(stack: Stack, chat: Chat, command: str, said: str) -> None:
    before = len(chat.jobs())
    reply = text_of(chat.ask(command, timeout=90).reply)
    assert said in reply, reply
    assert len(chat.jobs()) == before


def test_two_minors_show_two_hops(stack: Stack, chat: Chat) -> None:
    reply = text_of(chat.ask("upgrade to v1.22.0 --dry-run", timeout=90).reply)
    assert "from v1.20.0 to v1.22.0: 2 hops (v1.21.14 → v1.22.0)" in reply, reply
    assert "Hop v1.21.14 (packages 1.21.14-00)" in reply and "Hop v1.22.0 (packages 1.22.0-00)" in reply


def test_a_failing_kubeadm_apply_stops_before_any_node_is_drained_and_resume_finishes(
        stack: Stack, chat: Chat) -> None:
    error = ("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything "
             "into the earlier state. Errors faced: timed out waiting for the condition\n")
    stack.lab.set_machine_faults("controlplane", {"failures": {"kubeadm upgrade apply": {"exitCode": 1,
                                                                                        "stderr": error}}})
    seen_before = len(session_log(stack, "node01"))
    thread, job_id = upgrade(chat, "upgrade to v1.21.0 --skip-snapshot")
    failed = text_of(thread.wait_progress("failed", timeout=180, what="the upgrade to stop"))
    assert "`kubeadm upgrade apply v1.21.0 -y` failed on controlplane (exit 1" in failed, failed
    assert "timed out waiting for the condition" in failed
    assert "no further node was touched" in failed and f"resume {job_id}" in failed
    assert nodes_table(stack) == {"controlplane": ("Ready", "v1.20.0"), "node01": ("Ready", "v1.20.0")}
    on_node01 = "\n".join(session_log(stack, "node01")[seen_before:])
    assert "apt-get update" in on_node01, "the preflight asked node01's repo"
    for change in ("kubeadm upgrade", "apt-get install", "apt-mark hold", "apt-mark unhold", "systemctl restart"):
        assert change not in on_node01, f"node01 was touched: {on_node01}"

    stack.lab.set_machine_faults("controlplane", {})
    chat.ask(f"resume {job_id}")
    chat.wait_job(job_id, "succeeded", timeout=240, what="the resumed upgrade")
    assert_all_at(stack, "v1.21.0")


def test_a_worker_not_coming_back_ready_stays_cordoned_and_resume_finishes(stack: Stack, chat: Chat) -> None:
    stack.lab.set_machine_faults("node01", {"kubeletFails": True})
    # 5 s is what the failing wait costs; the resumed run needs far less (the lab's kubelet is Ready as
    # soon as it runs, and its pods stop in 1.5 s).
    thread, job_id = upgrade(chat, "upgrade to v1.22.0 --skip-snapshot --timeout 5s")
    failed = text_of(thread.wait_progress("failed", timeout=240, what="the upgrade to stop on node01"))
    assert "node01 stays cordoned (`uncordon node01` puts it back in service); no further node" in failed, failed
    assert "node01 failed on its way to v1.22.0 (done on it: packages, kubeadm, cordon, drain, kubelet): it did not "\
           "come back Ready at v1.22.0 within 5s" in failed
    assert kubectl(stack, "get", "node", "node01", "-o", "jsonpath={.spec.unschedulable}") == "true"
    assert nodes_table(stack)["controlplane"] == ("Ready", "v1.22.0")

    stack.lab.set_machine_faults("node01", {})
    chat.ask(f"resume {job_id}")
    chat.wait_job(job_id, "succeeded", timeout=240, what="the resumed upgrade")
    assert_all_at(stack, "v1.22.0")
    assert kubectl(stack, "get", "node", "node01", "-o", "jsonpath={.spec.unschedulable}") == ""


def test_a_pdb_holding_a_drain_past_its_timeout_stops_it_and_resume_finishes(stack: Stack, chat: Chat) -> None:
    pdb = ("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: blue-all, namespace: default}\n"
           "spec: {minAvailable: 5, selector: {matchLabels: {run: blue}}}\n")
    created = subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), "create", "--validate=false",
                              "-f", "-"], input=pdb, text=True, capture_output=True, timeout=60)
    assert created.returncode == 0, created.stderr
    try:
        thread, job_id = upgrade(chat, "upgrade to v1.23.0 --skip-snapshot --timeout 5s")
        card = text_of(thread.card())
        assert "PodDisruptionBudget default/blue-all allows no disruption now" in card, card
        failed = text_of(thread.wait_progress("failed", timeout=240, what="the drain to time out"))
        assert "controlplane stays cordoned (`uncordon controlplane` puts it back in service)" in failed, failed
        assert "its drain stopped: timed out with" in failed and "PDB blue-all" in failed
    finally:
        kubectl(stack, "delete", "pdb", "blue-all")
    chat.ask(f"resume {job_id}")
    chat.wait_job(job_id, "succeeded", timeout=240, what="the resumed upgrade")
    assert_all_at(stack, "v1.23.0")


def test_a_worker_killed_at_random_moments_still_ends_with_a_correct_upgrade(stack: Stack, chat: Chat) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    _, job_id = upgrade(chat, "upgrade to v1.24.0 --skip-snapshot")
    killed = []
    for _ in range(3):
        record = wait_until(lambda: _running(chat, job_id), timeout=120, interval=0.05,
                            message="the upgrade to be running on a worker")
        if record.state != "running":
            break
        time.sleep(rng.uniform(0.2, 3.0))
        record = _running(chat, job_id)
        if record is None or record.state != "running":
            break
        step = next((s.name for s in record.steps if s.state == "running"), "?")
        victim = next(i for i, _ in enumerate(stack.worker_procs) if record.worker.startswith(f"worker{i}-"))
        stack.kill_worker(victim, also=[record.pid], restart=True)
        killed.append(step)
    finished = chat.wait_job(job_id, TERMINAL, timeout=300, what=f"the upgrade after kills in {killed} (seed {seed})")
    assert finished.state == "succeeded", (seed, killed, [(s.name, s.state, s.detail) for s in finished.steps])
    assert killed, f"no kill happened (seed {seed})"
    assert_all_at(stack, "v1.24.0")
    assert kubectl(stack, "get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}").strip() == ""


def test_cancel_stops_the_upgrade_at_the_next_safe_point(stack: Stack, chat: Chat) -> None:
    _, job_id = upgrade(chat, "upgrade to v1.25.0 --skip-snapshot")

    def on_node01():
        record = get_job(chat.redis, job_id)
        step = record and next(s for s in record.steps if s.name == "v1.25.0 · node01")
        return record if step and step.state in ("running", "done") else None

    wait_until(on_node01, timeout=120, interval=0.05, message="the upgrade to reach node01")
    chat.ask(f"cancel {job_id}")
    ended = chat.wait_job(job_id, TERMINAL, timeout=120, what="the cancel to take effect")
    assert ended.state == "cancelled", [(s.name, s.state, s.detail) for s in ended.steps]
    final = next(s for s in ended.steps if s.name == "final check")
    assert final.state == "skipped"
    assert nodes_table(stack)["controlplane"] == ("Ready", "v1.25.0"), "the control plane's hop was finished"


def _running(chat: Chat, job_id: str):
    record = get_job(chat.redis, job_id)
    if record is None:
        return None
    if record.state in TERMINAL:
        return record
    return record if record.state == "running" and record.pid else None


def test_the_job_thread_names_each_node_and_hop(stack: Stack, chat: Chat) -> None:
    jobs = [job for job in chat.jobs() if job.spec.command_text.startswith("upgrade to v1.20.0")]
    assert jobs, "the first upgrade's job is listed"
    shown = text_of(chat.ask(f"job {jobs[0].id}").reply)
    assert "v1.20.0 · controlplane" in shown and "v1.20.0 · node01" in shown
