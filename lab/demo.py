"""`python -m lab demo`: the bot in the lab, with a terminal chat client on the Slack emulator.

Two clusters, each a lab of its own: `staging` (#staging-ops) and `prod` (#prod-ops). You type in
#staging-ops as an operator; `/channel prod` and `/channel staging` switch channels (a command goes to
its channel's cluster, or to the one `--cluster NAME` names); `/as approver`, `/as viewer`, `/as operator` switch users;
buttons appear as numbered choices, and typing the number clicks it. A click the bot misses (it is
down, or too slow) shows Slack's warning, and a bot or worker that dies is restarted within seconds,
as compose's `restart: always` does: kill one and watch.
`--headless --state-file PATH` starts the same stack without the chat client and writes PATH
(JSON) once everything is ready.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from lab.slack.client import SlackLabError
from lab.stack import CHANNEL, Stack
from lab.supervisor import Child

# The demo's clusters: name -> scenario. Staging is the seeds' OS-upgrade lab, in #ops renamed #staging-ops (the
# README's stories are typed there); prod is the seeds' upgrade lab, in #prod-ops.
CLUSTERS = {"staging": "seeds-os-upgrade", "prod": "seeds-upgrade"}
CHANNELS = {"staging": CHANNEL, "prod": "C0PROD"}

NAMES = {"U0ALICE": "alice (operator)", "U0BOB": "bob (approver)", "U0CAROL": "carol (approver)",
         "U0VIC": "victor (viewer)", "U0BOT": "kubemaint"}
# A restore needs two approvers: `/as approver2` is carol.
ROLE_USERS = {"operator": "U0ALICE", "approver": "U0BOB", "approver2": "U0CAROL", "viewer": "U0VIC"}


class ChatView:
    """Prints new messages and edits in #ops as they happen, numbering the buttons of the newest card
    shown: [1] and [2] are always its Approve and Deny, so a story can say "1" whatever came before
    (a card that still waits for a second approval is shown again, with its buttons numbered again)."""

    def __init__(self, stack: Stack, out=print) -> None:
        self.client = stack.slack.client
        self.out = out
        # With several clusters, each message says which channel it is in.
        self.channels = {channel: f"#{name}-ops " for name, channel in stack.cluster_channels.items()} or {CHANNEL: ""}
        self.seen: dict[str, str] = {}  # ts -> the text last printed
        self.choices: list[tuple[str, str, str, str]] = []  # (channel, ts, action_id, value)
        self.stop = threading.Event()

    def render_new(self) -> None:
        for channel, where in self.channels.items():
            self._render_new(channel, where)

    def _render_new(self, channel: str, where: str) -> None:
        for message in self.client.messages(channel):
            ts, text = message["ts"], message.get("text") or ""
            blocks = message.get("blocks") or []
            # A card's text is only its notification fallback: show what its blocks show.
            shown_blocks = ""
            buttons = []
            for block in blocks:
                if block.get("type") in ("section", "context"):
                    parts = [block.get("text") or {}, *(block.get("elements") or [])]
                    shown_blocks += "\n".join(p.get("text", "") for p in parts if isinstance(p.get("text"), str)) + "\n"
                for element in block.get("elements") or []:
                    if element.get("type") == "button":
                        buttons.append(element)
            body = shown_blocks or text
            shown = body + "|".join(b["action_id"] for b in buttons)
            if self.seen.get(ts) == shown:
                continue
            edited = ts in self.seen
            self.seen[ts] = shown
            who = NAMES.get(message.get("user", ""), message.get("user", "?"))
            indent = "    " if message.get("thread_ts") and message.get("thread_ts") != ts else ""
            label = f"{who} (edited)" if edited else who
            lines = body.strip().splitlines() or [""]
            self.out(f"{indent}{where}[{label}] {lines[0]}")
            for line in lines[1:]:
                self.out(f"{indent}    {line}")
            if buttons:
                self.choices = []
            for button in buttons:
                self.choices.append((channel, ts, button["action_id"], button.get("value", "")))
                title = (button.get("text") or {}).get("text", button["action_id"])
                self.out(f"{indent}    [{len(self.choices)}] {title}")

    def follow(self) -> None:
        version = 0
        while not self.stop.is_set():
            try:
                version = self.client.wait_changed(version, timeout=1.0)
                self.render_new()
            except Exception as error:  # the stack is shutting down
                if not self.stop.is_set():
                    self.out(f"(chat view: {error})")
                return


def interactive(stack: Stack) -> None:
    user = ROLE_USERS["operator"]
    channel = CHANNEL
    labs = stack.labs or {"": stack.lab}
    here = "#staging-ops (cluster staging)" if stack.labs else "#ops"
    print(f"kubemaint demo: you are {NAMES[user]} in {here}. Try: status, cordon node01, drain node01.")
    print("  /as approver | /as operator | /as viewer  switch user;  1 or 2 click the newest card's buttons;  /quit")
    if stack.labs:
        print("  /channel prod | /channel staging  switch channel: each channel's commands go to its cluster")
    for name, lab in labs.items():
        print(f"  kubectl{f' ({name})' if name else ''}: export KUBECONFIG={lab.kubeconfig}")
        if lab.with_machines and lab.ssh_config.exists():
            print(f"  {f'{name} ' if name else ''}nodes' machines: ssh -F {lab.ssh_config} node01")
    view = ChatView(stack)
    threading.Thread(target=view.follow, daemon=True).start()
    while True:
        try:
            line = input().strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line.startswith("/channel ") and stack.labs:
            name = line.split(maxsplit=1)[1].strip().lstrip("#").removesuffix("-ops")
            if name not in stack.cluster_channels:
                print(f"unknown channel {name!r}: choose {' or '.join(stack.cluster_channels)}")
                continue
            channel = stack.cluster_channels[name]
            print(f"you are now in #{name}-ops (cluster {name})")
            continue
        if line.startswith("/as "):
            role = line.split(maxsplit=1)[1].strip()
            if role not in ROLE_USERS:
                print(f"unknown role {role!r}: choose operator, approver, approver2 or viewer")
                continue
            user = ROLE_USERS[role]
            print(f"you are now {NAMES[user]}")
            continue
        if line.isdigit():
            index = int(line) - 1
            if not 0 <= index < len(view.choices):
                print(f"no button [{line}]")
                continue
            card_channel, ts, action_id, value = view.choices[index]
            try:
                clicked = stack.slack.client.click(user, card_channel, ts, action_id, value or None)
            except SlackLabError as gone:  # a card decided or expired since: its buttons are gone
                print(f"no button [{line}] any more: {gone.detail or gone.error}")
                continue
            if not clicked["delivered"]:  # what Slack's client shows on the button
                print(f"    {clicked['shown']} -- Slack does not retry a click: "
                      f"type {line} again when kubemaint is back")
            continue
        stack.slack.client.say(user, channel, f"<@U0BOT> {line}")
    view.stop.set()


def tell_restart(child: Child, exit_code: int | None) -> None:
    print(f"(supervisor: {child.name} exited with {exit_code} and was restarted; see {child.log})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab demo", description=__doc__)
    parser.add_argument("--scenario", help="one cluster, from this scenario, in #ops (default: the two clusters "
                                           f"{', '.join(f'{n} ({s})' for n, s in CLUSTERS.items())})")
    parser.add_argument("--mode", choices=("socket", "http"), default="socket")
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--headless", action="store_true", help="no chat client; see --state-file")
    parser.add_argument("--state-file", type=Path, help="with --headless: write the stack's details here")
    args = parser.parse_args(argv)
    if args.headless and not args.state_file:
        parser.error("--headless needs --state-file PATH")
    several = {} if args.scenario else {"clusters": CLUSTERS, "cluster_channels": CHANNELS}
    print(f"starting the lab {'cluster' if args.scenario else 'clusters (staging, prod)'}, Redis, the Slack "
          "emulator, a worker and the bot...", flush=True)
    # A SIGTERM (a terminal closed, `kill`) ends the demo as /quit does: every process it started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Stack(scenario=args.scenario or "seeds-os-upgrade", mode=args.mode, time_scale=args.time_scale,
               on_restart=tell_restart, **several) as stack:
        if args.headless:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            temp = args.state_file.with_suffix(".tmp")
            temp.write_text(json.dumps(stack.state(), indent=2))
            temp.replace(args.state_file)
            print(f"ready: {args.state_file}", flush=True)
            stop.wait()
        else:
            interactive(stack)
    return 0

