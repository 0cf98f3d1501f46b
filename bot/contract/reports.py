"""What people read about jobs, written in one place: the progress checklist, the job list, how a
job ended (done, not done, why, what to type next) and the answers to `cancel` and `resume`.

The engine records states and `Ending`s as data; everything here is pure: records in, text out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bot.domain.text import MAX_LINE_CHARS, MAX_MESSAGE_CHARS, clip, duration, escape, fit
from bot.engine.ending import Ending, EndKind
from bot.engine.locks import format_since
from bot.engine.queue import Change, ChangeKind
from bot.engine.store import ACTIVE_STATES, JobRecord, JobState, StepRecord, StepState

_STEP_MARKS: dict[str, str] = {"pending": "▫️", "running": "⏳", "done": "✅", "failed": "❌", "skipped": "⏭️"}
_JOB_MARKS: dict[str, str] = {
    "queued": "🕒", "running": "⏳", "succeeded": "✅", "failed": "❌", "cancelled": "🚫", "halted": "⏸️",
}


class StepView(NamedTuple):
    name: str
    state: str
    seconds: float | None = None  # how long it took (or has been running)
    detail: str = ""  # e.g. "3 pods left", or why it failed


@dataclass(frozen=True)
class JobView:
    """What a progress message shows about a job."""

    job_id: str
    command_text: str
    state: str
    steps: tuple[StepView, ...] = ()
    elapsed_seconds: float = 0.0
    result: str = ""  # final one-liner, e.g. "node01 cordoned" or why it stopped
    next_command: str | None = None  # what to type next, e.g. "uncordon node01" or a resume command
    waiting: str = ""  # while queued or running: why nothing moves ("worker lost at 12:03, ...")

    def __post_init__(self) -> None:
        # Accept plain (name, state, seconds, detail) tuples from callers.
        object.__setattr__(self, "steps", tuple(StepView(*step) for step in self.steps))


def job_view(record: JobRecord, now: float) -> JobView:
    """A job as its progress message shows it at `now`."""
    started = record.started_at or record.queued_at or record.spec.created_at
    over = record.state not in ACTIVE_STATES
    end = record.finished_at if over and record.finished_at else now
    steps = [StepView(s.name, str(s.state), None if s.started_at is None else (s.finished_at or now) - s.started_at,
                      s.detail) for s in record.steps]
    if record.state in (JobState.FAILED, JobState.HALTED):
        next_command = f"resume {record.id}"  # the result line says what was done and the other way out
    elif record.state == JobState.SUCCEEDED:
        next_command = record.spec.next_command
    elif record.state == JobState.CANCELLED:
        next_command = None
    else:
        next_command = f"cancel {record.id}"
    result = ending_text(record) if over else ""  # while it runs, the checklist says where it stands
    if record.state == JobState.SUCCEEDED and steps and steps[-1].detail:
        result = steps[-1].detail  # "node01 cordoned" says more than "all steps done"
    return JobView(record.id, record.spec.command_text, str(record.state), tuple(steps), max(0.0, end - started),
                   result, next_command, waiting_for_worker(record, now))


WORKER_LOST_AFTER = 15.0  # seconds without a heartbeat before a running job's message says its worker is lost


def waiting_for_worker(record: JobRecord, now: float) -> str:
    """Why a job that should be moving is not: its worker is gone and none has taken it over yet."""
    lost_at = record.alive_at or record.started_at
    if record.state == JobState.RUNNING and lost_at and now - lost_at > WORKER_LOST_AFTER:
        return f"worker lost at {_clock(lost_at)}, waiting for a worker to resume it"
    if record.state == JobState.QUEUED and record.recoveries and lost_at:
        return f"worker lost at {_clock(lost_at)}, waiting for a worker to resume it"
    return ""


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def queued_view(job_id: str, command_text: str, step_names: Iterable[str]) -> JobView:
    """The message posted the moment a job is queued."""
    return JobView(job_id, command_text, "queued", tuple(StepView(name, "pending") for name in step_names))


# --- how a job ended ------------------------------------------------------------------------------


def _names(steps: Iterable[StepRecord]) -> str:
    return ", ".join(f"'{s.name}'" for s in steps) or "none"


def ending_text(record: JobRecord) -> str:
    """The final word on a job's last run: what happened, what was done and not, and the way on."""
    ending = record.ending or Ending(EndKind.SUCCEEDED if record.state == JobState.SUCCEEDED else EndKind.FAILED,
                                     reason="no record of how it ended")
    job, steps = record.id, record.steps
    done = _names(record.steps_in(StepState.DONE))
    not_done = _names(record.steps_not_done())
    skipped = _names(record.steps_in(StepState.SKIPPED))
    names = [s.name for s in steps]
    if ending.kind == EndKind.SUCCEEDED:
        return f"Succeeded: all {len(steps)} steps done."
    if ending.kind == EndKind.FAILED:
        index = names.index(ending.step) + 1 if ending.step in names else 0
        return (f"Failed at step {index}/{len(steps)} '{ending.step}': {ending.reason}. Done: {done}. "
                f"Not done: {not_done}. Fix the cause, then `resume {job}` to continue from '{ending.step}' "
                f"(done steps are not repeated), or `cancel {job}` to abandon it.")
    if ending.kind == EndKind.NOT_STARTED:
        changed = "Nothing was changed" if done == "none" else f"Done earlier: {done}"
        return (f"Not started: {ending.reason}. {changed}; not done: {not_done}. "
                f"`resume {job}` to try again, or `cancel {job}` to drop it.")
    if ending.kind == EndKind.CANCELLED:
        where = "during" if ending.during else "before"
        return (f"Cancelled by {ending.by or 'request'} at a safe point {where} step '{ending.step}'. "
                f"Done: {done}. Skipped: {skipped}.")
    if ending.kind == EndKind.CANCELLED_QUEUED:
        if done == "none":
            return f"Cancelled by {ending.by} before it started: nothing was changed."
        return f"Cancelled by {ending.by} while waiting to resume. Done: {done}. Skipped: {skipped}."
    if ending.kind == EndKind.ABORTED:
        return (f"Aborted by {ending.by} after it {ending.was}: it will not be resumed. Done: {done}. "
                f"Skipped: {skipped}.")
    if ending.kind == EndKind.LOST_LOCK:
        targets = ", ".join(ending.targets)
        return (f"Halted at a safe point {'during' if ending.during else 'before'} step '{ending.step}': "
                f"lost the lock on {targets} (it could not be refreshed in time, so another job may hold it). "
                f"Done: {done}. Not done: {not_done}. Check {targets}, then "
                f"`resume {job}` to continue from '{ending.step}', or `cancel {job}`.")
    if ending.kind == EndKind.STATE_LOST:
        where = f" during step '{ending.step}'" if ending.step else ""
        return (f"Halted: kubemaint's Redis lost its data{where} (it restarted without it); the job was written "
                f"back from its worker's memory. Done: {done}. Not done: {not_done}. `resume {job}` continues "
                f"from '{ending.step or 'the first step not done'}' (the steps check the cluster first), or "
                f"`cancel {job}` drops it.")
    where = f"during step '{ending.step}'" if ending.step else "before its first step"
    return (f"Halted: the worker died {where} {ending.deaths} times in a row (last: {ending.worker}), so it "
            f"will not be retried automatically. Done: {done}. Not done: {not_done}. Check the worker logs and "
            f"the target, then `resume {job}` or `cancel {job}`.")


def change_text(change: Change) -> str:
    """The reply to `cancel ID` or `resume ID`."""
    job, record = change.job_id, change.record
    if change.kind == ChangeKind.NOT_A_JOB_ID:
        return f"{job!r} is not a job id: job ids look like j-1a2b3c4d (see `jobs`)."
    if change.kind == ChangeKind.UNKNOWN or record is None:
        return f"No job {job}: it does not exist or has expired (see `jobs`)."
    command = record.spec.command_text
    if change.kind == ChangeKind.ALREADY_REQUESTED:
        return (f"Cancel of {job} ({command}) was already requested by {record.cancel_requested_by}; "
                "it stops at the next safe point.")
    if change.kind == ChangeKind.CANCEL_REQUESTED:
        current = f" (now in step '{record.current_step}')" if record.current_step else ""
        return f"Cancelling {job} ({command}){current}: it stops at the next safe point and skips the remaining steps."
    if change.kind == ChangeKind.CANCELLED:
        return f"{job} ({command}): {ending_text(record)}"
    if change.kind == ChangeKind.ALREADY_OVER:
        when = f" at {format_since(record.finished_at)}" if record.finished_at else ""
        return f"{job} ({command}) already {record.state}{when}: nothing to cancel."
    if change.kind == ChangeKind.NOT_RESUMABLE:
        why = {
            JobState.QUEUED: "it is already queued",
            JobState.RUNNING: "it is running",
            JobState.SUCCEEDED: "it already succeeded",
            JobState.CANCELLED: "it was cancelled; run the command again for a new job",
        }.get(JobState(record.state), f"it is {record.state}")
        return f"Cannot resume {job} ({command}): {why}."
    next_step = next((s.name for s in record.steps_not_done()), None)
    return f"Resuming {job} ({command}): done steps are kept; it continues at '{next_step}'."


def lost_job_text(job_id: str, command: str, *, kept: bool, now: list[str], undo: str | None) -> str:
    """What a thread is told when Redis lost its data while its job was not finished: what
    happened, what is true now, and the commands to finish or undo."""
    if kept:
        what = ("its worker wrote the job back, halted, from its own memory. "
                f"To finish: `resume {job_id}` (done steps are kept; the next one checks the cluster first).")
    else:
        what = f"kubemaint no longer knows this job. To finish: ask again, `{command}`."
    lines = [f"⚠️ kubemaint's Redis lost its data (it restarted without it) before job `{job_id}` "
             f"(`{escape(command)}`) finished: {what}"]
    if now:
        lines.append("Now: " + " ".join(escape(line) for line in now))
    if undo:
        lines.append(f"To undo: `{escape(undo)}`.")
    return "\n".join(lines)


# --- rendering ------------------------------------------------------------------------------------


def progress_text(job: JobView) -> str:
    """The one thread message per job, edited in place: a checklist plus where it stands."""
    header = f"{_JOB_MARKS.get(job.state, '•')} Job `{escape(job.job_id)}` · `{escape(job.command_text)}` · {job.state}"
    footer = [_final_line(job)]
    if job.next_command:
        footer.append(f"Next: `{escape(job.next_command)}`")
    budget = MAX_MESSAGE_CHARS - len(header) - sum(len(line) + 1 for line in footer) - 2
    steps = _checklist(list(job.steps), budget)
    return "\n".join([header, *steps, *footer])


def jobs_text(jobs: Sequence[JobView]) -> str:
    """The answer to `jobs`: one line per job, newest first as given."""
    if not jobs:
        return "No jobs yet."
    lines = [
        f"{_JOB_MARKS.get(job.state, '•')} `{escape(job.job_id)}` `{escape(job.command_text)}` · {job.state}"
        f" · {duration(job.elapsed_seconds)}"
        for job in jobs
    ]
    return "\n".join(["*Jobs*", *fit(lines, MAX_MESSAGE_CHARS - 10, "jobs")])


def _step_line(step: StepView) -> str:
    line = f"{_STEP_MARKS.get(step.state, '•')} {escape(step.name)}"
    if step.seconds is not None and step.state != "pending":
        line += f" ({duration(step.seconds)})"
    if step.detail:
        line += f" — {escape(step.detail)}"
    return clip(line)


def _checklist(steps: list[StepView], budget: int) -> list[str]:
    lines = [_step_line(step) for step in steps]
    total = sum(len(line) + 1 for line in lines)
    # Too long: fold finished steps at the top into one line, so the current step stays visible.
    finished = 0
    while total > budget and finished < len(steps) and steps[finished].state in ("done", "skipped"):
        total -= len(lines[finished]) + 1
        finished += 1
    if finished:
        lines = [f"✅ {finished} earlier step{'s' if finished != 1 else ''} finished", *lines[finished:]]
    return fit(lines, budget, "steps")


def _final_line(job: JobView) -> str:
    took = duration(job.elapsed_seconds)
    result = f": {escape(job.result)}" if job.result else ""
    if job.waiting and job.state in ("queued", "running"):
        return clip(f"⚠️ {escape(job.waiting[0].upper() + job.waiting[1:])} (for {took})", limit=MAX_LINE_CHARS * 2)
    summary = {
        "queued": f"Queued, waiting for a worker{result}",
        "running": f"Running for {took}{result}",
        "succeeded": f"*Succeeded* in {took}{result}",
        "failed": f"*Failed* after {took}{result}",
        "cancelled": f"*Cancelled* after {took}{result}",
        "halted": f"*Halted* after {took}{result}",
    }.get(job.state, f"{job.state} after {took}{result}")
    return clip(summary, limit=MAX_LINE_CHARS * 2)


NODE_COMMANDS_SHOWN = 5


def node_commands_text(entries: Sequence[dict]) -> str:
    """The job's last node commands (bot/engine/node_output.py): where, what, how it ended, and the last
    line each printed (already redacted by bot/nodes)."""
    shown = entries[-NODE_COMMANDS_SHOWN:]
    more = f" (last {len(shown)} of {len(entries)})" if len(entries) > len(shown) else ""
    lines = [f"*Node commands*{more}:"]
    for entry in shown:
        code = entry.get("exit_code")
        ended = entry.get("outcome") if code is None else f"exit {code}"
        took = f" in {entry['duration_s']:.1f}s" if isinstance(entry.get("duration_s"), int | float) else ""
        lines.append(clip(f"• {escape(entry.get('node', '?'))} `{escape(entry.get('command', '?'))}` → "
                          f"{escape(str(ended))}{took}", MAX_LINE_CHARS))
        said = (entry.get("stderr_tail") or "").strip() or (entry.get("stdout_tail") or "").strip()
        if said:
            lines.append(clip(f"    {escape(said.splitlines()[-1])}", MAX_LINE_CHARS))
    return "\n".join(lines)


def slot_text(slot: float) -> str:
    """A schedule's slot as people read it: `2026-12-01 06:00 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(slot))


def scheduled_failure_text(job: JobView, slot: float) -> str:
    """Posted to the schedule's channel when a scheduled job fails or halts: its checklist says what was done
    and the next line how to resume it."""
    return f"⚠️ The scheduled `{escape(job.command_text)}` of {slot_text(slot)} failed.\n" + progress_text(job)


def scheduled_not_started_text(command_text: str, slot: float, reason: str) -> str:
    """Posted to the schedule's channel when a scheduled command could not even be queued."""
    return (f"⚠️ The scheduled `{escape(command_text)}` of {slot_text(slot)} did not start: "
            f"{clip(escape(reason), MAX_LINE_CHARS)}. It runs again at the next slot; to run it now, type "
            f"`{escape(command_text)}`.")
