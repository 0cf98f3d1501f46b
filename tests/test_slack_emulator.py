"""The Slack emulator against the real slack_sdk WebClient, SocketModeClient and slack_bolt.

Every wait has a deadline (the control API's long-poll, or Queue.get(timeout=...)); nothing sleeps
and hopes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from lab.slack import EmulatorThread, RateLimit, SlackLabError, signed_headers

pytestmark = [pytest.mark.timeout(60), pytest.mark.runs_long(22)]

APPROVAL_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*cordon node01* needs an approval"}},
    {"type": "actions", "block_id": "approval", "elements": [
        {"type": "button", "action_id": "approve", "value": "job-1", "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": "reject", "value": "job-1", "style": "danger",
         "text": {"type": "plain_text", "text": "Reject"}},
    ]},
]


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    # Short timings so the suite stays fast; pings every 0.25 s let slack_sdk's client close quickly
    # (it blocks in recv() for up to 3 s otherwise).
    with EmulatorThread(ack_timeout=1.0, disconnect_grace=0.3, ping_interval=0.25) as e:
        yield e


@contextlib.contextmanager
def socket_mode(emu: EmulatorThread, app: App) -> Iterator[SocketModeHandler]:
    """Connect a bolt app over Socket Mode (connect() runs in the background) until the block ends."""
    handler = SocketModeHandler(app, emu.app_token)
    handler.connect()
    try:
        emu.client.wait_for_connection(timeout=10)
        yield handler
    finally:
        handler.close()


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def wsgi_server(wsgi_app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free local port; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- Web API -------------------------------------------------------------------------------------


def test_web_client_posts_updates_and_reads_back(emu: EmulatorThread) -> None:
    client = WebClient(token=emu.bot_token, base_url=emu.base_url + "/api/")
    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0LAB", "U0BOT", "B0BOT")
    assert auth["url"].startswith("https://")

    first = client.chat_postMessage(channel="C0OPS", text="cordon node01?", blocks=APPROVAL_BLOCKS)
    second = client.chat_postMessage(channel="C0OPS", text="step 1/3", thread_ts=first["ts"])
    assert first["channel"] == "C0OPS" and first["message"]["bot_id"] == "B0BOT"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"][1]["block_id"] == "approval"
    assert first["message"]["blocks"][0]["block_id"]  # Slack fills in missing block ids

    updated = client.chat_update(channel="C0OPS", ts=second["ts"], text="step 2/3")
    assert updated["ts"] == second["ts"] and updated["text"] == "step 2/3"
    client.chat_update(channel="C0OPS", ts=second["ts"], text="step 3/3")
    eph = client.chat_postEphemeral(channel="C0OPS", user="U0VIC", text="you may only look")
    assert eph["message_ts"]

    msgs = {m["ts"]: m for m in emu.client.messages("C0OPS")}
    assert msgs[first["ts"]]["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert msgs[first["ts"]]["reply_count"] == 1
    reply = msgs[second["ts"]]
    assert (reply["text"], reply["thread_ts"], reply["edits"]) == ("step 3/3", first["ts"], 2)
    assert [h["text"] for h in reply["history"]] == ["step 1/3", "step 2/3"]
    assert msgs[eph["message_ts"]]["ephemeral_to"] == "U0VIC"

    history = client.conversations_history(channel="C0OPS")["messages"]
    assert [m["ts"] for m in history] == [first["ts"]]  # threads and ephemerals stay out of history
    replies = client.conversations_replies(channel="C0OPS", ts=first["ts"])["messages"]
    assert [m["text"] for m in replies] == ["cordon node01?", "step 3/3"]

    assert client.conversations_info(channel="C0OPS")["channel"]["name"] == "ops"
    assert client.conversations_info(channel="D0ALICE")["channel"]["user"] == "U0ALICE"
    assert client.users_info(user="U0BOB")["user"]["name"] == "bob"
    assert client.usergroups_users_list(usergroup="S0APPROVERS")["users"] == ["U0BOB", "U0CAROL"]

    # The user id as channel posts to the DM, as on Slack.
    assert client.chat_postMessage(channel="U0ALICE", text="hi")["channel"] == "D0ALICE"

    calls = emu.client.calls("chat.update")
    assert [c["ok"] for c in calls] == [True, True] and calls[0]["args"]["ts"] == second["ts"]
    assert "token" not in calls[0]["args"] and calls[0]["token"] == "bot"


def test_files_upload_v2_shares_a_file_in_a_thread_as_slack_does(emu: EmulatorThread) -> None:
    client = emu.web_client()
    parent = client.chat_postMessage(channel="C0OPS", text="status")
    table = "NODE    READY\nnode01  yes\n" + "é" * 10  # bytes, not characters, are what length counts
    done = client.files_upload_v2(channel="C0OPS", thread_ts=parent["ts"], filename="cluster-status.txt",
                                  title="Cluster status", content=table)
    assert done["file"]["name"] == "cluster-status.txt" and done["file"]["title"] == "Cluster status"
    methods = [c["method"] for c in emu.client.calls() if c["method"].startswith("files.")]
    assert methods == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    assert emu.client.calls("files.getUploadURLExternal")[0]["args"]["length"] == str(len(table.encode()))

    [shared] = emu.client.files("C0OPS", thread_ts=parent["ts"])
    assert (shared["content"], shared["name"], shared["title"]) == (table, "cluster-status.txt", "Cluster status")
    carrier = emu.client.message("C0OPS", shared["message_ts"])
    assert carrier["thread_ts"] == parent["ts"] and carrier["files"] == [done["file"]["id"]]
    replies = client.conversations_replies(channel="C0OPS", ts=parent["ts"])["messages"]
    assert replies[-1]["files"] == [{"id": done["file"]["id"]}]
    assert emu.client.files("C0OPS", thread_ts="1.000001") == []

    # A file id that was never uploaded, or one completed already, is refused.
    with pytest.raises(SlackApiError) as info:
        client.files_completeUploadExternal(files=[{"id": done["file"]["id"], "title": "again"}], channel_id="C0OPS")
    assert info.value.response["error"] == "file_not_found"
    announced = client.files_getUploadURLExternal(filename="x.txt", length=3)
    with pytest.raises(SlackApiError) as info:
        client.files_completeUploadExternal(files=[{"id": announced["file_id"]}], channel_id="C0OPS")
    assert info.value.response["error"] == "file_not_found"
    with pytest.raises(SlackApiError) as info:
        client.files_getUploadURLExternal(filename="x.txt", length=0)
    assert info.value.response["error"] == "invalid_arguments"


def test_token_and_argument_errors_are_slacks(emu: EmulatorThread) -> None:
    def error(fn: Any, **kwargs: Any) -> tuple[int, str]:
        with pytest.raises(SlackApiError) as info:
            fn(**kwargs)
        return info.value.response.status_code, info.value.response["error"]

    assert error(WebClient(base_url=emu.api_url).auth_test) == (200, "not_authed")
    assert error(WebClient(token="xoxb-wrong", base_url=emu.api_url).auth_test) == (200, "invalid_auth")
    bot = emu.web_client()
    assert error(bot.apps_connections_open, app_token=emu.bot_token) == (200, "not_allowed_token_type")
    assert error(emu.web_client(token=emu.app_token).chat_postMessage, channel="C0OPS", text="x") == \
        (200, "not_allowed_token_type")
    assert error(bot.api_call, api_method="chat.frobnicate") == (404, "unknown_method")
    assert error(bot.chat_update, channel="C0OPS", ts="1.000001", text="x") == (200, "message_not_found")
    assert error(bot.chat_postMessage, channel="C0NOPE", text="x") == (200, "channel_not_found")
    with pytest.warns(UserWarning, match="text"):  # slack_sdk warns before sending, then Slack refuses
        assert error(bot.chat_postMessage, channel="C0OPS") == (200, "no_text")
    assert error(bot.users_info, user="U0NOBODY") == (200, "user_not_found")
    assert error(bot.usergroups_users_list, usergroup="S0NONE") == (200, "no_such_subteam")
    status, code = error(bot.chat_postMessage, channel="C0OPS", text="x",
                         blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": ""}}])
    assert (status, code) == (200, "invalid_blocks")

    url = emu.web_client(token=emu.app_token).apps_connections_open(app_token=emu.app_token)["url"]
    assert url.startswith(f"ws://127.0.0.1:{emu.emulator.port}/link")

    # The form-encoded `token` argument works like the Authorization header.
    status, body = _post(emu.api_url + "auth.test", f"token={emu.bot_token}".encode(),
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and json.loads(body)["user_id"] == "U0BOT"
    failed = [c for c in emu.client.calls() if not c["ok"]]
    assert {c["error"] for c in failed} >= {"not_authed", "invalid_auth", "unknown_method"}


def test_rate_limits_answer_429_and_the_retry_handler_recovers() -> None:
    limits = {"chat.postMessage": RateLimit(1.0, 2, "channel"), "chat.update": RateLimit.per_minute(50, 1)}
    with EmulatorThread(rate_limits=limits) as emu:
        plain = emu.web_client()
        for n in range(2):
            plain.chat_postMessage(channel="C0OPS", text=f"burst {n}")
        with pytest.raises(SlackApiError) as info:
            plain.chat_postMessage(channel="C0OPS", text="one too many")
        resp = info.value.response
        assert (resp.status_code, resp["error"]) == (429, "ratelimited")
        assert resp.headers["Retry-After"] == "1"
        plain.chat_postMessage(channel="D0ALICE", text="another channel has its own bucket")

        patient = emu.web_client(retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
        assert patient.chat_postMessage(channel="C0OPS", text="after waiting")["ok"]
        outcomes = [c["status"] for c in emu.client.calls("chat.postMessage") if c["args"]["channel"] == "C0OPS"]
        assert outcomes == [200, 200, 429, 429, 200]

        ts = emu.client.messages("C0OPS")[0]["ts"]
        plain.chat_update(channel="C0OPS", ts=ts, text="edit 1")
        with pytest.raises(SlackApiError) as info:
            plain.chat_update(channel="C0OPS", ts=ts, text="edit 2")
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "2"  # 50 a minute: a token every 1.2 s

    with EmulatorThread() as emu:
        limits = emu.client.info()["rate_limits"]
        assert limits["chat.postMessage"] == {"per_second": 1.0, "per_minute": 60.0, "burst": 5, "scope": "channel"}
        assert limits["chat.update"]["per_minute"] == pytest.approx(50) and limits["chat.update"]["scope"] == "app"


# -- Socket Mode ---------------------------------------------------------------------------------


def test_bolt_over_socket_mode_answers_a_mention_in_thread_and_a_dm(emu: EmulatorThread) -> None:
    app = App(client=emu.web_client())
    seen: queue.Queue = queue.Queue()

    @app.event("app_mention")
    def mention(body: dict, event: dict, say: Any) -> None:
        seen.put(body)
        say(text=f"on it: {event['text']}", thread_ts=event["ts"])

    @app.event("message")
    def dm(event: dict, say: Any) -> None:
        seen.put({"event": event})
        say(text="hello in private")

    with socket_mode(emu, app):
        said = emu.client.say("alice", "#ops", "<@U0BOT> status")
        reply = emu.client.wait_for_message(lambda m: m["thread_ts"] == said["ts"], channel="C0OPS")
        assert reply["user"] == "U0BOT" and reply["text"] == "on it: <@U0BOT> status"
        body = seen.get(timeout=5)
        assert body["type"] == "event_callback" and body["event_id"].startswith("Ev")
        assert body["team_id"] == "T0LAB" and body["api_app_id"] == "A0LAB"
        assert body["authorizations"][0]["user_id"] == "U0BOT"
        event = body["event"]
        assert (event["type"], event["user"], event["channel"], event["ts"]) == \
            ("app_mention", "U0ALICE", "C0OPS", said["ts"])

        emu.client.say("bob", "@bob", "status please")
        dm_reply = emu.client.wait_for_message(lambda m: m["user"] == "U0BOT", channel="D0BOB")
        assert dm_reply["text"] == "hello in private"
        event = seen.get(timeout=5)["event"]
        assert (event["type"], event["channel_type"], event["channel"]) == ("message", "im", "D0BOB")

        # Everything was acked once; the bot's own DM message came back as an event too, and bolt
        # acked it without calling the listener.
        settled = emu.client.wait_for_deliveries(timeout=5)
        assert {d["state"] for d in settled} == {"acked"}
        assert all(len(d["attempts"]) == 1 for d in settled)
        assert seen.empty()


def test_unacked_envelope_is_resent_with_retry_attempt_and_the_same_event_id() -> None:
    with EmulatorThread(ack_timeout=0.5, ping_interval=0.25) as emu:
        got: queue.Queue = queue.Queue()
        hello: queue.Queue = queue.Queue()
        client = SocketModeClient(app_token=emu.app_token, web_client=emu.web_client())

        def on_request(c: SocketModeClient, req: SocketModeRequest) -> None:
            got.put(req)
            if req.retry_attempt:  # ignore the first delivery, ack the retry
                c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(on_request)
        client.message_listeners.append(lambda c, message, raw: message.get("type") == "hello" and hello.put(message))
        client.connect()
        try:
            greeting = hello.get(timeout=5)
            assert greeting["num_connections"] == 1 and greeting["connection_info"]["app_id"] == "A0LAB"
            said = emu.client.say("alice", "C0OPS", "<@U0BOT> drain node01")
            first, retry = got.get(timeout=5), got.get(timeout=5)
            assert (first.type, first.retry_attempt, first.retry_reason) == ("events_api", 0, "")
            assert (retry.retry_attempt, retry.retry_reason) == (1, "timeout")
            assert retry.payload["event_id"] == first.payload["event_id"]
            assert retry.envelope_id != first.envelope_id
            assert first.accepts_response_payload is False
            d = emu.client.wait_for_ack(said["delivery_ids"][0], timeout=5)
            assert [a["outcome"] for a in d["attempts"]] == ["timeout", "acked"]

            # Never acked: the first delivery and three retries, then Slack gives up.
            emu.client.configure(max_retries=3, ack_timeout=0.2)
            client.socket_mode_request_listeners.clear()
            said = emu.client.say("alice", "C0OPS", "<@U0BOT> ignored")
            d = emu.client.wait_for_deliveries(said["delivery_ids"], timeout=5)[0]
            assert d["state"] == "failed"
            assert [a["retry_reason"] for a in d["attempts"]] == ["", "timeout", "timeout", "timeout"]
        finally:
            client.close()


def test_disconnect_refresh_requested_is_survived(emu: EmulatorThread) -> None:
    app = App(client=emu.web_client())

    @app.event("app_mention")
    def mention(event: dict, say: Any) -> None:
        say(text="pong", thread_ts=event["ts"])

    with socket_mode(emu, app):
        old = emu.client.wait_for_connection()
        assert emu.client.disconnect("refresh_requested") == [old["id"]]
        new = emu.client.wait_for_connection(exclude=[old["id"]], timeout=10)
        said = emu.client.say("carol", "C0OPS", "<@U0BOT> ping")
        reply = emu.client.wait_for_message(lambda m: m["thread_ts"] == said["ts"], channel="C0OPS", timeout=10)
        assert reply["text"] == "pong"
        d = emu.client.wait_for_ack(said["delivery_ids"][0])
        assert d["attempts"][-1]["transport"] == f"socket:{new['id']}"
        emu.client.wait_for(lambda: all(c["state"] == "closed" for c in emu.client.connections()
                                        if c["id"] == old["id"]), timeout=5, what="the old connection to close")


def test_slash_command_over_socket_mode(emu: EmulatorThread) -> None:
    app = App(client=emu.web_client())
    seen: queue.Queue = queue.Queue()

    @app.command("/kubemaint")
    def kubemaint(ack: Any, command: dict, respond: Any) -> None:
        ack(f"Working on `{command['text']}`")
        seen.put(command)
        respond(text="node01 cordoned", response_type="in_channel")

    with socket_mode(emu, app):
        said = emu.client.slash("alice", "C0OPS", "cordon node01")
        done = emu.client.wait_for_message(lambda m: m["text"] == "node01 cordoned", channel="C0OPS")
        assert done["user"] == "U0BOT" and done["ephemeral_to"] is None
        command = seen.get(timeout=5)
        assert {k: command[k] for k in ("command", "text", "user_id", "user_name", "channel_id", "team_id",
                                        "api_app_id")} == {
            "command": "/kubemaint", "text": "cordon node01", "user_id": "U0ALICE", "user_name": "alice",
            "channel_id": "C0OPS", "team_id": "T0LAB", "api_app_id": "A0LAB"}
        assert command["trigger_id"] and command["response_url"] == said["response_url"]
        ack = emu.client.wait_for_message(lambda m: m["text"].startswith("Working on"), channel="C0OPS")
        assert ack["ephemeral_to"] == "U0ALICE"
        d = emu.client.wait_for_ack(said["delivery_ids"][0])
        assert d["kind"] == "slash_commands" and d["ack_payload"] == {"text": "Working on `cordon node01`"}

    # Nobody connected: slash commands are not retried, the user sees dispatch_failed.
    emu.client.wait_for(lambda: not emu.client.connections(live_only=True), timeout=5, what="no connections")
    said = emu.client.slash("bob", "C0OPS", "status")
    d = emu.client.wait_for_deliveries(said["delivery_ids"], timeout=5)[0]
    assert d["state"] == "timeout" and len(d["attempts"]) == 1
    oops = emu.client.wait_for_message(lambda m: m["ephemeral_to"] == "U0BOB", channel="C0OPS")
    assert oops["text"] == '/kubemaint failed with the error "dispatch_failed"' and oops["user"] == "USLACKBOT"


def test_block_actions_click(emu: EmulatorThread) -> None:
    app = App(client=emu.web_client())
    seen: queue.Queue = queue.Queue()

    @app.action("approve")
    def approve(ack: Any, body: dict, respond: Any) -> None:
        ack()
        seen.put(body)
        respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")

    card = emu.web_client().chat_postMessage(channel="C0OPS", text="cordon node01?", blocks=APPROVAL_BLOCKS)
    with socket_mode(emu, app):
        clicked = emu.client.click("bob", "C0OPS", card["ts"], "approve")
        replaced = emu.client.wait_for_message(lambda m: m["ts"] == card["ts"] and m["edits"], channel="C0OPS")
        assert replaced["text"] == "Approved by <@U0BOB>" and replaced["blocks"] == []
        body = seen.get(timeout=5)
        assert body["type"] == "block_actions"
        assert body["user"] == {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0LAB"}
        assert body["container"] == {"type": "message", "message_ts": card["ts"], "channel_id": "C0OPS",
                                     "is_ephemeral": False}
        assert body["channel"] == {"id": "C0OPS", "name": "ops"} and body["team"]["id"] == "T0LAB"
        assert body["message"]["ts"] == card["ts"] and body["message"]["blocks"][1]["block_id"] == "approval"
        action = body["actions"][0]
        assert {k: action[k] for k in ("action_id", "block_id", "value", "style", "type")} == {
            "action_id": "approve", "block_id": "approval", "value": "job-1", "style": "primary", "type": "button"}
        assert action["text"]["text"] == "Approve" and body["trigger_id"]
        assert body["response_url"] == clicked["response_url"]

        with pytest.raises(SlackLabError) as info:
            emu.client.click("bob", "C0OPS", card["ts"], "approve")  # the buttons are gone now
        assert info.value.status == 404 and "approve" in info.value.detail


def test_click_errors_and_response_url_limit(emu: EmulatorThread) -> None:
    card = emu.web_client().chat_postMessage(channel="C0OPS", text="cordon node01?", blocks=APPROVAL_BLOCKS)
    with pytest.raises(SlackLabError) as info:
        emu.client.click("bob", "C0OPS", card["ts"], "postpone")
    assert info.value.status == 404 and "'postpone'" in info.value.detail and "approve" in info.value.detail
    with pytest.raises(SlackLabError) as info:
        emu.client.click("bob", "C0OPS", "1.000001", "approve")
    assert info.value.error == "message_not_found"

    clicked = emu.client.click("carol", "C0OPS", card["ts"], "reject")
    statuses = []
    for n in range(6):
        status, body = _post(clicked["response_url"], json.dumps({"text": f"note {n}"}).encode(),
                             {"Content-Type": "application/json"})
        statuses.append((status, body.decode()))
    assert statuses == [(200, "ok")] * 5 + [(404, "used_url")]
    notes = [m for m in emu.client.messages("C0OPS") if m["text"].startswith("note")]
    assert len(notes) == 5 and {m["ephemeral_to"] for m in notes} == {"U0CAROL"}


# -- HTTP mode -----------------------------------------------------------------------------------


def test_bolt_over_http_gets_signed_requests_and_rejects_bad_signatures(emu: EmulatorThread) -> None:
    app = App(client=emu.web_client(), signing_secret=emu.signing_secret)
    seen: queue.Queue = queue.Queue()

    @app.event("app_mention")
    def mention(event: dict, say: Any) -> None:
        say(text="over http", thread_ts=event["ts"])

    @app.command("/kubemaint")
    def kubemaint(ack: Any, command: dict) -> None:
        ack(f"http: {command['text']}")

    @app.action("approve")
    def approve(ack: Any, body: dict, respond: Any) -> None:
        ack()
        seen.put(body)
        respond(replace_original=True, text="approved over http")

    with wsgi_server(SlackRequestHandler(app)) as url:
        emu.client.configure(http_mode=True, request_url=url + "/slack/events")
        assert emu.client.verify_url()["verified"] is True

        said = emu.client.say("alice", "C0OPS", "hey <@U0BOT>")
        reply = emu.client.wait_for_message(lambda m: m["thread_ts"] == said["ts"], channel="C0OPS")
        assert reply["text"] == "over http"
        d = emu.client.wait_for_ack(said["delivery_ids"][0])
        assert d["mode"] == "http" and d["attempts"][0]["transport"].startswith("http:")

        said = emu.client.slash("victor", "C0OPS", "status")
        answer = emu.client.wait_for_message(lambda m: m["text"] == "http: status", channel="C0OPS")
        assert answer["ephemeral_to"] == "U0VIC"

        card = emu.web_client().chat_postMessage(channel="C0OPS", text="approve?", blocks=APPROVAL_BLOCKS)
        emu.client.click("bob", "C0OPS", card["ts"], "approve")
        emu.client.wait_for_message(lambda m: m["text"] == "approved over http", channel="C0OPS")
        assert seen.get(timeout=5)["actions"][0]["value"] == "job-1"

        body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}}).encode()
        bad = signed_headers("not-the-secret", body, content_type="application/json")
        assert _post(url + "/slack/events", body, bad)[0] == 401
        stale = signed_headers(emu.signing_secret, body, content_type="application/json",
                               timestamp=int(time.time()) - 600)
        assert _post(url + "/slack/events", body, stale)[0] == 401
        challenge = json.dumps({"type": "url_verification", "challenge": "abc"}).encode()
        good = signed_headers(emu.signing_secret, challenge, content_type="application/json")
        assert _post(url + "/slack/events", challenge, good) == (200, b'{"challenge": "abc"}')


def test_http_mode_retries_with_retry_headers(emu: EmulatorThread) -> None:
    verifier = SignatureVerifier(emu.signing_secret)
    received: queue.Queue = queue.Queue()

    def flaky(environ: dict, start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        valid = verifier.is_valid_request(body, headers)
        received.put((headers, json.loads(body), valid))
        status = "200 OK" if "x-slack-retry-num" in headers else "500 Internal Server Error"
        start_response(status, [("Content-Type", "text/plain")])
        return [b""]

    with wsgi_server(flaky) as url:
        emu.client.configure(http_mode=True, request_url=url + "/slack/events")
        said = emu.client.say("alice", "C0OPS", "<@U0BOT> retry me")
        d = emu.client.wait_for_ack(said["delivery_ids"][0], timeout=5)
        (h1, b1, v1), (h2, b2, v2) = received.get(timeout=5), received.get(timeout=5)
        assert v1 and v2 and h1["content-type"] == "application/json"
        assert "x-slack-retry-num" not in h1
        assert (h2["x-slack-retry-num"], h2["x-slack-retry-reason"]) == ("1", "http_error")
        assert b1["event_id"] == b2["event_id"] and b1["event"]["type"] == "app_mention"
        assert [a["outcome"] for a in d["attempts"]] == ["http_error", "acked"]


def test_late_acks_make_slack_resend_in_both_modes(emu: EmulatorThread) -> None:
    """`late_acks` turns the app's next acks into late ones: the event comes again with the same event_id."""
    app = App(client=emu.web_client())
    seen: queue.Queue = queue.Queue()

    @app.event("app_mention")
    def mention(event: dict, say: Any) -> None:
        seen.put(event)

    with pytest.raises(SlackLabError, match="late_acks must be a whole number"):
        emu.client.configure(late_acks=-1)
    with socket_mode(emu, app):
        emu.client.wait_for_connection()
        emu.client.configure(ack_timeout=0.3, late_acks=1)
        said = emu.client.say("alice", "C0OPS", "<@U0BOT> once late")
        d = emu.client.wait_for_ack(said["delivery_ids"][0], timeout=5)
        assert [(a["outcome"], a["retry_reason"]) for a in d["attempts"]] == [("timeout", ""), ("acked", "timeout")]
        assert emu.client.configure()["settings"]["late_acks"] == 0  # used up

    received: queue.Queue = queue.Queue()

    def always_ok(environ: dict, start_response: Any) -> list[bytes]:
        received.put(environ.get("HTTP_X_SLACK_RETRY_REASON"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    with wsgi_server(always_ok) as url:
        emu.client.configure(http_mode=True, request_url=url + "/slack/events", late_acks=1)
        said = emu.client.say("alice", "C0OPS", "<@U0BOT> late over http")
        d = emu.client.wait_for_ack(said["delivery_ids"][0], timeout=5)
        assert [a["outcome"] for a in d["attempts"]] == ["http_timeout", "acked"]
        assert (received.get(timeout=5), received.get(timeout=5)) == (None, "http_timeout")


# -- a click while the app is down ------------------------------------------------------------------


def _approve_app(emu: EmulatorThread, seen: queue.Queue, signing_secret: str | None = None) -> App:
    app = App(client=emu.web_client(), signing_secret=signing_secret)

    @app.action("approve")
    def approve(ack: Any, body: dict) -> None:
        ack()
        seen.put(body)

    return app


def _only_the_card(emu: EmulatorThread, card_ts: str) -> None:
    """Slack posts nothing for a missed click (no Slackbot message, unlike a slash command)."""
    assert [m["ts"] for m in emu.client.messages("C0OPS")] == [card_ts]


def test_a_click_while_the_socket_mode_app_is_down_warns_the_user_and_is_not_retried(emu: EmulatorThread) -> None:
    seen: queue.Queue = queue.Queue()
    card = emu.web_client().chat_postMessage(channel="C0OPS", text="cordon node01?", blocks=APPROVAL_BLOCKS)

    started = time.monotonic()
    missed = emu.client.click("bob", "C0OPS", card["ts"], "approve")  # nobody connected
    assert time.monotonic() - started < 3  # answered once Slack gives up, after the 1 s ack timeout
    assert missed["delivered"] is False and missed["error"] == "dispatch_failed"
    assert missed["shown"] == "⚠️ Approve: the app did not respond (dispatch_failed)"
    d = emu.client.deliveries(ids=missed["delivery_ids"])[0]
    assert d["state"] == "timeout" and [a["outcome"] for a in d["attempts"]] == ["no_connection"]
    _only_the_card(emu, card["ts"])

    with socket_mode(emu, _approve_app(emu, seen)):
        clicked = emu.client.click("bob", "C0OPS", card["ts"], "approve")
        assert (clicked["delivered"], clicked["error"], clicked["shown"]) == (True, None, None)
        assert seen.get(timeout=5)["response_url"] == clicked["response_url"]
        assert seen.empty()  # the missed click never arrives later: Slack does not retry clicks
    assert [(c["user"], c["delivered"], c["error"]) for c in emu.client.clicks()] == [
        ("U0BOB", False, "dispatch_failed"), ("U0BOB", True, None)]


def test_a_click_the_app_acks_too_late_warns_with_operation_timeout(emu: EmulatorThread) -> None:
    seen: queue.Queue = queue.Queue()
    card = emu.web_client().chat_postMessage(channel="C0OPS", text="cordon node01?", blocks=APPROVAL_BLOCKS)
    with socket_mode(emu, _approve_app(emu, seen)):
        emu.client.configure(late_acks=1)
        late = emu.client.click("carol", "C0OPS", card["ts"], "approve")
        assert (late["delivered"], late["error"]) == (False, "operation_timeout")
        assert late["shown"] == "⚠️ Approve: the app did not respond (operation_timeout)"
        assert seen.get(timeout=5)  # the app did get it, but after Slack gave up: the user saw the warning
    _only_the_card(emu, card["ts"])


def test_a_click_while_the_http_app_is_down_or_slow_warns_the_user(emu: EmulatorThread) -> None:
    seen: queue.Queue = queue.Queue()
    card = emu.web_client().chat_postMessage(channel="C0OPS", text="cordon node01?", blocks=APPROVAL_BLOCKS)

    with wsgi_server(lambda environ, start_response: []) as url:
        pass  # a port nobody listens on any more: connections are refused
    emu.client.configure(http_mode=True, request_url=url + "/slack/events")
    refused = emu.client.click("bob", "C0OPS", card["ts"], "approve")
    assert (refused["delivered"], refused["error"]) == (False, "dispatch_failed")
    d = emu.client.deliveries(ids=refused["delivery_ids"])[0]
    assert [a["outcome"] for a in d["attempts"]] == ["connection_failed"]

    release = threading.Event()

    def stuck(environ: dict, start_response: Any) -> list[bytes]:
        release.wait(10)  # answers only after the test has seen the click time out
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    with wsgi_server(stuck) as url:
        emu.client.configure(request_url=url + "/slack/events")
        try:
            slow = emu.client.click("bob", "C0OPS", card["ts"], "approve")
        finally:
            release.set()
        assert (slow["delivered"], slow["error"]) == (False, "operation_timeout")
        assert emu.client.deliveries(ids=slow["delivery_ids"])[0]["attempts"][0]["outcome"] == "http_timeout"

    with wsgi_server(SlackRequestHandler(_approve_app(emu, seen, emu.signing_secret))) as url:
        emu.client.configure(request_url=url + "/slack/events")
        clicked = emu.client.click("bob", "C0OPS", card["ts"], "approve")
        assert (clicked["delivered"], clicked["shown"]) == (True, None)
        assert seen.get(timeout=5)["response_url"] == clicked["response_url"]
    _only_the_card(emu, card["ts"])
    assert [c["delivered"] for c in emu.client.clicks()] == [False, False, True]
