"""Progress edits stay under Slack's limits however many jobs run."""

from __future__ import annotations

from bot.chat.throttle import EditThrottle


def test_one_edit_per_job_every_three_seconds():
    throttle = EditThrottle(per_job_interval=3.0)
    assert throttle.wait_time("j-1", 100.0) == 0
    throttle.record("j-1", 100.0)
    assert throttle.wait_time("j-1", 101.0) == 2.0
    assert throttle.wait_time("j-2", 101.0) == 0  # another job is not held back
    assert throttle.wait_time("j-1", 103.0) == 0


def test_shared_budget_caps_edits_per_minute_across_jobs():
    throttle = EditThrottle(per_job_interval=0.0, per_minute=45, burst=10)
    now, edits = 0.0, 0
    while now < 120.0:  # simulate two minutes of 100 busy jobs asking every 10 ms
        for job in range(100):
            if throttle.wait_time(f"j-{job}", now) == 0:
                throttle.record(f"j-{job}", now)
                edits += 1
        now += 0.01
    assert edits <= 45 * 2 + 10  # the rate plus the initial burst
    assert edits >= 45 * 2 - 2  # and the budget is actually used


def test_wait_time_says_when_the_budget_refills():
    throttle = EditThrottle(per_job_interval=0.0, per_minute=60, burst=1)
    throttle.record("j-1", 0.0)
    assert abs(throttle.wait_time("j-2", 0.0) - 1.0) < 1e-9
    assert throttle.wait_time("j-2", 1.0) == 0
