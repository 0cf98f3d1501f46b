"""Thread pools whose threads all exist before the first burst of work.

`ThreadPoolExecutor.submit` starts a new thread while holding a lock shared by every executor in
the process, and waits for that thread to run. During a burst (twenty commands at once) the pools
grow while the planning threads keep the GIL busy, so each start-up takes milliseconds and every
other submit in the process queues behind it, including the ones that acknowledge Slack.
Starting the threads up front keeps submit cheap.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


def prestart(executor: ThreadPoolExecutor, threads: int) -> ThreadPoolExecutor:
    """Make `executor` start `threads` threads now (`threads` must not exceed its max_workers)."""
    # Every task waits for all the others, so no thread can take a second task: `threads` tasks
    # need `threads` distinct threads.
    barrier = threading.Barrier(threads + 1)
    futures = [executor.submit(barrier.wait, 10) for _ in range(threads)]
    barrier.wait(10)
    for future in futures:
        future.result()
    return executor


def started_pool(threads: int, name: str) -> ThreadPoolExecutor:
    return prestart(ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name), threads)
