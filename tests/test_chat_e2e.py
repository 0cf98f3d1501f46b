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
from redis import Redis

from bot.engine.store import get_job, list_jobs
from lab.stack import CHANNEL, Stack

ALICE, BOB, CAROL, VICTOR = "U0ALICE", "U0BOB", "U0CAROL", "U0VIC"
BOT = "U0BOT"


@pytest.fixture(scope="module", params=["socket", "http"])
def stack(request):
    with Stack(mode=request.param, time_scale=0.05, workers=2,
               policy_overrides={"cordon": {"approval_ttl_seconds": 8}}) as running:
        yield running


@pytest.fixture
def chat(stack):
    """A clean slate per test: the lab's cluster reset, no jobs left running."""
    stack.lab.reset()
    stack.lab.set_faults({})
    return stack.slack.client


def redis_of(stack: Stack) -> Redis:
    return Redis.from_url(stack.redis.url)


def ask(chat, user: str, text: str, timeout: float = 20) -> tuple[str, dict]:
    """Say `text` to the bot as `user`; return the message ts and the bot's first reply in its thread."""
    said = chat.say(user, CHANNEL, f"<@{BOT}> {text}")
    reply = chat.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == said["ts"],
                                  channel=CHANNEL, timeout=timeout)
    return said["ts"], reply


def bot_replies(chat, thread_ts: str) -> list[dict]:
    return [m for m in chat.messages(CHANNEL) if m.get("user") == BOT and m.get("thread_ts") == thread_ts]


def wait_reply(chat, thread_ts: str, predicate, timeout: float = 20) -> dict:
    return chat.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == thread_ts
                                 and predicate(m), channel=CHANNEL, timeout=timeout)


def node_unschedulable(stack: Stack, node: str) -> bool:
    return bool(stack.lab.get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable"))


def card_buttons(message: dict) -> list[str]:
    return [e["action_id"] for b in message.get("blocks") or [] for e in b.get("elements") or []
            if e.get("type") == "button"]


def card_text(message: dict) -> str:
    parts = [message.get("text") or ""]
    for block in message.get("blocks") or []:
        parts.append((block.get("text") or {}).get("text", ""))
        parts.extend(e.get("text", "") for e in block.get("elements") or [] if isinstance(e.get("text"), str))
    return "\n".join(parts)


def test_walkthrough_status_cordon_with_approval_then_uncordon(stack, chat):
    _, status = ask(chat, ALICE, "status")
    assert "controlplane" in status["text"] and "node01" in status["text"]
    assert "v1.19.0" in status["text"]
    assert "outside the supported Kubernetes minors" in status["text"]

    thread, card = ask(chat, ALICE, "cordon node01")
    assert card_buttons(card) == ["approve", "deny"]
    assert "hr-app" in card_text(card)  # the plan names what keeps running there
    assert not node_unschedulable(stack, "node01")  # nothing happens before approval

    chat.click(BOB, CHANNEL, card["ts"], "approve")
    done = wait_reply(chat, thread, lambda m: "succeeded" in m.get("text", ""))
    assert "node01 cordoned" in done["text"]
    assert "uncordon node01" in done["text"]  # the next suggested command
    assert node_unschedulable(stack, "node01")
    decided = chat.wait_for(lambda: (m := chat.message(CHANNEL, card["ts"])) and not card_buttons(m) and m,
                            timeout=10, what="the card to show the decision")
    assert "<@U0BOB>" in card_text(decided)

    thread2, _ = ask(chat, ALICE, "uncordon node01")  # no approval needed by policy
    wait_reply(chat, thread2, lambda m: "succeeded" in m.get("text", ""))
    assert not node_unschedulable(stack, "node01")
    hr_app = stack.lab.get("/api/v1/namespaces/default/pods/hr-app")
    assert hr_app["status"]["phase"] == "Running"  # cordon kept it running


def test_requester_cannot_approve_their_own_request(stack, chat):
    _, card = ask(chat, ALICE, "cordon node01")
    chat.click(ALICE, CHANNEL, card["ts"], "approve")
    note = chat.wait_for_call("chat.postEphemeral", lambda c: c["args"].get("user") == ALICE, timeout=10)
    assert "someone else has to approve it" in note["args"]["text"]
    assert card_buttons(chat.message(CHANNEL, card["ts"])) == ["approve", "deny"]
    assert not node_unschedulable(stack, "node01")


def test_viewer_cannot_cordon(stack, chat):
    _, reply = ask(chat, VICTOR, "cordon node01")
    assert "viewer" in reply["text"] and "operator" in reply["text"]
    assert card_buttons(reply) == []
    assert not node_unschedulable(stack, "node01")


def test_non_approver_click_changes_nothing(stack, chat):
    _, card = ask(chat, ALICE, "cordon node01")
    chat.click(VICTOR, CHANNEL, card["ts"], "approve")
    chat.wait_for_call("chat.postEphemeral", lambda c: c["args"].get("user") == VICTOR, timeout=10)
    assert card_buttons(chat.message(CHANNEL, card["ts"])) == ["approve", "deny"]
    assert not node_unschedulable(stack, "node01")


def test_expired_request_says_so_and_cannot_be_approved(stack, chat):
    _, card = ask(chat, ALICE, "cordon node01")
    expired = chat.wait_for(lambda: (m := chat.message(CHANNEL, card["ts"])) and not card_buttons(m) and m,
                            timeout=20, what="the card to expire")
    assert "expired" in card_text(expired).lower()
    assert not node_unschedulable(stack, "node01")


def test_bad_command_gets_usage_and_no_side_effect(stack, chat):
    _, reply = ask(chat, ALICE, "cordon Node01!")
    assert "not a valid node name" in reply["text"] and "Usage:" in reply["text"]
    _, reply = ask(chat, ALICE, "cordn node01")
    assert "did you mean" in reply["text"]
    _, reply = ask(chat, ALICE, "uncordon node99")
    assert "node node99 not found" in reply["text"]
    assert list_jobs(redis_of(stack)) == [] or all(j.spec.command_text != "uncordon node99"
                                                   for j in list_jobs(redis_of(stack)))


def test_cancelled_job_never_runs(stack, chat):
    paused = stack.worker_procs[:]
    for proc in paused:
        os.killpg(proc.pid, signal.SIGSTOP)
    try:
        thread, progress = ask(chat, ALICE, "uncordon node01")
        job_id = progress["text"].split("`")[1]
        _, answer = ask(chat, ALICE, f"cancel {job_id}")
        assert "cancel" in answer["text"].lower()
    finally:
        for proc in paused:
            os.killpg(proc.pid, signal.SIGCONT)
    wait_reply(chat, thread, lambda m: "cancelled" in m.get("text", "").lower())
    assert str(get_job(redis_of(stack), job_id).state) == "cancelled"


def test_killed_worker_job_is_finished_by_another(stack, chat):
    # A slow API makes the step long enough to kill the worker in the middle of it.
    stack.lab.set_faults({"latencyMs": 4000})
    thread, progress = ask(chat, ALICE, "uncordon node01", timeout=30)
    job_id = progress["text"].split("`")[1]
    redis = redis_of(stack)
    record = chat.wait_for(lambda: (r := get_job(redis, job_id)) and r.steps[0].state == "running" and r,
                           timeout=30, what="the job's step to start")
    victim = next(i for i, p in enumerate(stack.worker_procs) if record.worker.startswith(f"worker{i}-"))
    # RQ runs each job in a forked work horse in its own session: a crash takes both down.
    stack.kill_worker(victim, also=[record.pid])
    killed_at = time.monotonic()
    stack.lab.set_faults({})
    finished = chat.wait_for(lambda: (r := get_job(redis, job_id)) and str(r.state) == "succeeded" and r,
                             timeout=60, what="another worker to finish the job")
    assert time.monotonic() - killed_at < 60
    assert not finished.worker.startswith(f"worker{victim}-")
    assert finished.steps[0].runs == 2  # the interrupted step was re-checked and finished
    wait_reply(chat, thread, lambda m: "succeeded" in m.get("text", ""))
    stack.start_worker()  # keep two workers for the next tests


def signed(secret: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}"}


def test_duplicated_delivery_makes_one_job(stack, chat):
    if stack.mode == "socket":
        # Slack re-sends an envelope whose ack is late; the emulator counts the bot's first ack as late.
        chat.configure(ack_timeout=0.5, late_acks=1)
        try:
            said = chat.say(ALICE, CHANNEL, f"<@{BOT}> uncordon node01")
            deliveries = chat.wait_for_deliveries(said.get("delivery_ids"), timeout=20)
        finally:
            chat.configure(ack_timeout=3.0, late_acks=0)
        assert sum(len(d["attempts"]) for d in deliveries) > 1  # the event really came more than once
        thread = said["ts"]
    else:
        # In HTTP mode a retry is the same signed event again, with X-Slack-Retry-Num.
        thread = chat.say(ALICE, CHANNEL, "about to retry").get("ts")
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
    wait_reply(chat, thread, lambda m: "succeeded" in m.get("text", ""))
    jobs = [j for j in list_jobs(redis_of(stack)) if j.spec.thread_ts == thread]
    assert len(jobs) == 1
    assert len(bot_replies(chat, thread)) == 1


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
    assert not any(j.spec.thread_ts == "1.000001" for j in list_jobs(redis_of(stack)))



def test_direct_message_and_slash_command_work_like_a_mention(stack, chat):
    said = chat.say(ALICE, f"@{ALICE}", "status")  # a DM to the bot needs no mention
    dm = f"D{ALICE[1:]}"
    reply = chat.wait_for_message(lambda m: m.get("user") == BOT and m.get("thread_ts") == said["ts"],
                                  channel=dm, timeout=20)
    assert "node01" in reply["text"]
    chat.slash(ALICE, CHANNEL, "uncordon node01")
    echo = chat.wait_for_message(lambda m: m.get("user") == BOT and "/kubemaint uncordon node01" in m.get("text", ""),
                                 channel=CHANNEL, timeout=20)
    wait_reply(chat, echo["ts"], lambda m: "succeeded" in m.get("text", ""))


def test_killed_handler_processes_are_replaced(stack, chat):
    """The work behind each request runs in handler processes; if they die (an OOM kill), the
    bot starts new ones and keeps answering."""
    if stack.mode != "socket":
        pytest.skip("handler processes are the same in both modes")
    killed = stack.bot_handlers()
    assert len(killed) == 2  # handler_processes defaults to 2
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    chat.wait_for(lambda: len(set(stack.bot_handlers()) - set(killed)) == 2, timeout=30,
                  what="two new handler processes")
    _, status = ask(chat, ALICE, "status", timeout=30)
    assert "controlplane" in status["text"] and "node01" in status["text"]
