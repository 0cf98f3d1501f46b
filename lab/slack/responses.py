"""`response_url`s and the app's immediate answers to slash commands.

A slash command or block action carries a response_url that the emulator serves. POSTing JSON
to it (`text`, `blocks`, `response_type` ephemeral|in_channel, `replace_original`,
`delete_original`, `thread_ts`) posts or replaces a message like Slack does. Each URL works
`uses` times (5) within `ttl` seconds (30 minutes); after that it answers 404 `used_url` or
`expired_url`.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.slack import blocks as bk
from lab.slack.workspace import NotFound

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator


@dataclass
class ResponseUrl:
    key: str
    kind: str  # commands | actions
    channel: str
    user: str
    message_ts: str | None  # the message the button was on (actions)
    is_ephemeral: bool
    created: float
    uses: int = 0


class AnswerError(ValueError):
    pass


class ResponseUrls:
    def __init__(self, emu: SlackEmulator) -> None:
        self.emu = emu
        self.urls: dict[str, ResponseUrl] = {}
        self._ids = itertools.count(1000)

    def create(self, kind: str, *, channel: str, user: str, message_ts: str | None = None,
               is_ephemeral: bool = False) -> str:
        key = f"{self.emu.workspace.team_id}/{next(self._ids)}/{secrets.token_hex(12)}"
        self.urls[key] = ResponseUrl(key, kind, channel, user, message_ts, is_ephemeral, time.monotonic())
        return f"{self.emu.base_url}/{kind}/{key}"

    def find(self, url: str) -> ResponseUrl | None:
        _, _, path = url.partition(self.emu.base_url + "/")
        kind, _, key = path.partition("/")
        found = self.urls.get(key)
        return found if found is not None and found.kind == kind else None

    async def handle(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['team']}/{request.match_info['n']}/{request.match_info['secret']}"
        url = self.urls.get(key)
        if url is None or url.kind != request.match_info["kind"]:
            return web.Response(status=404, text="invalid_url")
        if time.monotonic() - url.created > self.emu.settings.response_url_ttl:
            return web.Response(status=404, text="expired_url")
        if url.uses >= self.emu.settings.response_url_uses:
            return web.Response(status=404, text="used_url")
        try:
            body = json.loads(await request.text())
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        try:
            self.answer(url, body, source="response_url")
        except AnswerError as e:
            return web.Response(status=400, text=str(e))
        except NotFound as e:
            return web.Response(status=404, text=e.error)
        url.uses += 1
        self.emu.changed()
        return web.Response(text="ok")

    def answer(self, url: ResponseUrl, body: dict[str, Any], *, source: str) -> None:
        """Apply a response_url body or an immediate answer (ack payload, HTTP response body)."""
        ws = self.emu.workspace
        channel = ws.channel(url.channel)
        if url.kind == "actions" and url.message_ts and body.get("delete_original"):
            msg = ws.message(channel.id, url.message_ts, viewer=url.user)
            msg.deleted = True
            return
        blocks = body.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        text = body.get("text")
        if not text and not blocks:
            raise AnswerError("no_text")
        if blocks is not None:
            errors = bk.validate(blocks)
            if errors:
                raise AnswerError("invalid_blocks: " + "; ".join(errors))
            blocks = bk.normalise(blocks)
        if url.kind == "actions" and url.message_ts and body.get("replace_original"):
            msg = ws.message(channel.id, url.message_ts, viewer=url.user)
            ws.update(msg, text=text or "", blocks=blocks if blocks is not None else [], source=source)
            return
        in_channel = body.get("response_type") == "in_channel"
        self.emu.post_message(channel, ws.bot_user_id, text or "", blocks, thread_ts=body.get("thread_ts"),
                              bot=True, ephemeral_to=None if in_channel else url.user, source=source)

    def clear(self) -> None:
        self.urls.clear()
