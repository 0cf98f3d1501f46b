"""The Web API subset at /api/<method>: auth, arguments, rate limits and the methods themselves.

Answers are Slack's: HTTP 200 `{"ok": true, ...}` or `{"ok": false, "error": "..."}`; 429 with
`Retry-After` when rate limited; 404 `unknown_method` for methods the emulator does not have.
Every call, failed ones included, is recorded for GET /_lab/calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.slack import blocks as bk
from lab.slack.workspace import Channel, Message, NotFound

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator

MAX_TEXT = 40_000
JSON_ARGS = ("blocks", "attachments", "metadata")


class ApiError(Exception):
    def __init__(self, error: str, *, status: int = 200, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.extra = extra


@dataclass(frozen=True)
class Method:
    fn: Callable[[SlackEmulator, dict[str, Any]], dict[str, Any]]
    token: str | None  # "bot", "app" or None (no auth)


METHODS: dict[str, Method] = {}


def method(name: str, token: str | None = "bot") -> Callable:
    def register(fn: Callable[[SlackEmulator, dict[str, Any]], dict[str, Any]]) -> Callable:
        METHODS[name] = Method(fn, token)
        return fn
    return register


# -- request handling ----------------------------------------------------------------------------


async def read_args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_ARGS:
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key]) if args[key] else None
            except ValueError:
                raise ApiError("invalid_blocks_format" if key == "blocks" else "invalid_arguments") from None
    return args


def _token(request: web.Request, args: dict[str, Any]) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        args.pop("token", None)
        return auth[7:].strip() or None
    token = args.pop("token", None)
    return str(token) if token else None


async def handle(emu: SlackEmulator, request: web.Request) -> web.Response:
    name = request.match_info["method"]
    started = time.time()
    args: dict[str, Any] = {}
    token_kind = None
    try:
        args = await read_args(request)
        token = _token(request, args)
        spec = METHODS.get(name)
        if spec is None:
            raise ApiError("unknown_method", status=404, req_method=name)
        if spec.token is not None:
            if not token:
                raise ApiError("not_authed")
            token_kind = emu.token_kind(token)
            if token_kind is None:
                raise ApiError("invalid_auth")
            if token_kind != spec.token:
                raise ApiError("not_allowed_token_type")
        retry_after = emu.limiter.check(name, _channel_key(emu, args))
        if retry_after is not None:
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        try:
            result = spec.fn(emu, args)
        except NotFound as e:
            raise ApiError(e.error) from None
        status, headers, body = 200, {}, {"ok": True, **result}
    except ApiError as e:
        status, headers, body = e.status, e.headers, {"ok": False, "error": e.error, **e.extra}
    emu.record_call({"method": name, "args": args, "token": token_kind, "time": started,
                     "status": status, "ok": body["ok"], "error": body.get("error"), "response": body})
    return web.json_response(body, status=status, headers=headers)


def _channel_key(emu: SlackEmulator, args: dict[str, Any]) -> str | None:
    ref = args.get("channel")
    if not ref:
        return None
    try:
        return emu.workspace.channel(str(ref)).id
    except NotFound:
        return str(ref)


# -- argument helpers ----------------------------------------------------------------------------


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _channel(emu: SlackEmulator, args: dict[str, Any], key: str = "channel") -> Channel:
    return emu.workspace.channel(str(args.get(key) or ""))


def _writable(emu: SlackEmulator, args: dict[str, Any]) -> Channel:
    channel = _channel(emu, args)
    if emu.workspace.bot_user_id not in channel.members:
        raise ApiError("not_in_channel")
    if channel.is_archived:
        raise ApiError("is_archived")
    return channel


def _content(args: dict[str, Any], *, required: bool = True) -> tuple[str | None, list[dict] | None]:
    text = args.get("text")
    text = None if text is None else str(text)
    blocks = args.get("blocks")
    if blocks is not None:
        errors = bk.validate(blocks)
        if errors:
            raise ApiError("invalid_blocks", errors=errors,
                           response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        blocks = bk.normalise(blocks)
    if required and not text and not blocks and not args.get("attachments"):
        raise ApiError("no_text")
    if text and len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks


def _message(emu: SlackEmulator, msg: Message) -> dict[str, Any]:
    return msg.slack(emu.workspace.team_id)


# -- methods -------------------------------------------------------------------------------------


@method("api.test", token=None)
def api_test(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    if args.get("error"):
        raise ApiError(str(args["error"]), args=args)
    return {"args": args}


@method("auth.test")
def auth_test(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    ws = emu.workspace
    return {"url": f"https://{ws.team_domain}.slack.com/", "team": ws.team_name, "user": "kubemaint",
            "team_id": ws.team_id, "user_id": ws.bot_user_id, "bot_id": ws.bot_id,
            "is_enterprise_install": False}


@method("apps.connections.open", token="app")
def apps_connections_open(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    return {"url": emu.socket.issue_url()}


@method("chat.postMessage")
def chat_post_message(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _writable(emu, args)
    text, blocks = _content(args)
    thread_ts = args.get("thread_ts") or None
    if thread_ts:
        try:
            emu.workspace.message(channel.id, str(thread_ts))
        except NotFound:
            raise ApiError("invalid_thread_ts") from None
    msg = emu.post_message(channel, emu.workspace.bot_user_id, text or "", blocks, thread_ts=thread_ts, bot=True,
                           metadata=args.get("metadata"), source="chat.postMessage")
    return {"channel": channel.id, "ts": msg.ts, "message": _message(emu, msg)}


@method("chat.update")
def chat_update(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _channel(emu, args)
    msg = emu.workspace.message(channel.id, str(args.get("ts") or ""))
    if msg.user != emu.workspace.bot_user_id:
        raise ApiError("cant_update_message")
    text, blocks = _content(args)
    emu.workspace.update(msg, text=text, blocks=blocks, metadata=args.get("metadata"), source="chat.update")
    emu.changed()
    return {"channel": channel.id, "ts": msg.ts, "text": msg.text, "message": _message(emu, msg)}


@method("chat.postEphemeral")
def chat_post_ephemeral(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _writable(emu, args)
    user = emu.workspace.user(str(args.get("user") or ""))["id"]
    if user not in channel.members:
        raise ApiError("user_not_in_channel")
    text, blocks = _content(args)
    msg = emu.post_message(channel, emu.workspace.bot_user_id, text or "", blocks,
                           thread_ts=args.get("thread_ts") or None, bot=True, ephemeral_to=user,
                           source="chat.postEphemeral")
    return {"message_ts": msg.ts}


@method("chat.delete")
def chat_delete(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _channel(emu, args)
    msg = emu.workspace.message(channel.id, str(args.get("ts") or ""))
    if msg.user != emu.workspace.bot_user_id:
        raise ApiError("cant_delete_message")
    msg.deleted = True
    emu.changed()
    return {"channel": channel.id, "ts": msg.ts}


@method("chat.getPermalink")
def chat_get_permalink(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _channel(emu, args)
    msg = emu.workspace.message(channel.id, str(args.get("message_ts") or ""))
    link = f"https://{emu.workspace.team_domain}.slack.com/archives/{channel.id}/p{msg.ts.replace('.', '')}"
    if msg.thread_ts:
        link += f"?thread_ts={msg.thread_ts}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


@method("conversations.info")
def conversations_info(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    return {"channel": _channel(emu, args).info(emu.workspace.bot_user_id)}


@method("conversations.open")
def conversations_open(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    if args.get("channel"):
        return {"channel": {"id": _channel(emu, args).id}}
    users = [u for u in str(args.get("users") or "").split(",") if u]
    if not users:
        raise ApiError("users_list_not_supplied")
    if len(users) > 1:
        raise ApiError("not_supported", detail="the emulator has no multi-person DMs")
    channel = emu.workspace.channel(emu.workspace.user(users[0])["id"])
    return {"no_op": True, "already_open": True, "channel": {"id": channel.id}}


def _page(emu: SlackEmulator, msgs: list[Message], args: dict[str, Any]) -> dict[str, Any]:
    latest, oldest = args.get("latest"), args.get("oldest")
    inclusive = _bool(args.get("inclusive", False))
    if latest:
        msgs = [m for m in msgs if m.ts < str(latest) or (inclusive and m.ts == str(latest))]
    if oldest:
        msgs = [m for m in msgs if m.ts > str(oldest) or (inclusive and m.ts == str(oldest))]
    start = int(args.get("cursor") or 0)
    limit = max(1, min(int(args.get("limit") or 100), 1000))
    page = msgs[start:start + limit]
    more = start + limit < len(msgs)
    return {"messages": [_message(emu, m) for m in page], "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


@method("conversations.history")
def conversations_history(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _channel(emu, args)
    msgs = [m for m in emu.workspace.listing(channel.id)
            if not m.ephemeral_to and (not m.thread_ts or m.thread_ts == m.ts)]
    return _page(emu, list(reversed(msgs)), args)


@method("conversations.replies")
def conversations_replies(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    channel = _channel(emu, args)
    try:
        parent = emu.workspace.message(channel.id, str(args.get("ts") or ""))
    except NotFound:
        raise ApiError("thread_not_found") from None
    root = parent.thread_ts or parent.ts
    msgs = [m for m in emu.workspace.listing(channel.id, thread_ts=root) if not m.ephemeral_to]
    return _page(emu, msgs, args)


@method("users.info")
def users_info(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    user_id = str(args.get("user") or "")
    if user_id not in emu.workspace.users:
        raise ApiError("user_not_found")
    return {"user": emu.workspace.user_profile(user_id)}


@method("users.list")
def users_list(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    members = [emu.workspace.user_profile(uid) for uid in emu.workspace.users]
    return {"members": members, "cache_ts": int(time.time()), "response_metadata": {"next_cursor": ""}}


@method("usergroups.list")
def usergroups_list(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    out = []
    for g in emu.workspace.usergroups.values():
        item = {"id": g["id"], "team_id": emu.workspace.team_id, "is_usergroup": True, "name": g["name"],
                "handle": g["handle"], "description": "", "user_count": len(g["users"]), "date_delete": 0}
        if _bool(args.get("include_users", False)):
            item["users"] = list(g["users"])
        out.append(item)
    return {"usergroups": out}


@method("usergroups.users.list")
def usergroups_users_list(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    group = emu.workspace.usergroups.get(str(args.get("usergroup") or ""))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"users": list(group["users"])}
