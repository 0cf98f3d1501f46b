"""The lab's control API under /_lab/: act as people, look at what happened, wait for changes.

Every answer is JSON with `version`, a counter that moves on every change (message, call,
delivery, connection). `GET /_lab/wait?after=V&timeout=T` returns as soon as the version passes V,
so clients wait for a condition without sleeping: read, check, wait(after=version), read again.

    GET  /_lab/                      workspace, settings, rate limits, ids
    POST /_lab/say        {user, channel, text, thread_ts?}       -> ts, delivery_ids
    POST /_lab/click      {user, channel, ts, action_id, value?, block_id?} -> delivery_ids, delivered,
                          error, shown (answered once the app acked, or Slack gave up: at most ack_timeout)
    GET  /_lab/clicks     what each clicking user saw, oldest first
    GET  /_lab/messages   ?channel=&thread_ts=&include_deleted=1
    GET  /_lab/calls      ?method=&since=<call id>
    GET  /_lab/deliveries ?state=pending|acked|failed|timeout&ids=dlv-1,dlv-2
    GET  /_lab/connections
    POST /_lab/disconnect {reason?, connection_id?, grace?}
    POST /_lab/config     {http_mode?, request_url?, ack_timeout?, ..., rate_limits?}
    POST /_lab/verify_url
    POST /_lab/reset
    GET  /_lab/wait       ?after=<version>&timeout=<seconds, at most 30>
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.slack.actions import ActionError
from lab.slack.workspace import NotFound

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _json(emu: SlackEmulator, body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({**body, "version": emu.version}, status=status)


def _error(emu: SlackEmulator, status: int, error: str, detail: str) -> web.Response:
    return _json(emu, {"ok": False, "error": error, "detail": detail}, status)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    text = await request.text()
    if not text.strip():
        return {}
    if request.content_type == "application/json" or text.lstrip().startswith("{"):
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body
    return dict(await request.post())


def setup(app: web.Application, emu: SlackEmulator) -> None:
    def guarded(fn: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            try:
                return _json(emu, {"ok": True, **await fn(request)})
            except ActionError as e:
                return _error(emu, e.status, e.error, e.detail)
            except NotFound as e:
                return _error(emu, 404, e.error, e.detail)
            except (ValueError, TypeError, KeyError) as e:
                return _error(emu, 400, "invalid_arguments", f"{type(e).__name__}: {e}")
        return handler

    async def index(request: web.Request) -> dict[str, Any]:
        return emu.describe()

    async def say(request: web.Request) -> dict[str, Any]:
        b = await _body(request)
        return emu.say(b.get("user"), b.get("channel"), b.get("text", ""), b.get("thread_ts"))

    async def click(request: web.Request) -> dict[str, Any]:
        b = await _body(request)
        return await emu.click_and_settle(b.get("user"), b.get("channel"), b.get("ts"), b.get("action_id"),
                                          b.get("value"), b.get("block_id"))

    async def clicks(request: web.Request) -> dict[str, Any]:
        return {"clicks": list(emu.clicks)}

    async def messages(request: web.Request) -> dict[str, Any]:
        q = request.query
        return {"messages": emu.messages_view(q.get("channel"), q.get("thread_ts"),
                                              _flag(q.get("include_deleted")))}

    async def files(request: web.Request) -> dict[str, Any]:
        q = request.query
        return {"files": emu.files_view(q.get("channel"), q.get("thread_ts"))}

    async def calls(request: web.Request) -> dict[str, Any]:
        q = request.query
        return {"calls": emu.calls_view(q.get("method"), int(q.get("since", 0)))}

    async def deliveries(request: web.Request) -> dict[str, Any]:
        q = request.query
        ids = [i for i in q.get("ids", "").split(",") if i]
        return {"deliveries": emu.deliveries_view(q.get("state"), ids),
                "unknown_acks": list(emu.deliveries.unknown_acks)}

    async def connections(request: web.Request) -> dict[str, Any]:
        return {"connections": emu.socket.describe()}

    async def disconnect(request: web.Request) -> dict[str, Any]:
        b = await _body(request)
        grace = b.get("grace")
        ids = await emu.disconnect(b.get("reason", "refresh_requested"), b.get("connection_id"),
                                   None if grace is None else float(grace))
        return {"disconnected": ids}

    async def config(request: web.Request) -> dict[str, Any]:
        return emu.configure(**await _body(request))

    async def verify_url(request: web.Request) -> dict[str, Any]:
        result = await emu.verify_url()
        return {"verified": result.pop("ok"), **result}

    async def reset(request: web.Request) -> dict[str, Any]:
        emu.reset()
        return {}

    async def wait(request: web.Request) -> web.Response:
        after = int(request.query.get("after", emu.version))
        timeout = min(30.0, float(request.query.get("timeout", 10)))
        await emu.wait_changed(timeout, after)
        return _json(emu, {"ok": True, "changed": emu.version > after})

    app.router.add_get("/_lab/", guarded(index))
    app.router.add_get("/_lab", guarded(index))
    app.router.add_post("/_lab/say", guarded(say))
    app.router.add_post("/_lab/click", guarded(click))
    app.router.add_get("/_lab/clicks", guarded(clicks))
    app.router.add_get("/_lab/messages", guarded(messages))
    app.router.add_get("/_lab/files", guarded(files))
    app.router.add_get("/_lab/calls", guarded(calls))
    app.router.add_get("/_lab/deliveries", guarded(deliveries))
    app.router.add_get("/_lab/connections", guarded(connections))
    app.router.add_post("/_lab/disconnect", guarded(disconnect))
    app.router.add_post("/_lab/config", guarded(config))
    app.router.add_post("/_lab/verify_url", guarded(verify_url))
    app.router.add_post("/_lab/reset", guarded(reset))
    app.router.add_get("/_lab/wait", wait)
