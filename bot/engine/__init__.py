"""The job engine: specs, the action registry, the Redis store, locks, the step runner, the queue, the worker and
the audit trail.

Operations import `action`, `StepContext`, `Step`, `JobPaused`; the chat edge imports `submit`, `cancel`,
`pause`, `resume`, `get_job`, `list_jobs`; `kubemaint worker` calls `run_worker`. Nothing here imports the chat
edge, an operation or the lab.
"""

from bot.engine.actions import JobCancelled, JobPaused, Resources, ResourcesFactory, StepContext, action
from bot.engine.ending import Ending, EndKind
from bot.engine.locks import LockBusy, LockHolder, read_locks
from bot.engine.model import JobSpec, Step
from bot.engine.queue import Change, ChangeKind, cancel, pause, resume, submit
from bot.engine.runner import Timings
from bot.engine.store import (
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
    "EVENTS_STREAM", "Change", "ChangeKind", "EndKind", "Ending", "JobCancelled", "JobPaused", "JobRecord",
    "JobSpec", "JobState", "LockBusy", "LockHolder", "Resources", "ResourcesFactory", "Step", "StepContext",
    "StepRecord", "StepState", "Timings", "action", "cancel", "get_job", "list_jobs", "pause", "read_events",
    "read_locks", "resume", "submit",
]
