"""Whole-chat scenarios: the real bot (slack-bolt) and workers (RQ) as separate processes,
against the Slack emulator, a private Redis and the lab cluster, in Socket Mode and HTTP mode."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.chat_driver import ALICE, BOB, BOT, CHANNEL, VICTOR, Chat, Stack, buttons, job_id_of, text_of

pytestmark = pytest.mark.runs_long(100)


@pytest.fixture(scope="module", params=["socket", "http"])
def stack(request):
    with Stack(mode=request.param, time_scale=0.05, workers=2,
               policy_overrides={"cordon": {"approval_ttl_seconds": 8}}) as running:
        yield running


@pytest.fixture
def chat(stack) -> Chat:
    """A clean slate per test: the lab's cluster reset, no API faults."""
    return Chat(stack, timeout=20).reset()


def node_unschedulable(stack: Stack, node: str) -> bool:
    return bool(stack.lab.get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable"))


def test_walkthrough_status_cordon_with_approval_then_uncordon(stack, chat):
    status = chat.ask("status", user=ALICE).reply
    assert "controlplane" in status["text"] and "node01" in status["text"]
    assert "v1.19.0" in status["text"]
    assert "outside the supported Kubernetes minors" in status["text"]

    cordon = chat.ask("cordon node01", user=ALICE)
    assert buttons(cordon.reply) == ["approve", "deny"]
    assert "hr-app" in text_of(cordon.reply)  # the plan names what keeps running there
    assert not node_unschedulable(stack, "node01")  # nothing happens before approval

    cordon.approve(user=BOB)
    done = cordon.wait("succeeded")
    assert "node01 cordoned" in done["text"]
    assert "uncordon node01" in done["text"]  # the next suggested command
    assert node_unschedulable(stack, "node01")
    decided = cordon.settled_card(timeout=10, what="the card to show the decision")
    assert "<@U0BOB>" in text_of(decided)

    chat.ask("uncordon node01", user=ALICE).wait("succeeded")  # no approval needed by policy
    assert not node_unschedulable(stack, "node01")
    hr_app = stack.lab.get("/api/v1/namespaces/default/pods/hr-app")
    assert hr_app["status"]["phase"] == "Running"  # cordon kept it running


def test_requester_cannot_approve_their_own_request(stack, chat):
    cordon = chat.ask("cordon node01", user=ALICE)
    cordon.click("approve", user=ALICE)
    note = chat.wait_ephemeral(ALICE, timeout=10)
    assert "someone else has to approve it" in note["args"]["text"]
    assert buttons(cordon.card()) == ["approve", "deny"]
    assert not node_unschedulable(stack, "node01")


def test_viewer_cannot_cordon(stack, chat):
    reply = chat.ask("cordon node01", user=VICTOR).reply
    assert "viewer" in reply["text"] and "operator" in reply["text"]
    assert buttons(reply) == []
    assert not node_unschedulable(stack, "node01")


def test_non_approver_click_changes_nothing(stack, chat):
    cordon = chat.ask("cordon node01", user=ALICE)
    cordon.click("approve", user=VICTOR)
    chat.wait_ephemeral(VICTOR, timeout=10)
    assert buttons(cordon.card()) == ["approve", "deny"]
    assert not node_unschedulable(stack, "node01")


def test_expired_request_says_so_and_cannot_be_approved(stack, chat):
    if stack.mode != "socket":
        pytest.skip("a request expires in the bot's background sweep, whichever way Slack reaches the bot")
    cordon = chat.ask("cordon node01", user=ALICE)
    expired = cordon.settled_card(timeout=20, what="the card to expire")
    assert "expired" in text_of(expired).lower()
    assert not node_unschedulable(stack, "node01")


def test_bad_command_gets_usage_and_no_side_effect(stack, chat):
    reply = chat.ask("cordon Node01!", user=ALICE).reply
    assert "not a valid node name" in reply["text"] and "Usage:" in reply["text"]
    reply = chat.ask("cordn node01", user=ALICE).reply
    assert "did you mean" in reply["text"]
    reply = chat.ask("uncordon node99", user=ALICE).reply
    assert "node node99 not found" in reply["text"]
    assert chat.jobs() == [] or all(j.spec.command_text != "uncordon node99" for j in chat.jobs())


def test_backups_lists_the_catalog_for_any_role(stack, chat):
    from bot.backups import Catalog, Entry

    catalog = Catalog(chat.redis)
    for old in catalog.page(1, 100).entries:  # the stack lives for the module: start from an empty catalog
        catalog.remove(old)
    assert chat.ask("backups", user=VICTOR).reply["text"].startswith("No backups yet.")
    catalog.add(Entry(id="b-0a1b2c3d", kind="etcd", cluster="lab", created_at=time.time() - 7200, requester="U0ALICE",
                      key="lab/etcd/b-0a1b2c3d.db", location="file:///backups/lab/etcd/b-0a1b2c3d.db", size=2_400_000,
                      sha256="0" * 64, node="controlplane", etcd_version="3.5.12", revision=4711, keys=321))
    listing = chat.ask("backups", user=VICTOR).reply["text"]
    assert "(page 1 of 1, 1 in all)" in listing
    assert [line.split() for line in listing.splitlines() if line.startswith("b-")] == \
           [["b-0a1b2c3d", "etcd", "2h", "4711", "321", "2.29", "MiB", "controlplane", "U0ALICE"]]
    catalog.remove(catalog.require("b-0a1b2c3d"))


def test_cancelled_job_never_runs(stack, chat):
    paused = stack.worker_procs[:]
    for proc in paused:
        os.killpg(proc.pid, signal.SIGSTOP)
    try:
        uncordon = chat.ask("uncordon node01", user=ALICE)
        job_id = job_id_of(uncordon.reply)
        answer = chat.ask(f"cancel {job_id}", user=ALICE).reply
        assert "cancel" in answer["text"].lower()
    finally:
        for proc in paused:
            os.killpg(proc.pid, signal.SIGCONT)
    uncordon.wait(lambda m: "cancelled" in m.get("text", "").lower())
    assert str(chat.job(job_id).state) == "cancelled"


def test_killed_worker_job_is_finished_by_another(stack, chat):
    if stack.mode != "socket":
        pytest.skip("a worker's death and its job's recovery do not depend on how Slack reaches the bot")
    # A slow API makes the step long enough to kill the worker in the middle of it.
    stack.lab.set_faults({"latencyMs": 4000})
    uncordon = chat.ask("uncordon node01", user=ALICE, timeout=30)
    job_id = job_id_of(uncordon.reply)
    record = chat.wait_job(job_id, lambda r: r.steps[0].state == "running", timeout=30,
                           what="the job's step to start")
    victim = next(i for i, p in enumerate(stack.worker_procs) if record.worker.startswith(f"worker{i}-"))
    # RQ runs each job in a forked work horse in its own session: a crash takes both down.
    stack.kill_worker(victim, also=[record.pid])
    killed_at = time.monotonic()
    stack.lab.set_faults({})
    finished = chat.wait_job(job_id, ("succeeded",), timeout=60, what="another worker to finish the job")
    assert time.monotonic() - killed_at < 60
    assert not finished.worker.startswith(f"worker{victim}-")
    assert finished.steps[0].runs == 2  # the interrupted step was re-checked and finished
    uncordon.wait("succeeded")
    stack.start_worker()  # keep two workers for the next tests


def signed(secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}"}


def test_duplicated_delivery_makes_one_job(stack, chat):
    if stack.mode == "socket":
        # Slack re-sends an envelope whose ack is late; the emulator counts the bot's first ack as late.
        chat.client.configure(ack_timeout=0.5, late_acks=1)
        try:
            said = chat.client.say(ALICE, CHANNEL, f"<@{BOT}> uncordon node01")
            deliveries = chat.client.wait_for_deliveries(said.get("delivery_ids"), timeout=20)
        finally:
            chat.client.configure(ack_timeout=3.0, late_acks=0)
        assert sum(len(d["attempts"]) for d in deliveries) > 1  # the event really came more than once
        thread = said["ts"]
    else:
        # In HTTP mode a retry is the same signed event again, with X-Slack-Retry-Num.
        thread = chat.client.say(ALICE, CHANNEL, "about to retry").get("ts")
        event = {"type": "event_callback", "event_id": "EvRETRIED01", "team_id": "T0LAB", "api_app_id": "A0LAB",
                 "event": {"type": "app_mention", "user": ALICE, "channel": CHANNEL, "ts": thread,
                           "text": f"<@{BOT}> uncordon node01", "event_ts": thread}}
        body = json.dumps(event).encode()
        url = stack.slack.emulator.settings.request_url
        for retry in (None, "1"):
            headers = signed(stack.slack.signing_secret, body)
            if retry:
                headers.update({"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"})
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10) as r:
                assert r.status == 200
    duplicated = chat.thread(thread)
    duplicated.wait("succeeded")
    jobs = [j for j in chat.jobs() if j.spec.thread_ts == thread]
    assert len(jobs) == 1
    assert len(duplicated.replies()) == 1


def test_forged_http_request_is_rejected(stack, chat):
    if stack.mode != "http":
        pytest.skip("signatures only exist in HTTP mode")
    url = stack.slack.emulator.settings.request_url
    body = json.dumps({"type": "event_callback", "event_id": "EvFORGED", "team_id": "T0LAB",
                       "event": {"type": "app_mention", "user": ALICE, "channel": CHANNEL,
                                 "text": f"<@{BOT}> uncordon node01", "ts": "1.000001"}}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=signed("not-the-secret", body))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert not any(j.spec.thread_ts == "1.000001" for j in chat.jobs())



def test_direct_message_and_slash_command_work_like_a_mention(stack, chat):
    reply = chat.dm("status", user=ALICE).reply  # a DM to the bot needs no mention
    assert "node01" in reply["text"]
    chat.slash("uncordon node01", user=ALICE).wait("succeeded")


def test_killed_handler_processes_are_replaced(stack, chat):
    """The work behind each request runs in handler processes; if they die (an OOM kill), the
    bot starts new ones and keeps answering."""
    if stack.mode != "socket":
        pytest.skip("handler processes are the same in both modes")
    killed = stack.bot_handlers()
    assert len(killed) == 3  # handler_processes defaults to 2, and the background process (the outbox)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    chat.wait_for(lambda: len(set(stack.bot_handlers()) - set(killed)) == 3, timeout=30,
                  what="three new child processes")
    status = chat.ask("status", user=ALICE, timeout=30).reply
    assert "controlplane" in status["text"] and "node01" in status["text"]
