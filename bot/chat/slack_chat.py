"""The bot's Slack calls, through slack_sdk's WebClient. The bot's handlers send through the outbox
(bot/chat/outbox.py); its sender makes these calls."""

from __future__ import annotations

import threading
import time

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.chat.metrics import SlackCounter

GROUP_CACHE_SECONDS = 60.0


def web_client(token: str, base_url: str | None, *, retry_rate_limited: bool = True) -> WebClient:
    """A Web API client. `retry_rate_limited`: the SDK waits out a 429's Retry-After and tries again
    (for the few calls made directly); the outbox sender handles 429s itself, queue-wide."""
    client = WebClient(token=token, base_url=base_url or WebClient.BASE_URL)
    client.retry_handlers.insert(0, SlackCounter())  # first: it counts every attempt, and never retries
    if retry_rate_limited:
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=5))
    return client


class SlackChat:
    def __init__(self, client: WebClient, group_ids: list[str]) -> None:
        self.client = client
        self.group_ids = group_ids
        self._members: dict[str, set[str]] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def post(self, channel: str, text: str, *, thread_ts: str | None = None, blocks: list | None = None) -> str:
        response = self.client.chat_postMessage(channel=channel, text=text, thread_ts=thread_ts, blocks=blocks)
        return response["ts"]

    def update(self, channel: str, ts: str, text: str, *, blocks: list | None = None) -> None:
        # Without blocks=[] an edit would keep the old card's buttons.
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks if blocks is not None else [])

    def ephemeral(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> None:
        self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)

    def upload(self, channel: str, filename: str, title: str, content: str, *, thread_ts: str | None = None) -> None:
        # files_upload_v2: files.getUploadURLExternal, the upload itself, files.completeUploadExternal.
        self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, filename=filename, title=title,
                                    content=content)

    def groups_of(self, user: str) -> list[str]:
        """The configured user groups this user is in (memberships cached for a minute)."""
        if not self.group_ids:
            return []
        with self._lock:
            if time.monotonic() - self._fetched_at > GROUP_CACHE_SECONDS:
                self._members = {
                    group: set(self.client.usergroups_users_list(usergroup=group).get("users") or [])
                    for group in self.group_ids
                }
                self._fetched_at = time.monotonic()
            return [group for group, members in self._members.items() if user in members]
