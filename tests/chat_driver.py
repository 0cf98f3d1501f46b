"""The one chat driver for end-to-end tests: a person talking to the real bot through the Slack
emulator of a running `Stack`, plus the job records in Redis as a second witness.

Why one module: each end-to-end test module used to carry its own copy of "say this, wait for
the bot's reply in the thread, click Approve, read the job id, wait for the job". Copies drift
(different timeouts, different ways of reading a message's text), and every copy imported the
product's internals. Here the plumbing lives once, and the product imports live only here.

Every wait is on a condition with a deadline (the emulator client's `wait_for` long-polls until
the workspace changes); nothing sleeps and hopes. A wait that runs out raises TimeoutError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bot.engine.store import JobRecord, get_job, list_jobs
from lab.slack.client import SlackLabClient
from lab.stack import CHANNEL, Stack

__all__ = [
    "ALICE", "BOB", "BOT", "CAROL", "CHANNEL", "VICTOR", "Chat", "Stack", "Thread", "buttons",
    "job_id_of", "text_of",
]

# The lab workspace's people, with the roles lab/stack.py gives them in the bot's config.
ALICE = "U0ALICE"  # operator: asks for maintenance
BOB = "U0BOB"  # approver
CAROL = "U0CAROL"  # second approver
VICTOR = "U0VIC"  # viewer: may look, not act
BOT = "U0BOT"  # the bot itself

Message = dict[str, Any]
MessageCheck = Callable[[Message], object]
JobCheck = Callable[[JobRecord], object]


def text_of(message: Message) -> str:
    """Everything a person reads in a message: its text plus the text of its blocks (a card's
    plan and decision live in blocks, not in `text`)."""
    parts = [message.get("text") or ""]
    for block in message.get("blocks") or []:
        parts.append((block.get("text") or {}).get("text", ""))
        parts.extend(e.get("text", "") for e in block.get("elements") or [] if isinstance(e.get("text"), str))
    return "\n".join(parts)


def buttons(message: Message) -> list[str]:
    """The action ids of a message's buttons, in order: ["approve", "deny"] on an open card,
    [] once it is decided or expired (or on a plain reply)."""
    return [e["action_id"] for b in message.get("blocks") or [] for e in b.get("elements") or []
            if e.get("type") == "button"]


def job_id_of(message: Message) -> str:
    """The job id a progress message names ("… Job `j-…` · `command` · state")."""
    return message["text"].split("`")[1]


def _text_check(match: str | MessageCheck) -> MessageCheck:
    if isinstance(match, str):
        return lambda m: match in (m.get("text") or "")
    return match


def _bot_reply_in(thread_ts: str, match: MessageCheck = lambda _: True) -> MessageCheck:
    """The bot's messages in the thread under `thread_ts`. A parent with replies carries its own ts
    as thread_ts, so it is skipped: under a slash command the parent is the bot's own echo."""
    return lambda m: (m.get("user") == BOT and m.get("thread_ts") == thread_ts and m.get("ts") != thread_ts
                      and match(m))


def _state_in(states: tuple[str, ...]) -> JobCheck:
    return lambda record: str(record.state) in states


class Chat:
    """A channel of a running `Stack`, seen by the people in it.

    `timeout` is the default deadline (seconds) for the bot to answer in a thread; the job
    helpers have their own defaults because jobs take longer than replies.
    """

    def __init__(self, stack: Stack, channel: str = CHANNEL, timeout: float = 30) -> None:
        self.stack = stack
        self.channel = channel
        self.timeout = timeout
        self.client: SlackLabClient = stack.slack.client
        self.redis = Redis.from_url(stack.redis.url)

    def reset(self) -> Chat:
        """A clean slate for the next test: the lab's objects back to the scenario, no API faults, and
        no approval request left open (each requester withdraws theirs with Deny, as a person would:
        the bot points a repeated ask to the open card instead of making a second one).
        (Slack messages, jobs in Redis and the workers are left as they are.)"""
        self.stack.lab.reset()
        self.stack.lab.set_faults({})
        for card in [m for m in self.client.messages(self.channel) if buttons(m) == ["approve", "deny"]]:
            requester = re.search(r"<@(U[A-Z0-9]+)> asks to run", card.get("text") or "")
            if requester:
                self.client.click(requester[1], self.channel, card["ts"], "deny")
                self.wait_for(lambda card=card: not buttons(self.client.message(self.channel, card["ts"])),
                              timeout=20, what="a withdrawn card to lose its buttons")
        return self

    # -- talking -------------------------------------------------------------------------------

    def ask(self, text: str, user: str = ALICE, timeout: float | None = None) -> Thread:
        """`user` mentions the bot with `text` in the channel; the thread, once the bot's first
        reply in it has come (a card, a progress message, an answer or a refusal)."""
        said = self.client.say(user, self.channel, f"<@{BOT}> {text}")
        return self.thread(said["ts"], timeout=timeout)

    def dm(self, text: str, user: str = ALICE, timeout: float | None = None) -> Thread:
        """`user` writes `text` to the bot in their direct message (no mention needed there)."""
        said = self.client.say(user, f"@{user}", text)
        return self.thread(said["ts"], channel=f"D{user[1:]}", timeout=timeout)  # the emulator's DM ids

    def slash(self, text: str, user: str = ALICE, timeout: float | None = None) -> Thread:
        """`user` types `/kubemaint text`; the bot echoes the command in the channel and answers in
        the echo's thread, so the thread returned is the echo's."""
        self.client.slash(user, self.channel, text)
        echo = self.client.wait_for_message(
            lambda m: m.get("user") == BOT and f"/kubemaint {text}" in m.get("text", ""),
            channel=self.channel, timeout=self._deadline(timeout))
        return self.thread(echo["ts"], timeout=timeout)

    def thread(self, ts: str, channel: str | None = None, timeout: float | None = None) -> Thread:
        """The bot's thread under message `ts` (however that message was sent), once its first
        reply has come."""
        channel = channel or self.channel
        reply = self.client.wait_for_message(_bot_reply_in(ts), channel=channel, timeout=self._deadline(timeout))
        return Thread(self, channel, ts, reply)

    def wait_ephemeral(self, user: str, since: int = 0, timeout: float = 10) -> dict[str, Any]:
        """The first chat.postEphemeral call to `user` (after Web API call id `since`): what only
        they see, e.g. why their click was refused."""
        return self.client.wait_for_call("chat.postEphemeral", lambda c: c["args"].get("user") == user,
                                         since=since, timeout=timeout)

    def wait_for(self, check: Callable[[], Any], timeout: float = 10, what: str = "a condition") -> Any:
        """`check()` once it is truthy (re-checked whenever the Slack workspace changes, at least
        every 10 s); TimeoutError after `timeout`."""
        return self.client.wait_for(check, timeout=timeout, what=what)

    def _deadline(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    # -- jobs (Redis) --------------------------------------------------------------------------

    def job(self, job_id: str) -> JobRecord | None:
        """The job's record as the workers last wrote it, with its steps (None while Redis is down)."""
        try:
            return get_job(self.redis, job_id)
        except RedisError:
            return None

    def jobs(self) -> list[JobRecord]:
        """The most recent jobs (the bot's `jobs` listing: newest first, at most 20)."""
        return list_jobs(self.redis)

    def wait_job(self, job_id: str, until: str | Iterable[str] | JobCheck, timeout: float = 60,
                 what: str | None = None) -> JobRecord:
        """The job's record once it is in the state(s) `until` (e.g. ("succeeded",)) or once
        `until(record)` is true (e.g. a given step is running)."""
        if callable(until):
            check, wanted = until, "a condition"
        else:
            states = (until,) if isinstance(until, str) else tuple(until)
            check, wanted = _state_in(states), str(states)
        return self.wait_for(lambda: (r := self.job(job_id)) and check(r) and r, timeout=timeout,
                             what=what or f"job {job_id} to reach {wanted}")


@dataclass
class Thread:
    """One request's thread: the message that asked (`ts`) and the bot's replies under it."""

    chat: Chat
    channel: str
    ts: str
    reply: Message  # the bot's first reply, as it was when it came (see card() for now)

    def replies(self) -> list[Message]:
        """All the bot's messages in the thread now, oldest first."""
        return [m for m in self.chat.client.messages(self.channel) if _bot_reply_in(self.ts)(m)]

    def wait(self, match: str | MessageCheck, timeout: float | None = None) -> Message:
        """The oldest bot message in the thread whose text contains `match` (or for which
        `match(message)` is true), once there is one."""
        return self.chat.client.wait_for_message(_bot_reply_in(self.ts, _text_check(match)), channel=self.channel,
                                                 timeout=self.chat._deadline(timeout))

    # -- the approval card -----------------------------------------------------------------------

    def card(self) -> Message:
        """The first reply (the approval card) as it is now: cards are edited when decided or expired."""
        return self.chat.client.message(self.channel, self.reply["ts"])

    def settled_card(self, timeout: float = 10, what: str = "the card to be decided or expire") -> Message:
        """The card once its buttons are gone: it then says who decided, or that it expired."""
        return self.chat.wait_for(lambda: (m := self.card()) and not buttons(m) and m, timeout=timeout, what=what)

    def click(self, action_id: str, user: str) -> None:
        """`user` clicks the button `action_id` on the card; whether it counted is for the test to see."""
        self.chat.client.click(user, self.channel, self.reply["ts"], action_id)

    def approve(self, user: str = BOB, timeout: float = 30) -> str:
        """`user` approves the card; the id of the job that starts, from its progress message."""
        self.click("approve", user)
        return job_id_of(self.progress(timeout=timeout))

    # -- the job's progress message ----------------------------------------------------------------

    def progress(self, timeout: float = 10) -> Message:
        """The job's progress message as it is now (the bot edits this one message as steps run)."""
        return self.wait("Job `", timeout=timeout)

    def wait_progress(self, match: str, timeout: float = 30, what: str | None = None) -> Message:
        """The progress message once its text contains `match`, e.g. "succeeded" or "Failed"."""
        return self.chat.wait_for(lambda: match in (m := self.progress())["text"] and m, timeout=timeout,
                                  what=what or f"the progress message to say {match!r}")
