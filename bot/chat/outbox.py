"""Every message the bot sends goes through one queue in Redis, so none is lost to Slack's limits.

Slack allows about one `chat.postMessage` a second per channel and about fifty `chat.update` a
minute per app, and answers 429 with `Retry-After` beyond that. A burst of twenty commands used
to lose replies for good once the SDK's retries ran out. Now the bot's handlers only enqueue
(`Outbox`, which speaks the same `Chat` protocol as a direct client) and one sender
(`OutboxSender`, in the first handler process) delivers:

- in order per thread: a message and everything after it in the same thread (replies, the card,
  its edits) go through one FIFO "lane";
- within Slack's limits: a 429 pauses what it limits (posts to that channel, or all edits) for
  `Retry-After`, and the entry is tried again; connection errors and 5xx are retried with
  backoff; an entry older than `deadline` (minutes) is given up and logged;
- with edits coalesced: an edit of a message whose previous edit has not gone out yet replaces
  that edit in place, so a busy job's progress costs one `chat.update`, not one per event.

Messages are named by a `MessageRef` ("m-..."), known at once; Slack's `ts` is recorded when
the post goes out, and later edits, and replies into its thread, are resolved to it then. The
queue lives in Redis, so what is queued survives a restart of the bot.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot.engine.audit import audit

log = structlog.get_logger("kubemaint.outbox")

PREFIX = "kubemaint:outbox:"
READY = PREFIX + "ready"  # zset: lane -> when its head may be tried (epoch ms)
WAKE = PREFIX + "wake"  # list: a push per enqueue wakes the sender
SENDER_LOCK = PREFIX + "sender"
DEADLINE_SECONDS = 15 * 60
MESSAGE_TTL = 7 * 24 * 3600  # how long a ref resolves to its ts (progress and cards are edited for days)
# Errors Slack will give again however often we ask: drop the entry, say so in the log.
PERMANENT_ERRORS = {"channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text",
                    "invalid_blocks", "message_not_found", "cant_update_message", "edit_window_closed",
                    "user_not_in_channel", "invalid_auth", "account_inactive", "token_revoked",
                    "restricted_action", "invalid_arguments"}
BACKOFF_MAX = 30.0
# Our own pace, so that a burst asks Slack for what it allows instead of collecting 429s: (calls a
# second, burst). Slack documents about one post a second per channel "with short bursts
# tolerated" and tier 3 (about 50 a minute) for chat.update; the lab's emulator models those
# bursts as 5 and 10. A file upload is three calls (tier 4 and the upload itself); twenty a
# minute is far more than a bot attaching a status table needs. A 429 still pauses for its
# Retry-After whatever these say.
PACE = {"post": (1.0, 5), "update": (50 / 60, 10), "ephemeral": (5.0, 10), "upload": (20 / 60, 5)}

MessageRef = str  # "m-" + hex; a real Slack ts ("1700000000.000100") is accepted wherever a ref is


def new_ref() -> MessageRef:
    return "m-" + secrets.token_hex(6)


def _entry(entry_id: str) -> str:
    return f"{PREFIX}e:{entry_id}"


def _lane(lane: str) -> str:
    return f"{PREFIX}lane:{lane}"


def _message(ref: str) -> str:
    return f"{PREFIX}m:{ref}"


def posted_ts(redis: Redis, ref: str) -> str | None:
    """Slack's ts of a message the outbox posted (None until it is); a real ts is returned as is."""
    if not _is_ref(ref):
        return ref
    ts = redis.hget(_message(ref), "ts")
    return ts.decode() if isinstance(ts, bytes) else ts


def _is_ref(value: str | None) -> bool:
    return bool(value) and value.startswith("m-")


def _decode(raw: dict) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


# An edit of a message whose previous edit is still queued replaces that edit's content (and bumps
# its version, so a sender that is sending the old content right now sends again); otherwise it is
# queued in the message's lane. KEYS: the message, the new entry, READY, WAKE. ARGV: prefix, the new
# entry id, now (ms), then the entry's fields as name/value pairs.
_EDIT_LUA = """
local pending = redis.call('HGET', KEYS[1], 'edit')
if pending and redis.call('EXISTS', ARGV[1] .. 'e:' .. pending) == 1 then
  local key = ARGV[1] .. 'e:' .. pending
  for i = 4, #ARGV, 2 do
    if ARGV[i] == 'text' or ARGV[i] == 'blocks' then redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
  end
  redis.call('HINCRBY', key, 'version', 1)
  return pending
end
local lane = redis.call('HGET', KEYS[1], 'lane')
if not lane then return false end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('RPUSH', ARGV[1] .. 'lane:' .. lane, ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], lane)
redis.call('HSET', KEYS[1], 'edit', ARGV[2])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 99)
return ARGV[2]
"""

# The head of a lane with its fields, in one round trip; an empty lane leaves READY.
# KEYS: the lane, READY. ARGV: prefix, lane name. Returns {entry id, field, value, ...} or false.
_HEAD_LUA = """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then redis.call('ZREM', KEYS[2], ARGV[2]) return false end
local reply = redis.call('HGETALL', ARGV[1] .. 'e:' .. head)
table.insert(reply, 1, head)
return reply
"""

# After a send, in one round trip: record a post's ts, then pop the entry if it is still the lane's
# head and was not changed meanwhile (else it goes again with its new content), and make the
# lane's next entry due now. KEYS: the lane, the entry, the edited message (or ""), READY, the
# posted message (or ""), WAKE. ARGV: entry id, version sent, lane name, ts posted (or "").
_DONE_LUA = """
if KEYS[5] ~= '' then redis.call('HSET', KEYS[5], 'ts', ARGV[4]) end
local popped = 0
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] and (redis.call('HGET', KEYS[2], 'version') or '0') == ARGV[2] then
  redis.call('LPOP', KEYS[1])
  redis.call('DEL', KEYS[2])
  if KEYS[3] ~= '' and redis.call('HGET', KEYS[3], 'edit') == ARGV[1] then redis.call('HDEL', KEYS[3], 'edit') end
  popped = 1
end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[3])
else
  redis.call('ZADD', KEYS[4], 'XX', 0, ARGV[3])
  redis.call('LPUSH', KEYS[6], '1')
end
return popped
"""


class Outbox:
    """The bot's `Chat` for sending: every call queues and returns at once. `post` returns the
    new message's ref, usable at once as the `ts` of later edits and as a `thread_ts`."""

    def __init__(self, redis: Redis, group_lookup: Callable[[str], list[str]], clock: Callable[[], float] = time.time,
                 deadline_seconds: float = DEADLINE_SECONDS) -> None:
        self.redis = redis
        self._groups_of = group_lookup
        self.clock = clock
        self.deadline_seconds = deadline_seconds
        self._edit = redis.register_script(_EDIT_LUA)

    def post(self, channel: str, text: str, *, thread_ts: str | None = None, blocks: list | None = None,
             ref: MessageRef | None = None) -> str:
        """Queue a message; its ref (or `ref`, made with `new_ref()` by a caller that had to record it
        first) names it for edits and replies at once."""
        ref = ref or new_ref()
        lane = f"{channel}:{thread_ts or ref}"
        fields = self._fields("post", channel, text, blocks, ref=ref, thread=thread_ts or "")
        with self.redis.pipeline() as pipe:  # MULTI: the sender sees the entry and its lane together
            pipe.hset(_message(ref), mapping={"channel": channel, "lane": lane})
            pipe.expire(_message(ref), MESSAGE_TTL)
            self._queue(pipe, lane, fields)
            pipe.execute()
        return ref

    def update(self, channel: str, ts: str, text: str, *, blocks: list | None = None) -> bool:
        """Queue an edit of the message `ts` (a ref or a Slack ts). False if no such message is queued
        or known yet (its post may be a moment behind): the caller tries again."""
        if not _is_ref(ts):  # a message posted before the outbox existed: its own lane
            self.redis.hsetnx(_message(ts), "lane", f"{channel}:{ts}")
            self.redis.hsetnx(_message(ts), "ts", ts)
            self.redis.hsetnx(_message(ts), "channel", channel)
        entry_id = secrets.token_hex(8)
        fields = self._fields("update", channel, text, blocks, ref=ts)
        flat = [part for pair in fields.items() for part in pair]
        queued = self._edit(keys=[_message(ts), _entry(entry_id), READY, WAKE],
                            args=[PREFIX, entry_id, self._now_ms(), *flat])
        return queued is not None

    def ephemeral(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> None:
        # Ephemerals answer a click: they go out ahead of the thread's queue, in a lane of their own.
        fields = self._fields("ephemeral", channel, text, None, thread=thread_ts or "", user=user)
        with self.redis.pipeline() as pipe:
            self._queue(pipe, f"{channel}:ephemeral:{user}", fields)
            pipe.execute()

    def upload(self, channel: str, filename: str, title: str, content: str, *, thread_ts: str | None = None) -> None:
        """Queue a file for the thread `thread_ts` (a ref or a ts): after what is queued there already."""
        lane = f"{channel}:{thread_ts or new_ref()}"
        fields = self._fields("upload", channel, content, None, thread=thread_ts or "", filename=filename, title=title)
        with self.redis.pipeline() as pipe:
            self._queue(pipe, lane, fields)
            pipe.execute()

    def groups_of(self, user: str) -> list[str]:
        return self._groups_of(user)

    def _fields(self, kind: str, channel: str, text: str, blocks: list | None, **extra: str) -> dict[str, str]:
        now = self.clock()
        return {"kind": kind, "channel": channel, "text": text,
                "blocks": "" if blocks is None else json.dumps(blocks), "created": f"{now:.3f}",
                "deadline": f"{now + self.deadline_seconds:.3f}", "version": "0", "attempts": "0", **extra}

    def _queue(self, pipe: Any, lane: str, fields: dict[str, str]) -> None:
        entry_id = secrets.token_hex(8)
        pipe.hset(_entry(entry_id), mapping={**fields, "lane": lane})
        pipe.rpush(_lane(lane), entry_id)
        pipe.zadd(READY, {lane: self._now_ms()}, nx=True)  # a lane paused by a 429 stays paused
        pipe.lpush(WAKE, "1")
        pipe.ltrim(WAKE, 0, 99)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


class OutboxSender:
    """Delivers the queue: one lane's entries one at a time and in order, up to `parallel` lanes
    at once. Only one sender runs at a time (a Redis lock), so order holds across processes."""

    def __init__(self, redis: Redis, chat: Any, *, parallel: int = 8, clock: Callable[[], float] = time.time,
                 lock_ttl: float = 10.0, pace: dict[str, tuple[float, int]] | None = PACE) -> None:
        self.redis = redis
        self.chat = chat  # posts for real: bot/chat/slack_chat.py SlackChat, without SDK retries on 429
        self.clock = clock
        self.lock_ttl = lock_ttl
        self.token = secrets.token_hex(8)
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="outbox")
        self.parallel = parallel
        self.in_flight: set[str] = set()
        self.paused: dict[str, float] = {}  # what a 429 paused ("update", "post:C0OPS") -> until (epoch s)
        self.pace = pace or {}
        self.buckets: dict[str, tuple[float, float]] = {}  # pace key -> (tokens, at)
        self._guard = threading.Lock()
        self._done = redis.register_script(_DONE_LUA)
        self._head = redis.register_script(_HEAD_LUA)
        self._lock_checked = 0.0

    def run(self, stop: threading.Event) -> None:
        redis_down = False
        while not stop.is_set():
            try:
                if not self._hold_lock():
                    stop.wait(self.lock_ttl / 3)
                    continue
                started = self.dispatch()
                if not started:
                    self.redis.brpop([WAKE], timeout=self._idle_seconds())
                redis_down = False
            except RedisError as error:  # said once per outage
                if not redis_down:
                    log.warning("outbox.redis_unreachable", error=str(error))
                redis_down = True
                stop.wait(1.0)
            except Exception:  # a bug must not end delivery for every message
                log.exception("outbox.error")
                stop.wait(1.0)
        self.pool.shutdown(wait=True)

    def dispatch(self) -> int:
        """Start sending the head of every lane that is due and not already being sent."""
        now_ms = int(self.clock() * 1000)
        due = [lane.decode() if isinstance(lane, bytes) else lane
               for lane in self.redis.zrangebyscore(READY, "-inf", now_ms, start=0, num=self.parallel * 4)]
        started = 0
        for lane in due:
            with self._guard:
                if lane in self.in_flight or len(self.in_flight) >= self.parallel:
                    continue
                self.in_flight.add(lane)
            self.pool.submit(self._send_head_safely, lane)
            started += 1
        return started

    def drain(self, timeout: float = 30.0) -> None:
        """Send everything that is due now, waiting for it (tests, and a clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._guard:
                busy = bool(self.in_flight)
            due = self.redis.zrangebyscore(READY, "-inf", int(self.clock() * 1000), start=0, num=1)
            if not busy and not due:
                return
            self.dispatch()
            time.sleep(0.01)

    def _idle_seconds(self) -> float:
        first = self.redis.zrange(READY, 0, 0, withscores=True)
        if not first:
            return 1.0
        wait = first[0][1] / 1000 - self.clock()
        return max(0.05, min(1.0, wait))

    def _hold_lock(self) -> bool:
        if time.monotonic() - self._lock_checked < self.lock_ttl / 3:
            return True  # held, and refreshed less than a third of its TTL ago
        ttl_ms = int(self.lock_ttl * 1000)
        held = bool(self.redis.set(SENDER_LOCK, self.token, nx=True, px=ttl_ms))
        if not held:
            current = self.redis.get(SENDER_LOCK)
            held = current is not None and (current.decode() if isinstance(current, bytes) else current) == self.token
            if held:
                self.redis.pexpire(SENDER_LOCK, ttl_ms)
        self._lock_checked = time.monotonic() if held else 0.0
        return held

    def _send_head_safely(self, lane: str) -> None:
        try:
            self._send_head(lane)
        except RedisError as error:
            log.warning("outbox.redis_error", lane=lane, error=str(error))
        except Exception:
            log.exception("outbox.send_failed", lane=lane)
            self._retry_later(lane, 5.0)
        finally:
            with self._guard:
                self.in_flight.discard(lane)

    def _send_head(self, lane: str) -> None:
        reply = self._head(keys=[_lane(lane), READY], args=[PREFIX, lane])
        if not reply:
            return
        entry_id = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        entry = _decode(dict(zip(reply[1::2], reply[2::2], strict=True)))
        if not entry:  # expired or removed: skip it
            self._pop(lane, entry_id, "0", "")
            return
        now = self.clock()
        if now > float(entry["deadline"]):
            self._give_up(lane, entry_id, entry, "not delivered before its deadline")
            return
        pause = self._pause_key(entry)
        wait = max(self.paused.get(pause, 0.0) - now, self._take(pause, entry["kind"], now))
        if wait > 0:
            self._retry_later(lane, wait)
            return
        try:
            posted = self._deliver(entry)
        except SlackApiError as error:
            self._failed(lane, entry_id, entry, error)
            return
        except (OSError, TimeoutError) as error:  # connection refused, reset, timed out
            log.warning("outbox.unreachable", lane=lane, error=str(error))
            self._retry_later(lane, self._backoff(entry_id))
            return
        except _Unresolved as missing:
            self._give_up(lane, entry_id, entry, str(missing))
            return
        self._pop(lane, entry_id, entry.get("version", "0"), entry.get("ref", "") if entry["kind"] == "update" else "",
                  posted=(entry["ref"], posted) if posted else None)

    def _deliver(self, entry: dict[str, str]) -> str | None:
        """Make the Slack call; a post's ts."""
        kind, channel = entry["kind"], entry["channel"]
        blocks = json.loads(entry["blocks"]) if entry.get("blocks") else None
        if kind == "post":
            thread = self._resolve(entry["thread"]) if entry.get("thread") else None
            return self.chat.post(channel, entry["text"], thread_ts=thread, blocks=blocks)
        if kind == "update":
            self.chat.update(channel, self._resolve(entry["ref"]), entry["text"], blocks=blocks)
        elif kind == "upload":
            thread = self._resolve(entry["thread"]) if entry.get("thread") else None
            self.chat.upload(channel, entry["filename"], entry["title"], entry["text"], thread_ts=thread)
        else:
            thread = self._resolve(entry["thread"]) if entry.get("thread") else None
            self.chat.ephemeral(channel, entry["user"], entry["text"], thread_ts=thread)
        return None

    def _resolve(self, ref: str) -> str:
        if not _is_ref(ref):
            return ref
        ts = self.redis.hget(_message(ref), "ts")
        if ts is None:
            raise _Unresolved(f"message {ref} was never posted")
        return ts.decode() if isinstance(ts, bytes) else ts

    def _failed(self, lane: str, entry_id: str, entry: dict[str, str], error: SlackApiError) -> None:
        response = error.response
        code = response.get("error") if hasattr(response, "get") else None
        if getattr(response, "status_code", None) == 429 or code == "ratelimited":
            retry_after = float((response.headers or {}).get("Retry-After") or
                                (response.headers or {}).get("retry-after") or 1)
            self.paused[self._pause_key(entry)] = self.clock() + retry_after
            log.info("outbox.rate_limited", kind=entry["kind"], channel=entry["channel"], retry_after=retry_after)
            self._retry_later(lane, retry_after)
        elif code in PERMANENT_ERRORS:
            self._give_up(lane, entry_id, entry, f"Slack refused it: {code}")
        else:  # fatal_error, internal_error, service_unavailable, 5xx: Slack's trouble, not ours
            log.warning("outbox.slack_error", lane=lane, error=code)
            self._retry_later(lane, self._backoff(entry_id))

    def _take(self, key: str, kind: str, now: float) -> float:
        """A token of `key`'s pace: 0 if there was one, else how long until there is."""
        if kind not in self.pace:
            return 0.0
        rate, burst = self.pace[kind]
        with self._guard:
            tokens, at = self.buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self.buckets[key] = (tokens - 1.0, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def _pause_key(self, entry: dict[str, str]) -> str:
        # chat.update's limit is per app; chat.postMessage's per channel.
        return "update" if entry["kind"] == "update" else f"{entry['kind']}:{entry['channel']}"

    def _backoff(self, entry_id: str) -> float:
        attempts = self.redis.hincrby(_entry(entry_id), "attempts", 1)
        return min(BACKOFF_MAX, 0.5 * 2 ** (attempts - 1))

    def _retry_later(self, lane: str, seconds: float) -> None:
        self.redis.zadd(READY, {lane: int((self.clock() + seconds) * 1000)}, xx=True)

    def _pop(self, lane: str, entry_id: str, version: str, ref: str, *, posted: tuple[str, str] | None = None) -> None:
        self._done(keys=[_lane(lane), _entry(entry_id), _message(ref) if ref else "", READY,
                         _message(posted[0]) if posted else "", WAKE],
                   args=[entry_id, version, lane, posted[1] if posted else ""])

    def _give_up(self, lane: str, entry_id: str, entry: dict[str, str], why: str) -> None:
        log.error("outbox.given_up", lane=lane, kind=entry.get("kind"), channel=entry.get("channel"), why=why,
                  text=entry.get("text", "")[:200])
        audit(self.redis, "outbox.given_up", kind=entry.get("kind"), channel=entry.get("channel"), why=why,
              text=entry.get("text", "")[:200])
        self._pop(lane, entry_id, entry.get("version", "0"), entry.get("ref", "") if entry.get("kind") == "update"
                  else "")


class _Unresolved(LookupError):
    """A ref whose message was never posted (its post was given up)."""
