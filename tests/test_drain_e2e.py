"""Drain through chat, end to end: the bot, workers, Redis, the Slack emulator and the lab,
with kubectl as the witness of what happened to the cluster."""

from __future__ import annotations

import subprocess

import pytest
from redis import Redis

from bot.contract.reports import ending_text
from bot.engine.store import get_job
from lab.stack import CHANNEL, Stack

ALICE, BOB = "U0ALICE", "U0BOB"
BOT = "U0BOT"


@pytest.fixture(scope="module")
def seeds():
    with Stack(scenario="seeds-os-upgrade", time_scale=0.05, workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def shop():
    with Stack(scenario="three-workers", time_scale=0.05, workers=2) as running:
        yield running


def fresh(stack: Stack):
    stack.lab.reset()
    stack.lab.set_faults({})
    return stack.slack.client


def ask(chat, text: str, user: str = ALICE, timeout: float = 30) -> tuple[str, dict]:
    said = chat.say(user, CHANNEL, f"<@{BOT}> {text}")
    reply = chat.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == said["ts"],
                                  channel=CHANNEL, timeout=timeout)
    return said["ts"], reply


def text_of(message: dict) -> str:
    parts = [message.get("text") or ""]
    for block in message.get("blocks") or []:
        parts.append((block.get("text") or {}).get("text", ""))
        parts.extend(e.get("text", "") for e in block.get("elements") or [] if isinstance(e.get("text"), str))
    return "\n".join(parts)


def approve(stack: Stack, thread: str, card: dict) -> str:
    """Approve the card as bob; return the job id from the progress message."""
    chat = stack.slack.client
    chat.click(BOB, CHANNEL, card["ts"], "approve")
    progress = chat.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == thread
                                     and "Job `" in (m.get("text") or ""), channel=CHANNEL, timeout=30)
    return progress["text"].split("`")[1]


def job_state(stack: Stack, job_id: str):
    return get_job(Redis.from_url(stack.redis.url), job_id)


def wait_job(stack: Stack, job_id: str, states: tuple[str, ...], timeout: float = 60):
    return stack.slack.client.wait_for(
        lambda: (r := job_state(stack, job_id)) and str(r.state) in states and r, timeout=timeout,
        what=f"job {job_id} to reach {states}")


def progress_message(stack: Stack, thread: str) -> dict:
    return stack.slack.client.wait_for_message(
        lambda m: m.get("user") == BOT and m.get("thread_ts") == thread and "Job `" in (m.get("text") or ""),
        channel=CHANNEL, timeout=10)


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
    _, reply = ask(chat, "drain node01")
    assert "hr-app" in reply["text"] and "--force" in reply["text"]
    assert not reply.get("blocks")  # refused before approval: no card
    assert kubectl_nodes(seeds)["node01"] == "Ready"


def test_forced_drain_after_approval_moves_apps_and_loses_hr_app(seeds):
    chat = fresh(seeds)
    thread, card = ask(chat, "drain node01 --force")
    plan = text_of(card)
    assert "hr-app" in plan and "not recreated" in plan
    assert kubectl_nodes(seeds)["node01"] == "Ready"  # nothing before approval
    job_id = approve(seeds, thread, card)
    record = wait_job(seeds, job_id, ("succeeded",))
    assert [s.state for s in record.steps] == ["done"] * len(record.steps)
    placement = pods_by_node(seeds, "default")
    assert "hr-app" not in placement
    assert {n for name, n in placement.items() if name.startswith(("blue-", "green-"))} == {"controlplane"}
    assert kubectl_nodes(seeds)["node01"] == "Ready,SchedulingDisabled"
    final = chat.wait_for(lambda: "succeeded" in (m := progress_message(seeds, thread))["text"] and m, timeout=20,
                          what="the final progress edit")
    assert "uncordon node01" in final["text"]

    thread, _ = ask(chat, "uncordon node01")
    chat.wait_for(lambda: "succeeded" in progress_message(seeds, thread)["text"], timeout=30, what="uncordon")
    assert kubectl_nodes(seeds)["node01"] == "Ready"


def test_dry_run_posts_the_plan_and_changes_nothing(seeds):
    chat = fresh(seeds)
    _, reply = ask(chat, "drain node01 --force --dry-run")
    assert "Dry run" in reply["text"] and "hr-app" in reply["text"]
    assert not reply.get("blocks")
    assert kubectl_nodes(seeds)["node01"] == "Ready"
    assert "hr-app" in pods_by_node(seeds, "default")


def test_worker_killed_mid_drain_is_finished_by_another(seeds):
    chat = fresh(seeds)
    seeds.lab.set_faults({"latencyMs": 300})  # long enough to kill the worker in the middle of evicting
    thread, card = ask(chat, "drain node01 --force", timeout=60)
    job_id = approve(seeds, thread, card)
    record = chat.wait_for(lambda: (r := job_state(seeds, job_id)) and any(
        s.state == "running" and s.action == "drain.evict" for s in r.steps) and r, timeout=60,
        what="the eviction step to start")
    victim = next(i for i, p in enumerate(seeds.worker_procs) if record.worker.startswith(f"worker{i}-"))
    seeds.kill_worker(victim, also=[record.pid])
    seeds.lab.set_faults({})
    finished = wait_job(seeds, job_id, ("succeeded",), timeout=60)
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
        thread, card = ask(chat, "drain node01 --force", timeout=90)
        job_id = approve(seeds, thread, card)
        wait_job(seeds, job_id, ("succeeded",), timeout=120)
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
    thread, card = ask(chat, f"drain {node} --delete-emptydir-data --timeout 3s")
    assert "payments-pdb" in text_of(card)  # the plan warns before anything happens
    job_id = approve(shop, thread, card)
    record = wait_job(shop, job_id, ("failed",), timeout=60)
    message = chat.wait_for(lambda: "Failed" in (m := progress_message(shop, thread))["text"] and m, timeout=20,
                            what="the failure in the progress message")["text"]
    assert "payments-pdb" in message and "payments-" in message
    assert f"uncordon {node}" in message or f"job {job_id}" in message
    assert "timed out" in ending_text(record) or "timed out" in message
    assert kubectl_nodes(shop)[node] == "Ready,SchedulingDisabled"


def test_cancel_mid_eviction_stops_and_leaves_the_node_cordoned(shop):
    chat = fresh(shop)
    node = _node_with(shop, "payments-")
    thread, card = ask(chat, f"drain {node} --delete-emptydir-data")
    job_id = approve(shop, thread, card)
    chat.wait_for(lambda: "payments-pdb" in progress_message(shop, thread)["text"], timeout=30,
                  what="progress to name the blocking PDB")
    _, answer = ask(chat, f"cancel {job_id}")
    assert job_id in answer["text"]
    wait_job(shop, job_id, ("cancelled",), timeout=30)
    assert kubectl_nodes(shop)[node] == "Ready,SchedulingDisabled"
    assert any(name.startswith("payments-") for name, n in pods_by_node(shop, "shop").items() if n == node)


def test_failed_drain_is_resumed_once_the_budget_allows_it(shop):
    chat = fresh(shop)
    node = _node_with(shop, "payments-")
    thread, card = ask(chat, f"drain {node} --delete-emptydir-data --timeout 3s")
    job_id = approve(shop, thread, card)
    failed = wait_job(shop, job_id, ("failed",), timeout=60)
    done_before = [s.name for s in failed.steps if s.state == "done"]
    assert done_before == [f"cordon {node}"]
    # The operator fixes the cause (the budget now allows one disruption) and resumes.
    shop.lab.admin("POST", "patch", {"resource": "poddisruptionbudgets", "namespace": "shop",
                                     "name": "payments-pdb", "patch": {"spec": {"maxUnavailable": 1}}})
    _, answer = ask(chat, f"resume {job_id}")
    assert job_id in answer["text"]
    resumed = wait_job(shop, job_id, ("succeeded",), timeout=60)
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
    thread, card = ask(chat, f"drain {node}")
    job_id = approve(shop, thread, card)
    failed = wait_job(shop, job_id, ("failed",), timeout=60)
    assert "several PodDisruptionBudgets" in ending_text(failed)
    assert kubectl_nodes(shop)[node] == "Ready,SchedulingDisabled"
