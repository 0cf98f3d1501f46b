"""Maintenance windows through chat, with windows set a few seconds from now (they may name seconds): a
reboot outside the window is refused with the next window's start, `--at-window` schedules it (shown in
`jobs`) and it starts when the window opens; a rollout reaching the window's end finishes its node,
pauses, says so in the thread, and continues at the next window by itself. Each case has its own stack,
since the windows are configuration."""

from __future__ import annotations

import time

import pytest

from tests.chat_driver import Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(80)

TERMINAL = ("succeeded", "failed", "halted", "cancelled")


def clock(epoch: float) -> str:
    """A moment as the bot writes it: seconds only when there are some (a window opening at 06:47:00 is 06:47)."""
    return time.strftime("%H:%M:%S" if int(epoch) % 60 else "%H:%M", time.gmtime(epoch))


def window(start: float, end: float) -> dict:
    return {"days": "daily", "start": time.strftime("%H:%M:%S", time.gmtime(start)),
            "end": time.strftime("%H:%M:%S", time.gmtime(end)), "time_zone": "UTC"}


def test_outside_the_window_is_refused_and_at_window_starts_it_when_it_opens() -> None:
    opens = int(time.time()) + 25  # after the stack is up and the request approved
    with Stack(scenario="seeds-os-upgrade", time_scale=0.05, workers=1,
               maintenance={"windows": [window(opens, opens + 600)]}) as stack:
        chat = Chat(stack, timeout=60)
        refused = text_of(chat.ask("reboot node01 --force", timeout=90).reply)
        day = time.strftime("%a %Y-%m-%d", time.gmtime(opens))
        opening = f"outside the maintenance window: the next one opens {day} {clock(opens)} UTC (in "
        assert refused.startswith(opening), refused
        assert refused.endswith("Add `--at-window` to queue it to start then"), refused
        assert chat.jobs() == []
        thread = chat.ask("reboot node01 --force --at-window", timeout=90)
        assert f"Starts at {time.strftime('%a %Y-%m-%d', time.gmtime(opens))} {clock(opens)} UTC" in \
            text_of(thread.card())
        job = thread.approve()
        assert chat.job(job).state == "scheduled"
        listed = text_of(chat.ask("jobs").reply)
        assert f"scheduled, starts {time.strftime('%a %H:%M UTC', time.gmtime(opens))}" in listed, listed
        record = chat.wait_job(job, TERMINAL, timeout=opens - time.time() + 90)
        assert record.state == "succeeded", [(s.name, s.detail) for s in record.steps]
        assert record.started_at >= opens - 0.5, "it did not start before the window opened"
        assert stack.lab.machine("node01")["boots"] == 2


def test_a_rollout_reaching_the_windows_end_pauses_and_continues_at_the_next_window() -> None:
    now = int(time.time())
    closes, reopens = now + 30, now + 42
    windows = [window(now - 60, closes), window(reopens, reopens + 600)]
    with Stack(scenario="os-fleet", time_scale=0.05, workers=1, maintenance={"windows": windows}) as stack:
        chat = Chat(stack, timeout=60)
        for name in ("node01", "node02"):
            assert stack.lab.ssh(name, "sudo touch /var/run/reboot-required").returncode == 0
        # node01 stays down after its reboot until it is powered on: past the window's end.
        stack.lab.set_machine_faults("node01", {"bootFails": True})
        thread = chat.ask("reboot --needed", timeout=90)
        assert f"Maintenance window open until {clock(closes)} UTC" in text_of(thread.card())
        job = thread.approve()
        chat.wait_job(job, lambda r: "waiting for its new boot" in (r.steps[0].detail or "") or r.state in TERMINAL,
                      timeout=60)
        chat.wait_for(lambda: time.time() > closes + 1, timeout=60, what="the window's end")
        stack.lab.set_machine_faults("node01", {})
        stack.lab.power("node01", True)
        paused = chat.wait_job(job, ("scheduled", *TERMINAL), timeout=60)
        assert paused.state == "scheduled", [(s.name, s.state, s.detail) for s in paused.steps]
        assert [s.state for s in paused.steps] == ["done", "pending"]
        assert stack.lab.machine("node02")["boots"] == 1
        said = text_of(thread.wait_progress("continues at", timeout=30))
        assert "the maintenance window has closed" in said and time.strftime("%H:%M UTC", time.gmtime(reopens)) \
            in said, said
        record = chat.wait_job(job, TERMINAL, timeout=reopens - time.time() + 90)
        assert record.state == "succeeded", [(s.name, s.detail) for s in record.steps]
        assert record.steps[1].started_at >= reopens - 0.5
        assert stack.lab.machine("node02")["boots"] == 2
