"""jobs, job ID, cancel ID, pause ID, resume ID: reading and steering the job queue."""

from __future__ import annotations

from dataclasses import dataclass

from bot.contract import OPERATORS, READ_ONLY, Asking, NoOptions, Operation
from bot.contract.reports import change_text, job_view, jobs_text, node_commands_text, progress_text
from bot.domain.text import MAX_MESSAGE_CHARS, clip
from bot.engine import cancel, get_job, list_jobs, pause, resume
from bot.engine.node_output import node_outputs

RECENT_JOBS = 15


@dataclass(frozen=True)
class JobIdOptions:
    job_id: str


def answer_jobs(asking: Asking, options: NoOptions) -> str:
    records = list_jobs(asking.resources["redis"], limit=RECENT_JOBS)
    return jobs_text([job_view(record, asking.now) for record in records])


def answer_job(asking: Asking, options: JobIdOptions) -> str:
    redis = asking.resources["redis"]
    record = get_job(redis, options.job_id)
    if record is None:
        return f"No job {options.job_id}: it does not exist or has expired (see `jobs`)."
    text = progress_text(job_view(record, asking.now))
    commands = node_outputs(redis, options.job_id)
    return clip(f"{text}\n{node_commands_text(commands)}", MAX_MESSAGE_CHARS) if commands else text


def answer_cancel(asking: Asking, options: JobIdOptions) -> str:
    return change_text(cancel(asking.resources["redis"], options.job_id, by=asking.user))


def answer_pause(asking: Asking, options: JobIdOptions) -> str:
    return change_text(pause(asking.resources["redis"], options.job_id, by=asking.user))


def answer_resume(asking: Asking, options: JobIdOptions) -> str:
    # The steps re-check the world before acting, so resuming a stale job is safe.
    return change_text(resume(asking.resources["redis"], options.job_id, by=asking.user))


JOBS = Operation(name="jobs", words="jobs", policy=READ_ONLY, needs=("redis",),
                 description="list recent and running jobs", answer=answer_jobs)
JOB = Operation(name="job", words="job JOB_ID", options=JobIdOptions, policy=READ_ONLY, needs=("redis",),
                description="show the steps and progress of one job", answer=answer_job)
CANCEL = Operation(name="cancel", words="cancel JOB_ID", options=JobIdOptions, policy=OPERATORS, needs=("redis",),
                   description="stop a running job at its next safe point; drop a queued, scheduled or paused one",
                   answer=answer_cancel)
PAUSE = Operation(name="pause", words="pause JOB_ID", options=JobIdOptions, policy=OPERATORS, needs=("redis",),
                  description="pause a running job at its next safe point, releasing its locks; resume continues it",
                  answer=answer_pause)
RESUME = Operation(name="resume", words="resume JOB_ID", options=JobIdOptions, policy=OPERATORS, needs=("redis",),
                   description="continue a failed, halted or paused job from the step where it stopped, or start a "
                               "scheduled one now", answer=answer_resume)
