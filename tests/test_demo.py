"""`python -m lab demo --headless --state-file`: the demo stack for other tools."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from lab.slack.client import SlackLabClient
from lab.testing import wait_until


def test_headless_demo_writes_its_state_and_answers_in_chat(tmp_path):
    state_file = tmp_path / "demo.json"
    demo = subprocess.Popen([sys.executable, "-m", "lab", "demo", "--headless", "--state-file", str(state_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: state_file.exists() or demo.poll() is not None, timeout=60, message="the state file")
        assert demo.poll() is None, demo.stdout.read()
        state = json.loads(state_file.read_text())
        assert set(state["users"]) >= {"operator", "approver", "viewer"}
        assert state["channel"] == "C0OPS"
        chat = SlackLabClient(state["slack_url"])
        said = chat.say(state["users"]["viewer"], state["channel"], "<@U0BOT> status")
        reply = chat.wait_for_message(lambda m: m.get("thread_ts") == said["ts"] and m.get("user") == "U0BOT",
                                      channel=state["channel"], timeout=30)
        assert "controlplane" in reply["text"]
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
    assert demo.returncode == 0
