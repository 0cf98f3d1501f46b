"""A Slack emulator for the lab: Web API, Socket Mode, HTTP mode and a control API on 127.0.0.1.

The real slack_sdk WebClient, SocketModeClient and slack_bolt run against it unchanged:

    from lab.slack import EmulatorThread

    with EmulatorThread() as emu:
        client = WebClient(token=emu.bot_token, base_url=emu.api_url)
        emu.client.say("alice", "C0OPS", "<@U0BOT> status")
        emu.client.wait_for_message(lambda m: m["user"] == "U0BOT", channel="C0OPS")

See docs in lab/slack/emulator.py (lifecycle), control.py (/_lab/ endpoints) and client.py.
"""

from lab.slack.client import SlackLabClient, SlackLabError
from lab.slack.emulator import EmulatorThread, Settings, SlackEmulator
from lab.slack.http_mode import signature, signed_headers
from lab.slack.ratelimit import DEFAULT_RATE_LIMITS, RateLimit
from lab.slack.workspace import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    DEFAULT_CHANNELS,
    DEFAULT_USERGROUPS,
    DEFAULT_USERS,
    TEAM_ID,
    dm_channel_id,
)

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_CHANNELS",
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_USERGROUPS",
    "DEFAULT_USERS",
    "TEAM_ID",
    "EmulatorThread",
    "RateLimit",
    "Settings",
    "SlackEmulator",
    "SlackLabClient",
    "SlackLabError",
    "dm_channel_id",
    "signature",
    "signed_headers",
]
