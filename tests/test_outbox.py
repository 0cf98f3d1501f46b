"""The outbox: every message reaches Slack, in order per thread, within Slack's limits, with edits of
one message coalesced. A recording stand-in for Slack answers each call (or refuses it as Slack would);
the queue itself runs on a real Redis."""

from __future__ import annotations

import threading

import pytest
from redis import Redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.chat.outbox import Outbox, OutboxSender
from bot.engine.audit import read_audit
from lab.testing import wait_until
from tests.fake_clock import Clock

pytest_plugins = ["tests.redis_fixtures"]


def refusal(error: str, status: int = 200, retry_after: int | None = None) -> SlackApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    response = SlackResponse(client=None, http_verb="POST", api_url="https://slack.test/api/x", req_args={},
                             data={"ok": False, "error": error}, headers=headers, status_code=status)
    return SlackApiError(error, response)


class Slack:
    """Records what reached 'Slack'; `refuse` queues errors to raise for the next calls of a kind."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.refuse: dict[str, list[BaseException]] = {"post": [], "update": [], "ephemeral": []}
        self.count = 0
        self.lock = threading.Lock()

    def _refusal(self, kind: str) -> None:
        if self.refuse[kind]:
            raise self.refuse[kind].pop(0)

    def post(self, channel, text, *, thread_ts=None, blocks=None) -> str:
        with self.lock:
            self._refusal("post")
            self.count += 1
            ts = f"1700000000.{self.count:06d}"
            self.calls.append(("post", channel, thread_ts, text, ts))
            return ts

    def update(self, channel, ts, text, *, blocks=None) -> None:
        with self.lock:
            self._refusal("update")
            self.calls.append(("update", channel, ts, text))

    def ephemeral(self, channel, user, text, *, thread_ts=None) -> None:
        with self.lock:
            self._refusal("ephemeral")
            self.calls.append(("ephemeral", channel, user, text, thread_ts))


@pytest.fixture
def world(r: Redis):
    clock, slack = Clock(1_700_000_000.0), Slack()
    outbox = Outbox(r, lambda user: [], clock=clock, deadline_seconds=600)
    sender = OutboxSender(r, slack, clock=clock, pace=None)  # 429s only; the pace has its own test
    yield outbox, sender, slack, clock
    sender.pool.shutdown(wait=True)


def test_messages_in_a_thread_go_out_in_order_and_refs_resolve_to_slack_ts(world):
    outbox, sender, slack, _ = world
    card = outbox.post("C1", "card", thread_ts="1699999999.000001")
    reply = outbox.post("C1", "reply", thread_ts="1699999999.000001")
    echo = outbox.post("C1", "echo of /kubemaint")
    answer = outbox.post("C1", "answer", thread_ts=echo)  # a thread known only by its ref
    outbox.update("C1", card, "card, decided")
    sender.drain()
    posts = {call[3]: call for call in slack.calls if call[0] == "post"}
    in_thread = [call[3] for call in slack.calls if call[0] == "post" and call[2] == "1699999999.000001"]
    assert in_thread == ["card", "reply"]
    assert posts["answer"][2] == posts["echo of /kubemaint"][4]
    assert ("update", "C1", posts["card"][4], "card, decided") in slack.calls
    assert card != reply != answer and card.startswith("m-")


def test_edits_of_one_message_waiting_to_go_out_coalesce_into_the_last(world):
    outbox, sender, slack, _ = world
    message = outbox.post("C1", "job queued")
    sender.drain()
    for detail in ("running", "evicted 1/6", "evicted 4/6", "succeeded"):
        outbox.update("C1", message, f"job {detail}")
    sender.drain()
    assert [call[3] for call in slack.calls if call[0] == "update"] == ["job succeeded"]


def test_a_429_pauses_what_it_limits_for_retry_after_and_the_message_still_arrives(world):
    outbox, sender, slack, clock = world
    slack.refuse["post"].append(refusal("ratelimited", 429, retry_after=2))
    outbox.post("C1", "first in C1")
    sender.drain()  # C1's post meets the 429 (alone, so that the refusal cannot go to C2's post instead)
    outbox.post("C2", "first in C2", thread_ts="1.1")
    sender.drain()
    assert [call[3] for call in slack.calls] == ["first in C2"]  # C1 waits, C2 is another channel
    outbox.post("C1", "second in C1", thread_ts="2.2")
    clock.now += 1.5
    sender.drain()
    assert [call[3] for call in slack.calls] == ["first in C2"]  # still inside Retry-After
    clock.now += 1.0
    sender.drain()
    assert sorted(call[3] for call in slack.calls) == ["first in C1", "first in C2", "second in C1"]


def test_edits_pause_app_wide_on_a_429(world):
    outbox, sender, slack, clock = world
    one, two = outbox.post("C1", "one"), outbox.post("C2", "two")
    sender.drain()
    slack.refuse["update"].append(refusal("ratelimited", 429, retry_after=5))
    outbox.update("C1", one, "one edited")
    sender.drain()
    outbox.update("C2", two, "two edited")
    sender.drain()
    assert not [call for call in slack.calls if call[0] == "update"]  # chat.update's limit is per app
    clock.now += 5.1
    sender.drain()
    assert sorted(call[3] for call in slack.calls if call[0] == "update") == ["one edited", "two edited"]


def test_connection_errors_and_slack_faults_are_retried_with_backoff(world):
    outbox, sender, slack, clock = world
    slack.refuse["post"] += [ConnectionRefusedError("refused"), refusal("internal_error", 500)]
    outbox.post("C1", "hello")
    sender.drain()
    clock.now += 0.6
    sender.drain()
    assert slack.calls == []
    clock.now += 1.1
    sender.drain()
    assert [call[3] for call in slack.calls] == ["hello"]


def test_what_slack_will_never_take_is_dropped_and_logged_and_the_thread_goes_on(world, r: Redis):
    outbox, sender, slack, _ = world
    slack.refuse["post"].append(refusal("msg_too_long"))
    outbox.post("C1", "x" * 50, thread_ts="3.3")
    outbox.post("C1", "after it", thread_ts="3.3")
    sender.drain()
    assert [call[3] for call in slack.calls] == ["after it"]
    given_up = [e for e in read_audit(r, 3600) if e["event"] == "outbox.given_up"]
    assert given_up and "msg_too_long" in given_up[0]["why"]


def test_a_message_past_its_deadline_is_given_up(world, r: Redis):
    outbox, sender, slack, clock = world
    slack.refuse["post"].append(refusal("ratelimited", 429, retry_after=700))
    outbox.post("C1", "too late")
    sender.drain()
    clock.now += 701
    sender.drain()
    assert slack.calls == []
    assert any("deadline" in e["why"] for e in read_audit(r, 3600) if e["event"] == "outbox.given_up")


def test_an_edit_made_while_the_previous_one_is_being_sent_is_sent_too(world):
    outbox, sender, slack, _ = world
    message = outbox.post("C1", "v0")
    sender.drain()
    original = slack.update

    def slow_update(channel, ts, text, *, blocks=None):
        original(channel, ts, text, blocks=blocks)
        if text == "v1":
            outbox.update("C1", message, "v2")  # lands on the entry being sent

    slack.update = slow_update
    outbox.update("C1", message, "v1")
    sender.drain()
    assert [call[3] for call in slack.calls if call[0] == "update"] == ["v1", "v2"]


def test_only_one_sender_delivers(r: Redis):
    slack = Slack()
    first, second = OutboxSender(r, slack), OutboxSender(r, slack)
    assert first._hold_lock() and not second._hold_lock()
    assert first._hold_lock()  # the holder keeps it
    first.pool.shutdown()
    second.pool.shutdown()


def test_queued_messages_survive_a_restart_of_the_bot(r: Redis):
    """What was queued when the bot stopped goes out when it (or another sender) starts."""
    outbox, slack = Outbox(r, lambda user: []), Slack()
    outbox.post("C1", "queued before the restart")
    sender = OutboxSender(r, slack)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: slack.calls, timeout=10, message="the queued message to go out")
        assert [call[3] for call in slack.calls] == ["queued before the restart"]
    finally:
        stop.set()
        thread.join(10)


def test_the_sender_keeps_slacks_pace_instead_of_collecting_429s(r: Redis):
    clock, slack = Clock(1_700_000_000.0), Slack()
    outbox = Outbox(r, lambda user: [], clock=clock)
    sender = OutboxSender(r, slack, clock=clock, pace={"post": (1.0, 3)})
    try:
        for i in range(6):
            outbox.post("C1", f"reply {i}", thread_ts=f"{i}.0")
        outbox.post("C2", "elsewhere")
        sender.drain()
        sent = [call[3] for call in slack.calls]
        assert "elsewhere" in sent and len(sent) == 4  # three of C1's (threads have no order among them)
        clock.now += 1.0
        sender.drain()
        assert len(slack.calls) == 5  # one more a second in C1
        clock.now += 2.0
        sender.drain()
        assert len(slack.calls) == 7
    finally:
        sender.pool.shutdown(wait=True)
