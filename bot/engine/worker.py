"""`kubemaint worker`: an RQ worker for the job queue, plus the sweeper thread that resumes orphaned jobs."""

from __future__ import annotations

import os
import secrets
import socket

from redis import Redis
from rq import Worker
from rq.job import Job

from bot.engine.actions import ResourcesFactory
from bot.engine.audit import configure_logging
from bot.engine.queue import QUEUE_NAME, RUN_JOB
from bot.engine.runner import Timings, WorkerContext, set_worker_context
from bot.engine.sweeper import Sweeper, release_dead_run


def default_worker_name() -> str:
    """Unique per start: RQ refuses a name still registered by a worker that died without cleaning
    up (for about 8 minutes), and a restarted container keeps its hostname and its pid 1."""
    return f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(2)}"


class WorkerQuit(RuntimeError):
    """RQ's loop ended without being asked to (it quits on an unexpected error, such as Redis
    going away at the wrong moment): the process should exit non-zero so a supervisor restarts it."""


def run_worker(redis_url: str, name: str | None = None, burst: bool = False,
               resources_factory: ResourcesFactory | None = None, *, queue_name: str = QUEUE_NAME,
               timings: Timings | None = None, worker_class: type[Worker] = Worker,
               logging_level: str = "INFO") -> bool:
    """Work the job queue until stopped (or, with `burst`, until it is empty); True if any job ran.

    `resources_factory(cluster)` is called once per job run with the job's cluster, in the process that runs
    the job (RQ forks a work horse per job), and its result is the actions' `ctx.resources`; anything in it
    with a `close()` is closed when the run ends. Actions must be registered (their modules imported) before
    this is called.
    """
    configure_logging(logging_level)
    name = name or default_worker_name()
    timings = timings or Timings()
    # The work horse is forked from this process, so it inherits the context (and the registered actions).
    set_worker_context(WorkerContext(name, timings, resources_factory))
    os.environ["KUBEMAINT_REDIS_URL"] = redis_url
    sweeper = Sweeper(Redis.from_url(redis_url), name, timings)
    sweeper.start()
    parent_client = Redis.from_url(redis_url)

    def horse_killed(job: Job, retpid: int, ret_val: int, rusage: object) -> None:
        if job.func_name == RUN_JOB and job.args:
            release_dead_run(parent_client, str(job.args[0]), name, retpid)

    try:
        worker = worker_class([queue_name], connection=Redis.from_url(redis_url), name=name,
                              work_horse_killed_handler=horse_killed)
        worked = worker.work(burst=burst, logging_level=logging_level)
        if not burst and getattr(worker, "_shutdown_requested_date", None) is None:
            raise WorkerQuit(f"the job worker {name} stopped on its own; its log says why")
        return worked
    finally:
        sweeper.stop()
