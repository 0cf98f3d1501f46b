"""The Slack app: slack-bolt listeners that hand messages and clicks to the service.

Every listener acks at once; the work runs afterwards (bolt's thread pool), so Slack never
waits more than its 3 seconds. A re-delivered event (Slack retries when an ack is late)
is recognised by its id and dropped, so a retry never creates a second job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from redis import Redis
from slack_bolt import Ack, App

from bot.audit import audit
from bot.config import Settings
from bot.service import Kubemaint, Message
from bot.slack_chat import SlackChat, web_client
from bot.threads import started_pool

log = structlog.get_logger("kubemaint.app")
DELIVERY_TTL = 3600
WORK_THREADS = 32
LISTENER_THREADS = 16
SOCKET_MODE_THREADS = 16  # slack_sdk's pool that hands each envelope to bolt


def first_delivery(redis: Redis, key: str) -> bool:
    return bool(redis.set(f"kubemaint:delivery:{key}", "1", nx=True, ex=DELIVERY_TTL))


def group_ids(settings: Settings) -> list[str]:
    roles = settings.roles
    return sorted({g for g in (*roles.viewers, *roles.operators, *roles.approvers) if g.startswith("S")})


def build_app(settings: Settings, redis: Redis, kube_client: Callable) -> tuple[App, Kubemaint]:
    slack = settings.slack
    client = web_client(slack.bot_token.get_secret_value(), slack.base_url)
    signing_secret = slack.signing_secret.get_secret_value() if slack.signing_secret else None
    # Click and slash-command listeners ack from bolt's listener pool (5 threads by default), so a
    # burst of clicks must not wait for a free thread there.
    app = App(client=client, signing_secret=signing_secret, listener_executor=started_pool(LISTENER_THREADS, "bolt"),
              request_verification_enabled=slack.mode == "http", token_verification_enabled=False)
    service = Kubemaint(settings, redis, kube_client, SlackChat(client, group_ids(settings)))
    # Listeners only ack and hand over: slow work (cluster reads, Slack calls that wait out a
    # rate limit) runs here, so bolt's own threads are always free to ack within Slack's 3 s.
    pool = started_pool(WORK_THREADS, "kubemaint-work")

    def work_safely(key: str, work: Callable[[], None]) -> None:
        if not first_delivery(redis, key):
            audit(redis, "delivery.duplicate", key=key)
            return
        try:
            work()
        except Exception as error:  # the log has the details; the audit trail has the fact
            log.exception("handler.error", key=key)
            audit(redis, "handler.error", key=key, error=str(error)[:300])

    def run(key: str, work: Callable[[], None]) -> None:
        pool.submit(work_safely, key, work)

    def on_text(user: str, channel: str, thread_ts: str | None, text: str, key: str) -> None:
        run(key, lambda: service.handle_message(Message(user, channel, thread_ts, text)))

    @app.event("app_mention")
    def mention(body: dict, event: dict) -> None:
        on_text(event["user"], event["channel"], event.get("thread_ts") or event["ts"], event.get("text", ""),
                body.get("event_id") or f"{event['channel']}:{event['ts']}")

    @app.event("message")
    def direct_message(body: dict, event: dict) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return  # channel chatter, our own posts and edits are not commands
        on_text(event["user"], event["channel"], event.get("thread_ts") or event["ts"], event.get("text", ""),
                body.get("event_id") or f"{event['channel']}:{event['ts']}")

    @app.command("/kubemaint")
    def slash(ack: Ack, command: dict) -> None:
        ack()
        text = command.get("text", "")

        def work() -> None:
            # A slash command leaves no message to reply under, so start the thread ourselves.
            ts = service.chat.post(command["channel_id"], f"<@{command['user_id']}>: `/kubemaint {text}`")
            service.handle_message(Message(command["user_id"], command["channel_id"], ts, text))

        run(f"command:{command.get('trigger_id')}", work)

    @app.action("approve")
    @app.action("deny")
    def click(ack: Ack, body: dict, action: dict) -> None:
        ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        run(f"action:{user}:{action.get('action_ts')}",
            lambda: service.handle_click(user, channel, action["action_id"], action.get("value", "")))

    return app, service


def start_background(service: Kubemaint, redis: Redis, settings: Settings, stop: threading.Event) -> threading.Thread:
    """The progress publisher (and approval expiry), beside the Slack listeners."""
    from bot.progress import ProgressPublisher
    from bot.throttle import EditThrottle

    throttle = EditThrottle(per_job_interval=settings.progress.edit_interval_seconds,
                            per_minute=settings.progress.updates_per_minute)
    publisher = ProgressPublisher(redis, service.chat, throttle)
    thread = threading.Thread(target=publisher.run, args=(stop,), kwargs={"idle": service.expire_requests},
                              name="progress", daemon=True)
    thread.start()
    return thread
