"""Drain through chat, end to end: the bot, workers, Redis, the Slack emulator and the lab,
with kubectl as the witness of what happened to the cluster."""

from __future__ import annotations

import subprocess

import pytest

from bot.contract.reports import ending_text
from tests.chat_driver import Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(82)


@pytest.fixture(scope="module")
def seeds():
    with Stack(scenario="seeds-os-upgrade", time_scale=0.05, workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def shop():
    with Stack(scenario="three-workers", time_scale=0.05, workers=2) as running:
        yield running


def fresh(stack: Stack) -> Chat:
    """The stack's channel with a clean cluster and no API faults."""
    return Chat(stack).reset()


def kubectl_nodes(stack: Stack) -> dict[str, str]:
    out = subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), "get", "nodes", "--no-headers"],
                         capture_output=True, text=True, timeout=60).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines()}


def pods_by_node(stack: Stack, namespace: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in stack.lab.pods(namespace)
            if not p["metadata"].get("deletionTimestamp")}


# -- the seeds' scenario ---------------------------------------------------------------------


def test_drain_is_refused_because_of_hr_app(seeds):
    chat = fresh(seeds)
    reply = chat.ask("drain node01").reply
    assert "hr-app" in reply["text"] and "--force" in reply["text"]
    assert not reply.get("blocks")  # refused before approval: no card
    assert kubectl_nodes(seeds)["node01"] == "Ready"


def test_forced_drain_after_approval_moves_apps_and_loses_hr_app(seeds):
    chat = fresh(seeds)
    drain = chat.ask("drain node01 --force")
    plan = text_of(drain.reply)
    assert "hr-app" in plan and "not recreated" in plan
    assert kubectl_nodes(seeds)["node01"] == "Ready"  # nothing before approval
    job_id = drain.approve()
    record = chat.wait_job(job_id, ("succeeded",))
    assert [s.state for s in record.steps] == ["done"] * len(record.steps)
    placement = pods_by_node(seeds, "default")
    assert "hr-app" not in placement
    assert {n for name, n in placement.items() if name.startswith(("blue-", "green-"))} == {"controlplane"}
    assert kubectl_nodes(seeds)["node01"] == "Ready,SchedulingDisabled"
    final = drain.wait_progress("succeeded", timeout=20, what="the final progress edit")
    assert "uncordon node01" in final["text"]

    chat.ask("uncordon node01").wait_progress("succeeded", timeout=30, what="uncordon")
    assert kubectl_nodes(seeds)["node01"] == "Ready"


def test_a_second_drain_of_a_drained_node_says_it_evicted_nothing(seeds):
    """Two approved drains of one node: the second runs after the first and reports what it did,
    not what it planned (it used to say "6 pods evicted ... 6 pods gone")."""
    chat = fresh(seeds)
    first = chat.ask("drain node01 --force")
    second = chat.ask("drain node01 --force --grace-period 5")  # asked while the first still waits
    first_id, second_id = first.approve(), second.approve()
    chat.wait_job(first_id, ("succeeded",))
    done = chat.wait_job(second_id, ("succeeded",))
    evict, wait = done.step("evict pods from node01"), done.step("wait for pods to leave node01")
    assert evict.detail.startswith(f"nothing left to evict: node01 was already drained by job {first_id} at ")
    assert "(6 pods of the plan gone)" in evict.detail
    assert wait.detail == "nothing to wait for: this drain evicted no pod from node01"
    message = second.wait_progress("succeeded")["text"]
    assert "nothing left to evict" in message and "pods gone" not in message.split("\n")[-2]
    chat.ask("uncordon node01").wait("succeeded")


def test_dry_run_posts_the_plan_and_changes_nothing(seeds):
    chat = fresh(seeds)
    reply = chat.ask("drain node01 --force --dry-run").reply
    assert "Dry run" in reply["text"] and "hr-app" in reply["text"]
    assert not reply.get("blocks")
    assert kubectl_nodes(seeds)["node01"] == "Ready"
    assert "hr-app" in pods_by_node(seeds, "default")


def test_worker_killed_mid_drain_is_finished_by_another(seeds):
    chat = fresh(seeds)
    seeds.lab.set_faults({"latencyMs": 300})  # long enough to kill the worker in the middle of evicting
    job_id = chat.ask("drain node01 --force", timeout=60).approve()
    record = chat.wait_job(job_id, lambda r: any(s.state == "running" and s.action == "drain.evict" for s in r.steps),
                           timeout=60, what="the eviction step to start")
    victim = next(i for i, p in enumerate(seeds.worker_procs) if record.worker.startswith(f"worker{i}-"))
    seeds.kill_worker(victim, also=[record.pid])
    seeds.lab.set_faults({})
    finished = chat.wait_job(job_id, ("succeeded",), timeout=60)
    assert not finished.worker.startswith(f"worker{victim}-")
    placement = pods_by_node(seeds, "default")
    assert "hr-app" not in placement
    assert {n for name, n in placement.items() if name.startswith(("blue-", "green-"))} == {"controlplane"}
    seeds.start_worker()


def test_api_faults_slow_a_drain_but_do_not_fail_it(seeds):
    chat = fresh(seeds)
    seeds.lab.set_faults({"latencyMs": 200, "seed": 7, "rules": [
        {"verb": "*", "resource": "*", "rate": 0.1, "error": error, "retryAfter": 1}
        for error in ("429", "500", "503")]})
    try:
        job_id = chat.ask("drain node01 --force", timeout=90).approve()
        chat.wait_job(job_id, ("succeeded",), timeout=120)
    finally:
        seeds.lab.set_faults({})
    assert kubectl_nodes(seeds)["node01"] == "Ready,SchedulingDisabled"
    assert not [n for n, node in pods_by_node(seeds, "default").items() if node == "node01"]


# -- PodDisruptionBudgets --------------------------------------------------------------------


def _node_with(stack: Stack, prefix: str) -> str:
    return next(node for name, node in pods_by_node(stack, "shop").items() if name.startswith(prefix))


def test_pdb_blocked_drain_times_out_naming_the_pdb_and_stays_cordoned(shop):
    chat = fresh(shop)
    node = _node_with(shop, "payments-")
    drain = chat.ask(f"drain {node} --delete-emptydir-data --timeout 3s")
    assert "payments-pdb" in text_of(drain.reply)  # the plan warns before anything happens
    job_id = drain.approve()
    record = chat.wait_job(job_id, ("failed",), timeout=60)
    message = drain.wait_progress("Failed", timeout=20, what="the failure in the progress message")["text"]
    assert "payments-pdb" in message and "payments-" in message
    assert f"uncordon {node}" in message or f"job {job_id}" in message
    assert "timed out" in ending_text(record) or "timed out" in message
    assert kubectl_nodes(shop)[node] == "Ready,SchedulingDisabled"


def test_cancel_mid_eviction_stops_and_leaves_the_node_cordoned(shop):
    chat = fresh(shop)
    node = _node_with(shop, "payments-")
    drain = chat.ask(f"drain {node} --delete-emptydir-data")
    job_id = drain.approve()
    drain.wait_progress("payments-pdb", timeout=30, what="progress to name the blocking PDB")
    answer = chat.ask(f"cancel {job_id}").reply
    assert job_id in answer["text"]
    chat.wait_job(job_id, ("cancelled",), timeout=30)
    assert kubectl_nodes(shop)[node] == "Ready,SchedulingDisabled"
    assert any(name.startswith("payments-") for name, n in pods_by_node(shop, "shop").items() if n == node)


def test_failed_drain_is_resumed_once_the_budget_allows_it(shop):
    chat = fresh(shop)
    node = _node_with(shop, "payments-")
    job_id = chat.ask(f"drain {node} --delete-emptydir-data --timeout 3s").approve()
    failed = chat.wait_job(job_id, ("failed",), timeout=60)
    done_before = [s.name for s in failed.steps if s.state == "done"]
    assert done_before == [f"cordon {node}"]
    # The operator fixes the cause (the budget now allows one disruption) and resumes.
    shop.lab.admin("POST", "patch", {"resource": "poddisruptionbudgets", "namespace": "shop",
                                     "name": "payments-pdb", "patch": {"spec": {"maxUnavailable": 1}}})
    answer = chat.ask(f"resume {job_id}").reply
    assert job_id in answer["text"]
    resumed = chat.wait_job(job_id, ("succeeded",), timeout=60)
    assert resumed.step(f"cordon {node}").runs == 1  # done steps are not repeated
    assert not [n for n, where in pods_by_node(shop, "shop").items() if where == node]


def test_pod_under_two_pdbs_is_reported_and_the_drain_fails(shop):
    chat = fresh(shop)
    shop.lab.admin("POST", "objects", {"objects": [{
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-extra", "namespace": "shop"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}]})
    node = next(n for name, n in pods_by_node(shop, "shop").items()
                if name.startswith("web-") and not any(
                    other.startswith(("payments-", "cache-")) and where == n
                    for other, where in pods_by_node(shop, "shop").items()))
    job_id = chat.ask(f"drain {node}").approve()
    failed = chat.wait_job(job_id, ("failed",), timeout=60)
    assert "several PodDisruptionBudgets" in ending_text(failed)
    assert kubectl_nodes(shop)[node] == "Ready,SchedulingDisabled"


def test_kubectls_ignore_daemonsets_is_accepted_with_a_note(seeds):
    chat = fresh(seeds)
    thread = chat.ask("drain node01 --ignore-daemonsets --force --dry-run")
    assert thread.reply["text"] == ("Note: `--ignore-daemonsets` is always on: drain never evicts DaemonSet pods")
    plan = thread.wait("Dry run of `drain node01 --dry-run --force`")["text"]
    assert "Stay: DaemonSet pods" in plan
