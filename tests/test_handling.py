"""The bot's handler processes end with the bot, however the bot ends: none is left behind
holding the Slack token and the kubeconfig."""

from __future__ import annotations

import os
import signal

import pytest

from lab.stack import Stack
from lab.testing import wait_until

pytestmark = pytest.mark.runs_long(39)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(("ending", "group"), [(signal.SIGTERM, False), (signal.SIGKILL, False), (signal.SIGINT, True)],
                         ids=["stopped", "killed", "ctrl-c"])
def test_handler_processes_end_with_the_bot(ending, group):
    with Stack(mode="socket", workers=0, supervise=False) as stack:  # the bot must stay dead
        # 2 handler processes and the background one, forked once the bot is connected
        handlers = wait_until(lambda: len(pids := stack.bot_handlers()) == 3 and pids, timeout=30,
                              message="the bot's three child processes")
        if group:  # Ctrl-C in a terminal: the whole foreground process group
            os.killpg(stack.bot.pid, ending)
        else:  # the bot alone
            os.kill(stack.bot.pid, ending)
        stack.bot.wait(timeout=15)
        if ending != signal.SIGKILL:  # a clean stop: exit status 0 and no traceback in the log
            assert stack.bot.returncode == 0
            assert "Traceback" not in (stack.workdir / "bot.log").read_text()
        wait_until(lambda: not any(alive(pid) for pid in handlers), timeout=15,
                   message="the handler processes to exit")
