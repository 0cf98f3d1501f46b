"""File uploads the way Slack takes them now (`files.upload` is retired): three steps, which is
what slack_sdk's `files_upload_v2` calls.

1. `files.getUploadURLExternal` (`filename`, `length`) answers a `file_id` and an `upload_url`;
2. the bytes are POSTed to that URL (on Slack, files.slack.com; here, this server's /upload/v1/);
3. `files.completeUploadExternal` (`files` = JSON `[{"id", "title"}]`, `channel_id`, `thread_ts`,
   `initial_comment`) shares them: a message from the bot in the channel (or thread) carrying the
   files, as Slack shows it.

A file that was never uploaded, or is completed twice, is refused; the control API lists what was
shared (`GET /_lab/files?channel=&thread_ts=`), contents included.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.slack.webapi import ApiError, _writable, method

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator

MAX_FILE_BYTES = 1024 * 1024 * 1024  # Slack's own limit is 1 GB


@dataclass
class File:
    id: str
    filename: str
    length: int  # as announced in step 1
    token: str  # the secret part of the upload URL
    content: bytes | None = None  # None until step 2
    title: str = ""
    channel: str | None = None  # set by step 3
    thread_ts: str | None = None
    message_ts: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def slack(self) -> dict[str, Any]:
        """The file object as the Web API shows it (the fields a client reads)."""
        return {"id": self.id, "created": self.created, "timestamp": self.created, "name": self.filename,
                "title": self.title or self.filename, "mimetype": "text/plain", "filetype": "text",
                "pretty_type": "Plain Text", "size": len(self.content or b""), "mode": "snippet",
                "is_external": False, "is_public": True, "url_private": f"https://files.lab/{self.id}/{self.filename}",
                "channels": [self.channel] if self.channel else []}

    def lab(self) -> dict[str, Any]:
        return {**self.slack(), "channel": self.channel, "thread_ts": self.thread_ts,
                "message_ts": self.message_ts, "content": (self.content or b"").decode("utf-8", "replace")}


def _files(emu: SlackEmulator) -> dict[str, File]:
    return emu.workspace.files


@method("files.getUploadURLExternal")
def get_upload_url_external(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    filename = str(args.get("filename") or "")
    try:
        length = int(args.get("length"))
    except (TypeError, ValueError):
        raise ApiError("invalid_arguments", detail="length must be the file's size in bytes") from None
    if not filename or length < 1:
        raise ApiError("invalid_arguments", detail="filename and a length above 0 are required")
    if length > MAX_FILE_BYTES:
        raise ApiError("file_too_large")
    file = File(id="F" + secrets.token_hex(5).upper(), filename=filename, length=length, token=secrets.token_hex(12))
    _files(emu)[file.id] = file
    return {"upload_url": f"{emu.base_url}/upload/v1/{file.token}", "file_id": file.id}


async def upload(emu: SlackEmulator, request: web.Request) -> web.Response:
    """Step 2: the bytes, POSTed raw (or as a form's `file`) to the URL step 1 gave."""
    token = request.match_info["token"]
    file = next((f for f in _files(emu).values() if f.token == token), None)
    if file is None or file.channel is not None:
        return web.Response(status=404, text="Not Found")
    if request.content_type == "multipart/form-data":
        form = await request.post()
        part = form.get("file")
        data = part.file.read() if hasattr(part, "file") else str(part or "").encode()
    else:
        data = await request.read()
    file.content = data
    emu.changed()
    return web.Response(status=200, text=f"OK - {len(data)}")


@method("files.completeUploadExternal")
def complete_upload_external(emu: SlackEmulator, args: dict[str, Any]) -> dict[str, Any]:
    try:
        wanted = json.loads(args["files"]) if isinstance(args.get("files"), str) else args.get("files")
    except ValueError:
        raise ApiError("invalid_arguments", detail="files must be a JSON array") from None
    if not isinstance(wanted, list) or not wanted or not all(isinstance(f, dict) and f.get("id") for f in wanted):
        raise ApiError("invalid_arguments", detail='files must be [{"id": ..., "title": ...}]')
    files = []
    for item in wanted:
        file = _files(emu).get(str(item["id"]))
        if file is None or file.content is None or file.channel is not None:
            raise ApiError("file_not_found", detail=f"{item['id']} was not uploaded, or was already completed")
        files.append((file, str(item.get("title") or file.filename)))
    channel_ref = args.get("channel_id") or args.get("channels")
    if not channel_ref:  # Slack keeps such a file private to the uploader; the lab has nobody to show it to
        for file, title in files:
            file.title, file.channel = title, ""
        return {"files": [file.slack() for file, _ in files]}
    channel = _writable(emu, {"channel": str(channel_ref).split(",")[0]})
    thread_ts = args.get("thread_ts") or None
    if thread_ts:
        try:
            emu.workspace.message(channel.id, str(thread_ts))
        except LookupError:
            raise ApiError("invalid_thread_ts") from None
    for file, title in files:
        file.title, file.channel, file.thread_ts = title, channel.id, thread_ts
    msg = emu.post_message(channel, emu.workspace.bot_user_id, str(args.get("initial_comment") or ""), None,
                           thread_ts=thread_ts, bot=True, source="files.completeUploadExternal")
    msg.files = [file.id for file, _ in files]
    for file, _ in files:
        file.message_ts = msg.ts
    emu.changed()
    return {"files": [file.slack() for file, _ in files]}


def files_view(emu: SlackEmulator, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
    """The files shared so far (in `channel`, in the thread `thread_ts`), oldest first."""
    cid = emu.workspace.channel(channel).id if channel else None
    return [f.lab() for f in _files(emu).values()
            if f.channel and (cid is None or f.channel == cid) and (thread_ts is None or f.thread_ts == thread_ts)]
