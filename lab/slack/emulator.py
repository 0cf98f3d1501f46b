"""The Slack emulator: one aiohttp server on 127.0.0.1 serving the Web API (/api/), Socket Mode
(/link/), response URLs (/commands/, /actions/) and the lab's control API (/_lab/).

    emu = SlackEmulator()            # the default workspace, Slack's timings and limits
    await emu.start(); ...; await emu.stop()

or, from synchronous code (tests, the demo):

    with EmulatorThread(ack_timeout=1.0) as emu:
        WebClient(token=emu.bot_token, base_url=emu.api_url)
        emu.client.say("alice", "C0OPS", "<@U0BOT> status")
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lab.slack import actions, clicks, control, files, webapi
from lab.slack.delivery import INTERACTIVE, SLASH_COMMANDS, Deliveries, Delivery, wait_event
from lab.slack.http_mode import HttpTransport
from lab.slack.ratelimit import RateLimit, RateLimiter
from lab.slack.responses import AnswerError, ResponseUrls
from lab.slack.socket_mode import SocketModeServer
from lab.slack.workspace import SLACKBOT_USER_ID, Channel, Message, NotFound, Workspace

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from lab.slack.client import SlackLabClient

MAX_CALLS = 20_000


@dataclass
class Settings:
    """What the emulator does; everything but the tokens can change at run time (POST /_lab/config)."""

    bot_token: str = "xoxb-0lab-0bot-kubemaintlabbottoken"
    app_token: str = "xapp-1-A0LAB-0-kubemaintlabapptoken"
    signing_secret: str = "kubemaint-lab-signing-secret"
    verification_token: str = "kubemaint-lab-verification-token"
    http_mode: bool = False
    request_url: str | None = None
    ack_timeout: float = 3.0
    max_retries: int = 3
    retry_delay: float = 0.0
    disconnect_grace: float = 10.0
    ping_interval: float = 10.0
    response_url_uses: int = 5
    response_url_ttl: float = 1800.0
    events: tuple[str, ...] = ("app_mention", "message.im")
    slash_commands: tuple[str, ...] = ("/kubemaint",)
    echo_bot_messages: bool = True
    # The next N acks arrive "after the deadline": Slack waits out ack_timeout and re-sends the event,
    # without the race a tiny ack_timeout has against a fast app.
    late_acks: int = 0

    RUNTIME = ("http_mode", "request_url", "ack_timeout", "max_retries", "retry_delay", "disconnect_grace",
               "ping_interval", "response_url_uses", "response_url_ttl", "events", "slash_commands",
               "echo_bot_messages", "late_acks")

    def public(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


class SlackEmulator:
    def __init__(self, users: Mapping[str, Any] | None = None, channels: Mapping[str, Any] | None = None,
                 usergroups: Mapping[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 rate_limits: Mapping[str, RateLimit | Mapping[str, Any] | None] | None = None,
                 team_id: str = "T0LAB", team_domain: str = "kubemaint-lab", bot_user_id: str = "U0BOT",
                 bot_id: str = "B0BOT", app_id: str = "A0LAB", **settings: Any) -> None:
        known = {f.name for f in fields(Settings)}
        unknown = set(settings) - known
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for key in ("events", "slash_commands"):
            if key in settings:
                settings[key] = tuple(settings[key])
        self.settings = Settings(**settings)
        self.workspace = Workspace(users, channels, usergroups, team_id=team_id, team_domain=team_domain,
                                   bot_user_id=bot_user_id, bot_id=bot_id, app_id=app_id)
        self.limiter = RateLimiter(rate_limits)
        self.host = host
        self.port = port
        self.calls: list[dict[str, Any]] = []
        self.clicks: list[dict[str, Any]] = []  # what each clicking user saw (lab/slack/clicks.py)
        self.version = 0
        self._changed = asyncio.Event()
        self._call_ids = 0
        self.socket = SocketModeServer(self)
        self.http = HttpTransport(self)
        self.response_urls = ResponseUrls(self)
        self.deliveries = Deliveries(transports={"socket": self.socket, "http": self.http},
                                     settings=self.settings, changed=self.changed, on_ack=self._on_ack,
                                     on_give_up=self._on_give_up)
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> SlackEmulator:
        app = web.Application(client_max_size=8 * 1024 * 1024)

        async def api(request: web.Request) -> web.Response:
            return await webapi.handle(self, request)

        async def upload(request: web.Request) -> web.Response:
            return await files.upload(self, request)

        app.router.add_route("*", "/api/{method}", api)
        app.router.add_post("/upload/v1/{token}", upload)
        app.router.add_get("/link/", self.socket.handle)
        app.router.add_get("/link", self.socket.handle)
        app.router.add_post("/{kind:commands|actions}/{team}/{n}/{secret}", self.response_urls.handle)
        control.setup(app, self)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await self.http.start()
        return self

    async def stop(self) -> None:
        await self.deliveries.close()
        await self.socket.close()
        await self.http.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What `WebClient(base_url=...)` wants: the base URL plus "/api/"."""
        return self.base_url + "/api/"

    @property
    def mode(self) -> str:
        return "http" if self.settings.http_mode else "socket"

    # -- change notification ---------------------------------------------------------------------

    def changed(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self, timeout: float, after: int | None = None) -> int:
        """Wait until the version passes `after` (default: the current one) or `timeout` runs out."""
        after = self.version if after is None else after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while self.version <= after:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await wait_event(self._changed, remaining)
        return self.version

    # -- used by the Web API and the control API -------------------------------------------------

    def token_kind(self, token: str) -> str | None:
        if token == self.settings.bot_token:
            return "bot"
        if token == self.settings.app_token:
            return "app"
        return None

    def record_call(self, entry: dict[str, Any]) -> None:
        self._call_ids += 1
        self.calls.append({"id": self._call_ids, **entry})
        if len(self.calls) > MAX_CALLS:
            del self.calls[: len(self.calls) - MAX_CALLS]
        self.changed()

    def post_message(self, channel: Channel, user: str, text: str = "", blocks: list[dict] | None = None, *,
                     thread_ts: str | None = None, bot: bool = False, ephemeral_to: str | None = None,
                     metadata: dict[str, Any] | None = None, source: str = "", deliver: bool = True) -> Message:
        """Store a message and (unless `deliver` is False) send the app the events Slack would."""
        msg = self.workspace.post(channel, user, text, blocks, thread_ts=thread_ts, bot=bot,
                                  ephemeral_to=ephemeral_to, metadata=metadata, source=source)
        if deliver:
            actions.deliver_message_events(self, msg, channel)
        self.changed()
        return msg

    def configure(self, *, rate_limits: Mapping[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
        """Change run-time settings and/or rate limits (a None limit removes it); returns the settings."""
        bad = set(changes) - set(Settings.RUNTIME)
        if bad:
            raise ValueError(f"cannot change {', '.join(sorted(bad))} at run time")
        for key, value in changes.items():
            if key in ("events", "slash_commands"):
                value = tuple(value)
            if key in ("late_acks", "max_retries") and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{key} must be a whole number >= 0, not {value!r}")
            setattr(self.settings, key, value)
        if rate_limits is not None:
            self.limiter.configure(rate_limits, replace=False)
        self.changed()
        return self.describe()

    def describe(self) -> dict[str, Any]:
        ws = self.workspace
        return {
            "base_url": self.base_url, "api_url": self.api_url, "mode": self.mode,
            "settings": self.settings.public(),
            "rate_limits": {m: lim.to_dict() for m, lim in self.limiter.limits.items()},
            "team": {"id": ws.team_id, "domain": ws.team_domain, "name": ws.team_name},
            "bot": {"user_id": ws.bot_user_id, "bot_id": ws.bot_id, "app_id": ws.app_id},
            "users": list(ws.users.values()),
            "channels": [{"id": c.id, "name": c.name, "is_im": c.is_im, "user": c.im_user,
                          "members": sorted(c.members)} for c in ws.channels.values()],
            "usergroups": list(ws.usergroups.values()),
        }

    def reset(self) -> None:
        """Forget messages, calls, deliveries and rate-limit state; connections stay."""
        self.workspace.clear()
        self.calls.clear()
        self.clicks.clear()
        self.deliveries.clear()
        self.response_urls.clear()
        self.socket.clear()
        self.limiter.reset()
        self.changed()

    # -- user actions ----------------------------------------------------------------------------

    def say(self, user: str, channel: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
        return actions.say(self, user, channel, text, thread_ts)

    def click(self, user: str, channel: str, ts: str, action_id: str, value: str | None = None,
              block_id: str | None = None) -> dict[str, Any]:
        """Start the click's delivery and return at once; `click_and_settle` also says what the user saw."""
        return actions.click(self, user, channel, ts, action_id, value, block_id)

    async def click_and_settle(self, user: str, channel: str, ts: str, action_id: str, value: str | None = None,
                               block_id: str | None = None) -> dict[str, Any]:
        """A click, answered once the app acked it or Slack gave up: `delivered`, `error`, `shown`."""
        return await clicks.settle(self, self.click(user, channel, ts, action_id, value, block_id))

    async def disconnect(self, reason: str = "refresh_requested", connection_id: str | None = None,
                         grace: float | None = None) -> list[str]:
        return await self.socket.disconnect(reason, connection_id, grace)

    async def verify_url(self) -> dict[str, Any]:
        """Slack's url_verification handshake against the request URL, as when the URL is saved."""
        challenge = actions.trigger_id().replace(".", "")
        payload = {"token": self.settings.verification_token, "challenge": challenge, "type": "url_verification"}
        try:
            status, body, _ = await self.http.post("events_api", payload, timeout=self.settings.ack_timeout)
        except Exception as e:  # reported to the caller
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        text = body.decode("utf-8", "replace")
        ok = status == 200 and challenge in text
        return {"ok": ok, "status": status, "body": text[:500], "challenge": challenge}

    # -- delivery outcomes -----------------------------------------------------------------------

    async def _on_ack(self, d: Delivery, payload: Any) -> None:
        """A slash command's immediate answer (ack payload or HTTP body) is shown like Slack shows it."""
        if d.kind != SLASH_COMMANDS or not isinstance(payload, dict) or not (payload.get("text")
                                                                               or payload.get("blocks")):
            return
        url = self.response_urls.find(d.context.get("response_url", ""))
        if url is None:
            return
        try:
            self.response_urls.answer(url, payload, source="ack")
        except (AnswerError, NotFound, ValueError) as e:
            d.context["answer_error"] = str(e)
        self.changed()

    async def _on_give_up(self, d: Delivery) -> None:
        if d.kind not in (SLASH_COMMANDS, INTERACTIVE):
            return
        channel = self.workspace.channels.get(d.context.get("channel", ""))
        user = d.context.get("user")
        if channel is None or user is None or d.kind != SLASH_COMMANDS:
            return  # a click the app missed shows a warning on the button instead (lab/slack/clicks.py)
        self.workspace.post(channel, SLACKBOT_USER_ID,
                            f'{d.context.get("command")} failed with the error "{d.failure}"',
                            ephemeral_to=user, source="slackbot")
        self.changed()

    # -- views for the control API ---------------------------------------------------------------

    def messages_view(self, channel: str | None = None, thread_ts: str | None = None,
                      include_deleted: bool = False) -> list[dict[str, Any]]:
        cid = self.workspace.channel(channel).id if channel else None
        return [m.lab() for m in self.workspace.listing(cid, thread_ts, include_deleted)]

    def files_view(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        return files.files_view(self, channel, thread_ts)

    def calls_view(self, method: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        return [copy.deepcopy(c) for c in self.calls if c["id"] > since and (method is None or c["method"] == method)]

    def deliveries_view(self, state: str | None = None, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        wanted = set(ids) if ids else None
        return [d.to_dict() for d in self.deliveries.items.values()
                if (state is None or d.state == state) and (wanted is None or d.id in wanted)]


class EmulatorThread:
    """A SlackEmulator on its own event loop in a background thread, for synchronous code.

        with EmulatorThread(ack_timeout=1.0) as emu:
            emu.base_url, emu.api_url, emu.bot_token, emu.app_token, emu.signing_secret
            emu.client.say(...); emu.web_client().chat_postMessage(...)
    """

    def __init__(self, users: Mapping[str, Any] | None = None, channels: Mapping[str, Any] | None = None,
                 usergroups: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.emulator = SlackEmulator(users, channels, usergroups, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: SlackLabClient | None = None

    def start(self, timeout: float = 10.0) -> EmulatorThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.emulator.start())
            except BaseException as e:  # handed to the starting thread
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.emulator.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="slack-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the Slack emulator did not start within {timeout}s")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[SlackEmulator], Any] | Callable[[SlackEmulator], Awaitable[Any]],
             timeout: float = 10.0) -> Any:
        """Run `fn(emulator)` on the emulator's loop (awaiting it if it is a coroutine) and return its result."""
        assert self.loop is not None, "not started"

        async def run() -> Any:
            result = fn(self.emulator)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def api_url(self) -> str:
        return self.emulator.api_url

    @property
    def bot_token(self) -> str:
        return self.emulator.settings.bot_token

    @property
    def app_token(self) -> str:
        return self.emulator.settings.app_token

    @property
    def signing_secret(self) -> str:
        return self.emulator.settings.signing_secret

    @property
    def client(self) -> SlackLabClient:
        if self._client is None:
            from lab.slack.client import SlackLabClient

            self._client = SlackLabClient(self.base_url)
        return self._client

    def web_client(self, token: str | None = None, **kwargs: Any) -> WebClient:
        """A real slack_sdk WebClient pointed at the emulator (the bot token unless told otherwise)."""
        from slack_sdk import WebClient

        return WebClient(token=token or self.bot_token, base_url=self.api_url, **kwargs)


__all__ = ["EmulatorThread", "Settings", "SlackEmulator"]
