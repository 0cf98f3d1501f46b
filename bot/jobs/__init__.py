"""The job engine: specs, the action registry, the Redis store, locks, the step runner, the queue and the worker.

The bot side imports `submit`, `cancel`, `resume`, `get_job`, `list_jobs`; handlers import `action`,
`StepContext` and `Step`; `kubemaint worker` calls `run_worker`. Nothing here imports the bot or the lab.
"""

from bot.jobs.actions import JobCancelled, Resources, ResourcesFactory, StepContext, action
from bot.jobs.locks import LockBusy, LockHolder, read_locks
from bot.jobs.model import JobSpec, Step, new_job_id
from bot.jobs.queue import Outcome, cancel, resume, submit
from bot.jobs.runner import Timings
from bot.jobs.store import (
    EVENTS_STREAM,
    JobRecord,
    JobState,
    StepRecord,
    StepState,
    get_job,
    list_jobs,
    read_events,
)

__all__ = [
    "EVENTS_STREAM", "JobCancelled", "JobRecord", "JobSpec", "JobState", "LockBusy", "LockHolder", "Outcome",
    "Resources", "ResourcesFactory", "Step", "StepContext", "StepRecord", "StepState", "Timings", "action",
    "cancel", "get_job", "list_jobs", "new_job_id", "read_events", "read_locks", "resume", "submit",
]
