"""Pools start all their threads up front, so a burst of work never starts threads mid-burst."""

from __future__ import annotations

import threading

from bot.chat.threads import started_pool


def test_a_started_pool_has_all_its_threads_before_the_first_task():
    before = threading.active_count()
    pool = started_pool(8, "test-pool")
    try:
        assert threading.active_count() - before == 8
        names = {t.name for t in threading.enumerate() if t.name.startswith("test-pool")}
        assert len(names) == 8
        # A burst of submissions reuses those threads instead of starting new ones.
        gate = threading.Barrier(9)
        futures = [pool.submit(gate.wait, 10) for _ in range(8)]
        gate.wait(10)
        assert all(f.result(10) is not None for f in futures)
        assert threading.active_count() - before == 8
    finally:
        pool.shutdown(wait=True)
