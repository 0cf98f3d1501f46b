"""The emulated workspace: users, channels, user groups and the messages in them.

Pure state, no I/O. Everything runs on the emulator's event loop thread.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TEAM_ID = "T0LAB"
TEAM_DOMAIN = "kubemaint-lab"
TEAM_NAME = "Kubemaint Lab"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
BOT_NAME = "kubemaint"
APP_ID = "A0LAB"
SLACKBOT_USER_ID = "USLACKBOT"

# The default workspace of the brief: one channel #ops, four people, two user groups, a DM each.
DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "U0ALICE": {"name": "alice", "real_name": "Alice", "title": "operator", "email": "alice@kubemaint.lab"},
    "U0BOB": {"name": "bob", "real_name": "Bob", "title": "approver", "email": "bob@kubemaint.lab"},
    "U0CAROL": {"name": "carol", "real_name": "Carol", "title": "approver", "email": "carol@kubemaint.lab"},
    "U0VIC": {"name": "victor", "real_name": "Victor", "title": "viewer", "email": "victor@kubemaint.lab"},
}
DEFAULT_CHANNELS: dict[str, dict[str, Any]] = {"C0OPS": {"name": "ops"}}
DEFAULT_USERGROUPS: dict[str, dict[str, Any]] = {
    "S0OPERATORS": {"handle": "operators", "name": "Operators", "users": ["U0ALICE"]},
    "S0APPROVERS": {"handle": "approvers", "name": "Approvers", "users": ["U0BOB", "U0CAROL"]},
}


class NotFound(LookupError):
    """A user, channel or message that does not exist; `.error` is Slack's error code."""

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(detail or error)
        self.error = error
        self.detail = detail or error


def dm_channel_id(user_id: str) -> str:
    """The DM between a user and the bot: U0ALICE -> D0ALICE."""
    return "D" + user_id[1:]


@dataclass
class Channel:
    id: str
    name: str
    members: set[str]
    is_im: bool = False
    is_private: bool = False
    is_archived: bool = False
    im_user: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def channel_type(self) -> str:
        """`channel_type` of message events: im, channel or group."""
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    def info(self, viewer: str = BOT_USER_ID) -> dict[str, Any]:
        if self.is_im:
            return {"id": self.id, "created": self.created, "is_im": True, "is_org_shared": False,
                    "user": self.im_user, "is_user_deleted": False, "is_archived": False, "is_open": True,
                    "priority": 0}
        empty = {"value": "", "creator": "", "last_set": 0}
        return {
            "id": self.id, "name": self.name, "name_normalized": self.name, "created": self.created,
            "creator": "", "is_channel": not self.is_private, "is_group": self.is_private, "is_im": False,
            "is_mpim": False, "is_private": self.is_private, "is_archived": self.is_archived,
            "is_general": False, "is_shared": False, "is_org_shared": False, "is_ext_shared": False,
            "is_member": viewer in self.members, "num_members": len(self.members),
            "topic": dict(empty), "purpose": dict(empty), "context_team_id": TEAM_ID,
        }


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    ephemeral_to: str | None = None
    metadata: dict[str, Any] | None = None
    source: str = ""
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    reply_users: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None
    files: list[str] = field(default_factory=list)  # ids of the files it shares (lab/slack/files.py)

    def slack(self, team_id: str = TEAM_ID) -> dict[str, Any]:
        """The message object as the Web API and interaction payloads show it."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts,
                               "team": team_id}
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
            out["bot_profile"] = {"id": self.bot_id, "app_id": self.app_id, "name": BOT_NAME,
                                  "deleted": False, "team_id": team_id}
        if self.blocks is not None:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.replies:
            out["thread_ts"] = self.ts
            out["reply_count"] = len(self.replies)
            out["reply_users_count"] = len(self.reply_users)
            out["reply_users"] = list(self.reply_users)
            out["latest_reply"] = self.replies[-1]
        if self.updated_at is not None:
            out["edited"] = {"user": self.user, "ts": f"{self.updated_at:.6f}"}
        if self.metadata:
            out["metadata"] = copy.deepcopy(self.metadata)
        if self.files:
            out["files"] = [{"id": file_id} for file_id in self.files]
            out["upload"] = True
        return out

    def lab(self) -> dict[str, Any]:
        """The message as GET /_lab/messages shows it: Slack's fields plus the emulator's record."""
        return {
            "channel": self.channel, "ts": self.ts, "user": self.user, "text": self.text,
            "blocks": copy.deepcopy(self.blocks), "thread_ts": self.thread_ts,
            "reply_count": len(self.replies), "bot_id": self.bot_id, "ephemeral_to": self.ephemeral_to,
            "deleted": self.deleted, "edits": len(self.history), "history": copy.deepcopy(self.history),
            "metadata": copy.deepcopy(self.metadata), "source": self.source,
            "created_at": self.created_at, "updated_at": self.updated_at, "files": list(self.files),
        }


def _user_record(user_id: str, spec: str | Mapping[str, Any]) -> dict[str, Any]:
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.get("name", user_id.lower())
    return {"id": user_id, "name": name, "real_name": spec.get("real_name", name.title()),
            "title": spec.get("title", ""), "email": spec.get("email", f"{name}@kubemaint.lab"),
            "is_bot": bool(spec.get("is_bot", False)), "deleted": bool(spec.get("deleted", False))}


class Workspace:
    def __init__(self, users: Mapping[str, Any] | None = None, channels: Mapping[str, Any] | None = None,
                 usergroups: Mapping[str, Any] | None = None, *, team_id: str = TEAM_ID,
                 team_domain: str = TEAM_DOMAIN, team_name: str = TEAM_NAME, bot_user_id: str = BOT_USER_ID,
                 bot_id: str = BOT_ID, app_id: str = APP_ID) -> None:
        self.team_id, self.team_domain, self.team_name = team_id, team_domain, team_name
        self.bot_user_id, self.bot_id, self.app_id = bot_user_id, bot_id, app_id
        self.users: dict[str, dict[str, Any]] = {
            uid: _user_record(uid, spec) for uid, spec in (DEFAULT_USERS if users is None else users).items()}
        self.users[bot_user_id] = {"id": bot_user_id, "name": BOT_NAME, "real_name": BOT_NAME, "title": "",
                                   "email": "", "is_bot": True, "deleted": False}
        humans = [uid for uid, u in self.users.items() if not u["is_bot"]]
        self.channels: dict[str, Channel] = {}
        for cid, spec in (DEFAULT_CHANNELS if channels is None else channels).items():
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            members = set(spec.get("members", humans))
            if spec.get("bot_member", True):
                members.add(bot_user_id)
            self.channels[cid] = Channel(cid, spec.get("name", cid.lower()), members,
                                         is_private=bool(spec.get("is_private", False)),
                                         is_archived=bool(spec.get("is_archived", False)))
        for uid in humans:
            did = dm_channel_id(uid)
            self.channels[did] = Channel(did, did, {uid, bot_user_id}, is_im=True, im_user=uid)
        self.usergroups: dict[str, dict[str, Any]] = {}
        for gid, spec in (DEFAULT_USERGROUPS if usergroups is None else usergroups).items():
            spec = {"users": list(spec)} if not isinstance(spec, Mapping) else dict(spec)
            handle = spec.get("handle", gid.lower())
            self.usergroups[gid] = {"id": gid, "handle": handle, "name": spec.get("name", handle),
                                    "users": list(spec.get("users", []))}
        self.messages: dict[str, list[Message]] = {cid: [] for cid in self.channels}
        self._by_ts: dict[tuple[str, str], Message] = {}
        self.files: dict[str, Any] = {}  # id -> lab/slack/files.py File
        self._last_us = 0

    # -- ids and lookups -------------------------------------------------------------------------

    def next_ts(self) -> str:
        """A message timestamp: epoch seconds with six decimals, unique and increasing."""
        us = max(int(time.time() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def user(self, ref: str | None) -> dict[str, Any]:
        """A user by id, name or @name."""
        if ref:
            ref = ref.lstrip("@")
            if ref in self.users:
                return self.users[ref]
            for u in self.users.values():
                if u["name"] == ref:
                    return u
        raise NotFound("user_not_found", f"no user {ref!r}")

    def channel(self, ref: str | None) -> Channel:
        """A conversation by id, name or #name; a user id or @name means the DM with that user."""
        if ref:
            if ref in self.channels:
                return self.channels[ref]
            name = ref.lstrip("#")
            for c in self.channels.values():
                if not c.is_im and c.name == name:
                    return c
            if ref.startswith(("U", "W", "@")):
                try:
                    uid = self.user(ref)["id"]
                except NotFound:
                    pass
                else:
                    if dm_channel_id(uid) in self.channels:
                        return self.channels[dm_channel_id(uid)]
        raise NotFound("channel_not_found", f"no channel {ref!r}")

    def message(self, channel: str, ts: str | None, *, viewer: str | None = None) -> Message:
        msg = self._by_ts.get((channel, ts or ""))
        if msg is None or msg.deleted or (msg.ephemeral_to and msg.ephemeral_to != viewer):
            raise NotFound("message_not_found", f"no message {ts!r} in {channel}")
        return msg

    def user_profile(self, user_id: str) -> dict[str, Any]:
        u = self.users[user_id]
        profile = {"real_name": u["real_name"], "real_name_normalized": u["real_name"],
                   "display_name": u["name"], "display_name_normalized": u["name"], "email": u["email"],
                   "title": u["title"], "team": self.team_id}
        if u["is_bot"]:
            profile["bot_id"] = self.bot_id
            profile.pop("email")
        return {"id": u["id"], "team_id": self.team_id, "name": u["name"], "deleted": u["deleted"],
                "color": "9f69e7", "real_name": u["real_name"], "tz": "Etc/UTC", "tz_label": "UTC",
                "tz_offset": 0, "profile": profile, "is_admin": False, "is_owner": False,
                "is_primary_owner": False, "is_restricted": False, "is_ultra_restricted": False,
                "is_bot": u["is_bot"], "is_app_user": False, "updated": int(time.time())}

    def mentions_bot(self, text: str) -> bool:
        return re.search(rf"<@{re.escape(self.bot_user_id)}(\|[^>]*)?>", text or "") is not None

    # -- changes ---------------------------------------------------------------------------------

    def post(self, channel: Channel, user: str, text: str = "", blocks: list[dict[str, Any]] | None = None, *,
             thread_ts: str | None = None, bot: bool = False, ephemeral_to: str | None = None,
             metadata: dict[str, Any] | None = None, source: str = "") -> Message:
        parent = None
        if thread_ts:
            parent = self.message(channel.id, thread_ts)
            if parent.thread_ts and parent.thread_ts != parent.ts:
                parent = self.message(channel.id, parent.thread_ts)  # a reply to a reply joins the thread
            thread_ts = parent.ts
        msg = Message(channel=channel.id, ts=self.next_ts(), user=user, text=text or "",
                      blocks=copy.deepcopy(blocks) if blocks is not None else None, thread_ts=thread_ts,
                      bot_id=self.bot_id if bot else None, app_id=self.app_id if bot else None,
                      ephemeral_to=ephemeral_to, metadata=metadata, source=source)
        self.messages.setdefault(channel.id, []).append(msg)
        self._by_ts[(channel.id, msg.ts)] = msg
        if parent is not None and ephemeral_to is None:
            parent.replies.append(msg.ts)
            if user not in parent.reply_users:
                parent.reply_users.append(user)
        return msg

    @staticmethod
    def update(msg: Message, *, text: str | None = None, blocks: list[dict[str, Any]] | None = None,
               metadata: dict[str, Any] | None = None, source: str = "") -> Message:
        msg.history.append({"text": msg.text, "blocks": copy.deepcopy(msg.blocks),
                            "at": msg.updated_at or msg.created_at, "source": msg.source})
        if text is not None:
            msg.text = text
        if blocks is not None:
            msg.blocks = copy.deepcopy(blocks)
        if metadata is not None:
            msg.metadata = metadata
        msg.updated_at = time.time()
        msg.source = source or msg.source
        return msg

    def listing(self, channel: str | None = None, thread_ts: str | None = None,
                include_deleted: bool = False) -> list[Message]:
        chans = [channel] if channel else list(self.messages)
        out = []
        for cid in chans:
            for m in self.messages.get(cid, []):
                if m.deleted and not include_deleted:
                    continue
                if thread_ts and m.ts != thread_ts and m.thread_ts != thread_ts:
                    continue
                out.append(m)
        return sorted(out, key=lambda m: m.ts) if channel is None else out

    def clear(self) -> None:
        self.messages = {cid: [] for cid in self.channels}
        self._by_ts.clear()
        self.files.clear()
