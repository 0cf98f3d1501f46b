"""The Slack app: slack-bolt listeners that ack and hand messages and clicks to the handlers.

Every listener acks at once; the work runs in the handler processes (bot/chat/handling.py), so Slack
never waits more than its 3 seconds. A re-delivered event (Slack retries when an ack is late)
is recognised by its id and dropped, so a retry never creates a second job.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Ack, App

from bot.chat.config import Settings
from bot.chat.handling import Request
from bot.chat.slack_chat import web_client
from bot.chat.threads import started_pool

LISTENER_THREADS = 16
SOCKET_MODE_THREADS = 16  # slack_sdk's pool that hands each envelope to bolt


def build_app(settings: Settings, submit: Callable[[Request], None]) -> App:
    """The bolt app: every listener acks at once and hands the request to `submit` (the handler
    processes), so Slack never waits for the work."""
    slack = settings.slack
    client = web_client(slack.bot_token.get_secret_value(), slack.base_url)
    signing_secret = slack.signing_secret.get_secret_value() if slack.signing_secret else None
    # Click and slash-command listeners ack from bolt's listener pool (5 threads by default), so a
    # burst of clicks must not wait for a free thread there.
    app = App(client=client, signing_secret=signing_secret, listener_executor=started_pool(LISTENER_THREADS, "bolt"),
              request_verification_enabled=slack.mode == "http", token_verification_enabled=False)

    def on_text(body: dict, event: dict) -> None:
        submit(Request("message", body.get("event_id") or f"{event['channel']}:{event['ts']}", event["user"],
                       event["channel"], event.get("text", ""), thread_ts=event.get("thread_ts") or event["ts"]))

    @app.event("app_mention")
    def mention(body: dict, event: dict) -> None:
        on_text(body, event)

    @app.event("message")
    def direct_message(body: dict, event: dict) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return  # channel chatter, our own posts and edits are not commands
        on_text(body, event)

    @app.command("/kubemaint")
    def slash(ack: Ack, command: dict) -> None:
        ack()
        submit(Request("command", f"command:{command.get('trigger_id')}", command["user_id"], command["channel_id"],
                       command.get("text", "")))

    @app.action("approve")
    @app.action("deny")
    def click(ack: Ack, body: dict, action: dict) -> None:
        ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        message = body.get("message") or {}
        submit(Request("click", f"action:{user}:{action.get('action_ts')}", user, channel,
                       action_id=action["action_id"], value=action.get("value", ""),
                       message_ts=message.get("ts") or (body.get("container") or {}).get("message_ts", ""),
                       message_text=message.get("text", "")))

    return app
