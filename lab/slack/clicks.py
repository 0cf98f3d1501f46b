"""What the person who clicked a button sees: nothing special when the app acked in time, otherwise a
warning on the button.

Slack delivers a click (a `block_actions` interaction) once and does not retry it. When the app does
not acknowledge it within 3 seconds (no Socket Mode connection, a Request URL that refuses or is too
slow, a late ack), Slack's client puts a small warning icon next to the clicked button, for the
clicking user only; no message is posted. (Slash commands differ: Slackbot posts an ephemeral
"/cmd failed with the error ..." instead.) Sources: slackapi/slack-github-action#513 ("When the app
fails to respond within 3s, the warning is displayed"), slackapi/node-slack-sdk#869 and #1585,
soxtoby/SlackNet#240. The icon's hover text is not documented; `shown` is the lab's wording of it.

The control API's click waits until Slack would know (the ack, or the deadline), then answers with
`delivered`, `error` and `shown`; every click is also recorded (`GET /_lab/clicks`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lab.slack.delivery import wait_event

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator

MAX_CLICKS = 10_000
# How long past the ack deadline the control API waits for a delivery to settle (it always does by then:
# a click is tried once, and each try ends at its deadline).
SETTLE_MARGIN = 5.0


def warning(label: str, error: str) -> str:
    return f"⚠️ {label}: the app did not respond ({error})"


async def settle(emu: SlackEmulator, clicked: dict[str, Any]) -> dict[str, Any]:
    """Wait for the click's delivery to be acked or given up on; the click's answer plus what the user saw."""
    d = emu.deliveries.items[clicked["delivery_ids"][0]]
    await wait_event(d.settled, emu.settings.ack_timeout + SETTLE_MARGIN)
    delivered = d.state == "acked"
    label = ((clicked["action"].get("text") or {}).get("text")) or clicked["action"]["action_id"]
    error = None if delivered else (d.failure or "operation_timeout")
    outcome = {"delivered": delivered, "error": error, "shown": None if delivered else warning(label, error)}
    emu.clicks.append({"delivery_id": d.id, "user": d.context.get("user"), "channel": clicked["channel"],
                       "ts": clicked["ts"], "action_id": clicked["action"]["action_id"], "at": time.time(),
                       **outcome})
    if len(emu.clicks) > MAX_CLICKS:
        del emu.clicks[: len(emu.clicks) - MAX_CLICKS]
    emu.changed()
    return {**clicked, **outcome}
