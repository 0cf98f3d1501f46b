"""A burst in one channel, with Slack's rate limits on (the emulator's: about one post a second per
channel, fifty edits a minute per app): nothing the bot says is lost, and every job's thread ends
in its final state. Before the outbox, 6-7 replies of a 20-message burst were lost for good."""

from __future__ import annotations

import time

import pytest

from tests.chat_driver import ALICE, BOB, BOT, Chat, Stack, buttons, text_of

pytestmark = pytest.mark.runs_long(61)

USERS = [f"U0OP{i:02d}" for i in range(10)]
NODES = ["node01", "node02", "node03"]
REPLY_DEADLINE = 60.0


@pytest.fixture(scope="module")
def stack():
    with Stack(scenario="three-workers", time_scale=0.05, workers=2, approval_required=(),
               extra_users=dict.fromkeys(USERS, "operator")) as running:
        yield running


def commands_of(index: int) -> list[str]:
    node = NODES[index % len(NODES)]
    return ["status", "jobs", f"uncordon {node}", "help", f"cordon {node}" if index % 2 else f"uncordon {node}"]


def test_fifty_commands_from_ten_users_in_one_second_all_get_their_replies(stack):
    chat = Chat(stack).reset()
    client = stack.slack.client
    limits = client.configure()["rate_limits"]  # Slack's limits are on
    assert limits["chat.postMessage"]["scope"] == "channel" and limits["chat.update"]["per_minute"] <= 50
    said: list[tuple[str, str]] = []  # (ts, command)
    started = time.monotonic()
    for round_ in range(5):
        for index, user in enumerate(USERS):
            command = commands_of(index)[round_]
            said.append((client.say(user, chat.channel, f"<@{BOT}> {command}")["ts"], command))
    assert time.monotonic() - started < 1.0, "the burst took more than a second to send"

    threads, waits = [], []
    for ts, command in said:
        thread = chat.thread(ts, timeout=REPLY_DEADLINE + 5)
        threads.append((thread, command))
        waits.append(float(thread.reply["ts"]) - float(ts))  # the emulator's clock, both ends
    assert len(waits) == 50
    assert max(waits) <= REPLY_DEADLINE, sorted(waits)

    for thread, command in threads:  # each job's message ends in its final state, however few edits Slack allowed
        if "cordon" not in command:
            continue
        final = thread.wait(lambda m: "Job `" in (m.get("text") or "") and any(
            word in m["text"].split("\n")[0] for word in ("succeeded", "failed")), timeout=240)
        assert "succeeded" in final["text"].split("\n")[0], final["text"]
    limited = sum(1 for call in client.calls() if call.get("status") == 429)
    print(f"burst: 50 replies, slowest {max(waits):.1f} s, median {sorted(waits)[25]:.1f} s; "
          f"Slack answered 429 {limited} times along the way")


def test_asking_again_while_the_card_waits_points_to_the_card(stack):
    chat = Chat(stack).reset()
    first = chat.ask("drain node02 --force --delete-emptydir-data", user=ALICE)
    assert buttons(first.reply) == ["approve", "deny"]
    again = chat.ask("drain node02 --delete-emptydir-data --force", user=ALICE)  # the same command
    assert buttons(again.reply) == []
    assert "You already asked for `drain node02 --delete-emptydir-data --force`" in again.reply["text"]
    assert "still waiting for approval" in again.reply["text"]
    first.click("deny", user=BOB)
    first.settled_card(timeout=20)
    third = chat.ask("drain node02 --force --delete-emptydir-data", user=ALICE)  # decided: a new card
    assert buttons(third.reply) == ["approve", "deny"] and "asks to run" in text_of(third.reply)
