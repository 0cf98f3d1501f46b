"""What people do in the workspace, turned into Slack's payloads: say (a message or a slash
command) and click (a button). Also the events for messages the app itself posts.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from lab.slack import blocks as bk
from lab.slack.delivery import EVENTS_API, INTERACTIVE, SLASH_COMMANDS
from lab.slack.workspace import Channel, Message, NotFound

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator


class ActionError(ValueError):
    """A control request that cannot happen: `.status` (400/404/409), `.error` and a readable detail."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _event_id() -> str:
    return "Ev" + secrets.token_hex(5).upper()


def trigger_id() -> str:
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def _rich_text(text: str) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    for part in re.split(r"(<@[UW][A-Z0-9]+(?:\|[^>]*)?>)", text):
        if not part:
            continue
        m = re.fullmatch(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>", part)
        elements.append({"type": "user", "user_id": m.group(1)} if m else {"type": "text", "text": part})
    return [{"type": "rich_text", "block_id": secrets.token_hex(3),
             "elements": [{"type": "rich_text_section", "elements": elements}]}]


def _mentions(emu: SlackEmulator, text: str) -> str:
    """`@kubemaint` and `@alice` as a Slack client sends them: `<@U0BOT>`, `<@U0ALICE>`."""
    names = {u["name"]: uid for uid, u in emu.workspace.users.items()}

    def repl(m: re.Match) -> str:
        uid = names.get(m.group(1))
        return f"<@{uid}>" if uid else m.group(0)

    return re.sub(r"(?<![\w<@])@([a-z0-9][a-z0-9._-]*)", repl, text)


def event_callback(emu: SlackEmulator, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    ws = emu.workspace
    event_id = _event_id()
    payload = {
        "token": emu.settings.verification_token, "team_id": ws.team_id, "context_team_id": ws.team_id,
        "context_enterprise_id": None, "api_app_id": ws.app_id, "event": event, "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": ws.team_id, "user_id": ws.bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": "4-" + secrets.token_urlsafe(24),
    }
    return payload, event_id


def message_events(emu: SlackEmulator, msg: Message, channel: Channel) -> list[dict[str, Any]]:
    """The events Slack sends the app for a new message, given the app's event subscriptions."""
    ws, subs = emu.workspace, emu.settings.events
    if msg.ephemeral_to or ws.bot_user_id not in channel.members:
        return []
    human = msg.bot_id is None
    base: dict[str, Any] = {"user": msg.user, "text": msg.text, "ts": msg.ts, "channel": channel.id,
                            "event_ts": msg.ts, "team": ws.team_id}
    if msg.blocks is not None:
        base["blocks"] = msg.blocks
    if human:
        base["client_msg_id"] = str(uuid.uuid4())
    else:
        base.update(msg.slack(ws.team_id))
        base.update({"channel": channel.id, "event_ts": msg.ts})
    if msg.thread_ts:
        base["thread_ts"] = msg.thread_ts
        parent = ws.message(channel.id, msg.thread_ts)
        base["parent_user_id"] = parent.user
    out = []
    if human and not channel.is_im and "app_mention" in subs and ws.mentions_bot(msg.text):
        out.append({"type": "app_mention", **{k: v for k, v in base.items() if k != "parent_user_id"}})
    wanted = {"im": "message.im", "channel": "message.channels", "group": "message.groups"}[channel.channel_type]
    if wanted in subs and (human or emu.settings.echo_bot_messages):
        out.append({"type": "message", **base, "channel_type": channel.channel_type})
    return out


def deliver_message_events(emu: SlackEmulator, msg: Message, channel: Channel) -> list[dict[str, Any]]:
    started = []
    for event in message_events(emu, msg, channel):
        payload, event_id = event_callback(emu, event)
        d = emu.deliveries.start(EVENTS_API, payload, summary=f"{event['type']} {channel.id} {msg.ts}",
                                 mode=emu.mode, event_id=event_id, context={"channel": channel.id})
        started.append({"delivery_id": d.id, "event_id": event_id, "type": event["type"]})
    return started


def _member(emu: SlackEmulator, user: str | None, channel: str | None) -> tuple[dict[str, Any], Channel]:
    try:
        u = emu.workspace.user(user)
        c = emu.workspace.channel(channel)
    except NotFound as e:
        raise ActionError(404, e.error, e.detail) from None
    if u["is_bot"]:
        raise ActionError(400, "bot_user", f"{u['id']} is the bot; the app posts through the Web API")
    if u["id"] not in c.members:
        raise ActionError(400, "not_in_channel", f"{u['name']} ({u['id']}) is not a member of {c.id}")
    if c.is_archived:
        raise ActionError(400, "is_archived", f"{c.id} is archived")
    return u, c


def say(emu: SlackEmulator, user: str | None, channel: str | None, text: str,
        thread_ts: str | None = None) -> dict[str, Any]:
    """A person types `text` in a channel: a message and its events, or a slash command."""
    u, c = _member(emu, user, channel)
    text = text or ""
    if text.startswith("/"):
        command, _, rest = text.partition(" ")
        if command not in emu.settings.slash_commands:
            raise ActionError(400, "unknown_command", f"{command} is not a valid command")
        return _slash(emu, u, c, command, rest.strip())
    if not text.strip():
        raise ActionError(400, "no_text", "say needs some text")
    text = _mentions(emu, text)
    if thread_ts:
        try:
            emu.workspace.message(c.id, thread_ts)
        except NotFound as e:
            raise ActionError(404, "thread_not_found", e.detail) from None
    msg = emu.post_message(c, u["id"], text, _rich_text(text), thread_ts=thread_ts, source="say",
                           deliver=False)
    deliveries = deliver_message_events(emu, msg, c)
    return {"ok": True, "channel": c.id, "ts": msg.ts, "text": text, "deliveries": deliveries,
            "delivery_ids": [d["delivery_id"] for d in deliveries]}


def _slash(emu: SlackEmulator, u: dict[str, Any], c: Channel, command: str, text: str) -> dict[str, Any]:
    ws = emu.workspace
    response_url = emu.response_urls.create("commands", channel=c.id, user=u["id"])
    payload = {
        "token": emu.settings.verification_token, "team_id": ws.team_id, "team_domain": ws.team_domain,
        "channel_id": c.id, "channel_name": "directmessage" if c.is_im else c.name, "user_id": u["id"],
        "user_name": u["name"], "command": command, "text": text, "api_app_id": ws.app_id,
        "is_enterprise_install": "false", "response_url": response_url, "trigger_id": trigger_id(),
    }
    d = emu.deliveries.start(SLASH_COMMANDS, payload, summary=f"{command} {text}".strip(), mode=emu.mode,
                             context={"channel": c.id, "user": u["id"], "response_url": response_url,
                                      "command": command})
    return {"ok": True, "channel": c.id, "command": command, "text": text, "response_url": response_url,
            "deliveries": [{"delivery_id": d.id, "type": "slash_commands"}], "delivery_ids": [d.id]}


def click(emu: SlackEmulator, user: str | None, channel: str | None, ts: str | None, action_id: str | None,
          value: str | None = None, block_id: str | None = None) -> dict[str, Any]:
    """A person clicks the button `action_id` on message `ts`: a block_actions interaction."""
    ws = emu.workspace
    u, c = _member(emu, user, channel)
    try:
        msg = ws.message(c.id, ts, viewer=u["id"])
    except NotFound as e:
        raise ActionError(404, "message_not_found", e.detail) from None
    found = bk.buttons(msg.blocks)
    matches = [(b, el) for b, el in found if el.get("action_id") == action_id
               and (block_id is None or b == block_id) and (value is None or el.get("value") == value)]
    if not matches:
        have = ", ".join(f"{el.get('action_id')}={el.get('value')!r}" for _, el in found) or "none"
        raise ActionError(404, "action_not_found",
                          f"message {msg.ts} in {c.id} has no button with action_id {action_id!r}"
                          + (f" and value {value!r}" if value is not None else "") + f" (buttons: {have})")
    if len(matches) > 1:
        raise ActionError(409, "ambiguous_action",
                          f"{len(matches)} buttons with action_id {action_id!r} on message {msg.ts}: "
                          "pass block_id or value")
    b_id, button = matches[0]
    action = {"action_id": button["action_id"], "block_id": b_id, "text": button.get("text"), "type": "button",
              "action_ts": f"{time.time():.6f}"}
    for key in ("value", "style"):
        if key in button:
            action[key] = button[key]
    response_url = emu.response_urls.create("actions", channel=c.id, user=u["id"], message_ts=msg.ts,
                                            is_ephemeral=msg.ephemeral_to is not None)
    container = {"type": "message", "message_ts": msg.ts, "channel_id": c.id,
                 "is_ephemeral": msg.ephemeral_to is not None}
    if msg.thread_ts:
        container["thread_ts"] = msg.thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": u["id"], "username": u["name"], "name": u["name"], "team_id": ws.team_id},
        "api_app_id": ws.app_id, "token": emu.settings.verification_token, "container": container,
        "trigger_id": trigger_id(), "team": {"id": ws.team_id, "domain": ws.team_domain},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": c.id, "name": "directmessage" if c.is_im else c.name},
        "state": {"values": {}}, "response_url": response_url, "actions": [action],
    }
    if msg.ephemeral_to is None:
        payload["message"] = msg.slack(ws.team_id)
    d = emu.deliveries.start(INTERACTIVE, payload, summary=f"block_actions {action['action_id']} on {msg.ts}",
                             mode=emu.mode, context={"channel": c.id, "user": u["id"],
                                                     "response_url": response_url})
    return {"ok": True, "channel": c.id, "ts": msg.ts, "action": action, "response_url": response_url,
            "deliveries": [{"delivery_id": d.id, "type": "block_actions"}], "delivery_ids": [d.id]}
