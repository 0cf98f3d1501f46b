"""Redis is the source of truth: a Redis killed and restarted in the middle of an approved drain.

With its append-only file (as kubemaint asks for, and as compose, the demo and the lab run it) the
job goes on: it finishes, its thread ends in its final state, and no pod is evicted twice, whether
Redis died before, during or after the evictions. Without persistence the data is gone: the thread
is told within 30 s what happened, what is true on the node, and how to finish or undo.
"""

from __future__ import annotations

import time

import pytest

from tests.chat_driver import Chat, Stack

pytestmark = pytest.mark.runs_long(58)

PDB = "payments-pdb"
TIME_SCALE = 0.15


def node_with(stack: Stack, prefix: str) -> str:
    return next(p["spec"]["nodeName"] for p in stack.lab.pods("shop")
                if p["metadata"]["name"].startswith(prefix) and not p["metadata"].get("deletionTimestamp"))


def evictions(stack: Stack) -> dict[str, int]:
    return {path: n for key, n in stack.lab.counters()["requests"].items()
            if (path := key.split(" ", 1)[1]).endswith("/eviction") and key.startswith("POST")}


def allow_one_disruption(stack: Stack) -> None:
    stack.lab.admin("POST", "patch", {"resource": "poddisruptionbudgets", "namespace": "shop", "name": PDB,
                                      "patch": {"spec": {"maxUnavailable": 1}}})


def restart_redis(stack: Stack) -> None:
    stack.kill_redis()  # SIGKILL, as an OOM kill
    stack.restart_redis()


@pytest.fixture(scope="module")
def shop():
    # Pods take about 4.5 s to stop (30 s grace x 0.15), so a drain's wait step lasts long enough to
    # kill Redis during it (a restart takes a fraction of a second); payments-pdb allows no disruption,
    # which holds the eviction step.
    with Stack(scenario="three-workers", time_scale=TIME_SCALE, workers=2) as running:
        yield running


def drain_payments_node(stack: Stack, *, budget_allows: bool) -> tuple[Chat, str, object, str]:
    """A clean cluster, then an approved drain of the node running a payments pod; its PDB blocks
    the eviction step until `allow_one_disruption` unless `budget_allows`."""
    chat = Chat(stack).reset()
    if budget_allows:
        allow_one_disruption(stack)
    stack.lab.admin("POST", "counters/reset")
    node = node_with(stack, "payments-")
    thread = chat.ask(f"drain {node} --delete-emptydir-data")
    return chat, node, thread, thread.approve()


def assert_finished_once_each(stack: Stack, chat: Chat, thread, job_id: str) -> None:
    chat.wait_job(job_id, ("succeeded",), timeout=120)
    assert "succeeded" in thread.wait_progress("succeeded", timeout=60)["text"].split("\n")[0]
    counts = evictions(stack)
    assert counts, "no eviction was made"
    twice = {path: n for path, n in counts.items() if n > 1 and "/payments-" not in path}  # 429s are retried
    assert twice == {}, f"evicted more than once: {twice}"


def test_redis_restarted_with_its_file_before_the_evictions(shop):
    chat, _, thread, job_id = drain_payments_node(shop, budget_allows=True)
    restart_redis(shop)
    assert_finished_once_each(shop, chat, thread, job_id)


def test_redis_restarted_with_its_file_during_the_evictions(shop):
    chat, _, thread, job_id = drain_payments_node(shop, budget_allows=False)
    thread.wait_progress(PDB, timeout=60, what="the eviction to wait on the PDB")
    restart_redis(shop)
    allow_one_disruption(shop)
    assert_finished_once_each(shop, chat, thread, job_id)


def test_redis_restarted_with_its_file_while_pods_terminate(shop):
    chat, _, thread, job_id = drain_payments_node(shop, budget_allows=True)
    chat.wait_job(job_id, lambda r: any(s.name.startswith("wait for pods") and s.state == "running"
                                        for s in r.steps), timeout=60, what="the wait step")
    restart_redis(shop)
    assert_finished_once_each(shop, chat, thread, job_id)


def test_without_persistence_the_thread_is_told_what_happened_and_what_to_do():
    with Stack(scenario="three-workers", time_scale=TIME_SCALE, workers=2, redis_persistence="none") as stack:
        chat, node, thread, job_id = drain_payments_node(stack, budget_allows=False)
        thread.wait_progress(PDB, timeout=60, what="the eviction to wait on the PDB")
        restart_redis(stack)  # comes back empty
        back = time.monotonic()
        told = thread.wait("⚠️ kubemaint's Redis lost its data", timeout=30)["text"]
        assert time.monotonic() - back <= 30
        assert f"job `{job_id}`" in told and f"To finish: `resume {job_id}`" in told
        assert f"Now: {node} is cordoned;" in told and "the drain would evict" in told
        assert f"To undo: `uncordon {node}`." in told
        assert "Halted: kubemaint's Redis lost its data" in thread.wait_progress("halted", timeout=30)["text"]
        allow_one_disruption(stack)
        assert job_id in chat.ask(f"resume {job_id}").reply["text"]
        chat.wait_job(job_id, ("succeeded",), timeout=120)
