"""What people read about jobs, written in one place: the progress checklist, the job list, how a
job ended (done, not done, why, what to type next), when a paused or scheduled job goes on, and the
answers to `cancel`, `pause` and `resume`.

The engine records states and `Ending`s as data; everything here is pure: records in, text out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bot.domain.text import MAX_LINE_CHARS, MAX_MESSAGE_CHARS, clip, duration, escape, fit
from bot.engine.ending import Ending, EndKind
from bot.engine.locks import describe_target, format_since
from bot.engine.queue import Change, ChangeKind
from bot.engine.store import ACTIVE_STATES, JobRecord, JobState, StepRecord, StepState

_STEP_MARKS: dict[str, str] = {"pending": "▫️", "running": "⏳", "done": "✅", "failed": "❌", "skipped": "⏭️"}
_JOB_MARKS: dict[str, str] = {
    "queued": "🕒", "running": "⏳", "succeeded": "✅", "failed": "❌", "cancelled": "🚫", "halted": "⏸️",
    "paused": "⏸️", "scheduled": "🕘",
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
    starts: str = ""  # while scheduled: "starts Thu 09:00 UTC" (or "continues ..." after a pause)
    cluster: str = ""  # named in bold when several clusters are configured

    def __post_init__(self) -> None:
        # Accept plain (name, state, seconds, detail) tuples from callers.
        object.__setattr__(self, "steps", tuple(StepView(*step) for step in self.steps))


def job_view(record: JobRecord, now: float) -> JobView:
    """A job as its progress message shows it at `now`."""
    started = record.started_at or record.queued_at or record.spec.created_at
    over = record.state not in ACTIVE_STATES
    end = record.finished_at if over and record.finished_at else now
    if record.state == JobState.SCHEDULED and not record.started_at:
        end = started  # waiting for its first start: no time spent yet
    steps = [StepView(s.name, str(s.state), None if s.started_at is None else (s.finished_at or now) - s.started_at,
                      s.detail) for s in record.steps]
    if record.state in (JobState.FAILED, JobState.HALTED, JobState.PAUSED):
        next_command = f"resume {record.id}"  # the result line says what was done and the other way out
    elif record.state == JobState.SUCCEEDED:
        next_command = record.spec.next_command
    elif record.state in (JobState.CANCELLED, JobState.SCHEDULED):
        next_command = None  # a scheduled job's line names both ways: start it now or drop it
    else:
        next_command = f"cancel {record.id}"
    result = ending_text(record) if over else ""  # while it runs, the checklist says where it stands
    starts = ""
    if record.state == JobState.SCHEDULED:
        result = scheduled_text(record, now)
        if record.start_at is not None:
            verb = "continues" if _window_pause(record) else "starts"
            starts = f"{verb} {_moment(record.start_at, now)}"
    if record.state == JobState.SUCCEEDED and steps and steps[-1].detail:
        result = steps[-1].detail  # "node01 cordoned" says more than "all steps done"
    return JobView(record.id, record.spec.command_text, str(record.state), tuple(steps), max(0.0, end - started),
                   result, next_command, waiting_for_worker(record, now), starts, record.spec.cluster)


WORKER_LOST_AFTER = 15.0  # seconds without a heartbeat before a running job's message says its worker is lost


def waiting_for_worker(record: JobRecord, now: float) -> str:
    """Why a job that should be moving is not: its worker is gone and none has taken it over yet."""
    lost_at = record.alive_at or record.started_at
    if record.state == JobState.RUNNING and lost_at and now - lost_at > WORKER_LOST_AFTER:
        return f"worker lost at {_clock(lost_at)}, waiting for a worker to resume it"
    if record.state == JobState.QUEUED and record.recoveries and lost_at:
        return f"worker lost at {_clock(lost_at)}, waiting for a worker to resume it"
    if record.state == JobState.SCHEDULED and record.start_at and now - record.start_at > WORKER_LOST_AFTER:
        return f"due at {_clock(record.start_at)}, waiting for a worker to queue it"
    return ""


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def _moment(epoch: float, reference: float) -> str:
    """A time people plan by: `Thu 09:00 UTC` within the six days after `reference`, with the date beyond
    (or before it)."""
    if 0 <= epoch - reference < 6 * 86400:
        return time.strftime("%a %H:%M UTC", time.gmtime(epoch))
    return time.strftime("%a %Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _window_pause(record: JobRecord) -> bool:
    """Scheduled because a step paused it until a time (not a first start)."""
    return record.ending is not None and record.ending.kind == EndKind.PAUSED


def _locks_released(record: JobRecord) -> str:
    targets = [describe_target(t) for t in record.spec.locks]
    if not targets:
        return ""
    if len(targets) == 1:
        return f" Its lock on {targets[0]} is released meanwhile."
    return f" Its locks on {', '.join(targets[:-1])} and {targets[-1]} are released meanwhile."


def scheduled_text(record: JobRecord, now: float, *, countdown: bool = True) -> str:
    """Where a scheduled job stands at `now`: when it starts (or continues after a pause), how long until then
    (with `countdown`) and the two ways out."""
    job = record.id
    start_at = record.start_at if record.start_at is not None else now
    when = _moment(start_at, now)
    due = ""
    if countdown:
        due = f"in {duration(start_at - now)}" if start_at > now else "due: waiting for a worker to queue it"
    if _window_pause(record):
        ending = record.ending
        head = "⏸ Paused" + (f" by {ending.by}" if ending.by else "") + (f": {ending.reason}" if ending.reason else "")
        due = f", {due}" if due else ""
        return (f"{head}; continues at {when}{due} (`resume {job}` now, `cancel {job}` stops it)."
                f"{_locks_released(record)}")
    due = f" ({due})" if due else ""
    return f"🕘 Starts at {when}{due}: `resume {job}` starts it now, `cancel {job}` drops it."


def queued_view(job_id: str, command_text: str, step_names: Iterable[str], start_at: float | None = None,
                cluster: str = "") -> JobView:
    """The message posted the moment a job is queued (or scheduled, to start at `start_at`)."""
    steps = tuple(StepView(name, "pending") for name in step_names)
    now = time.time()
    if start_at is not None and start_at > now:
        return JobView(job_id, command_text, "scheduled", steps, starts=f"starts {_moment(start_at, now)}",
                       cluster=cluster)
    return JobView(job_id, command_text, "queued", steps, cluster=cluster)


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
        was = "while it was paused" if ending.was == JobState.PAUSED else f"after it {ending.was}"
        return f"Aborted by {ending.by} {was}: it will not be resumed. Done: {done}. Skipped: {skipped}."
    if ending.kind == EndKind.PAUSED:
        return _paused_text(record, ending)
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


def _paused_text(record: JobRecord, ending: Ending) -> str:
    """A job paused at a safe point: where, by whom or why, how it goes on, and that its locks are free."""
    job, names = record.id, [s.name for s in record.steps]
    if record.state == JobState.SCHEDULED and ending.until:
        return scheduled_text(record, record.updated_at or ending.until, countdown=False)
    index = names.index(ending.step) if ending.step in names else 0
    before = [s for s in record.steps[:index] if s.state == StepState.DONE]
    if ending.during:
        where, goes_on = f"during '{ending.step}'", f"'{ending.step}' from its checkpoint"
    elif before:
        where, goes_on = f"after '{before[-1].name}'", f"with '{ending.step}'"
    else:
        where, goes_on = f"before '{ending.step}'", f"with '{ending.step}'"
    head = "⏸ Paused" + (f" by {ending.by}" if ending.by else "") + f" {where}"
    head += f": {ending.reason}." if ending.reason else ":"
    return f"{head} `resume {job}` continues {goes_on}, `cancel {job}` stops it.{_locks_released(record)}"


def change_text(change: Change) -> str:
    """The reply to `cancel ID`, `pause ID` or `resume ID`."""
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
    if change.kind in (ChangeKind.CANCELLED, ChangeKind.PAUSED):
        return f"{job} ({command}): {ending_text(record)}"
    if change.kind == ChangeKind.PAUSE_REQUESTED:
        current = f" (now in step '{record.current_step}')" if record.current_step else ""
        return (f"Pausing {job} ({command}){current}: it pauses at the next safe point, once the current step is "
                f"done (a rollout step stops between nodes); then `resume {job}` continues it.")
    if change.kind == ChangeKind.PAUSE_ALREADY_REQUESTED:
        return (f"Pause of {job} ({command}) was already requested by {record.pause_requested_by}; "
                "it pauses at the next safe point.")
    if change.kind == ChangeKind.PAUSE_WITHDRAWN:
        return f"{job} ({command}) goes on: the pause {record.pause_requested_by} asked for is withdrawn."
    if change.kind == ChangeKind.NOT_PAUSABLE:
        return f"Cannot pause {job} ({command}): {_why_not_pausable(record)}."
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
    if change.state_before == JobState.SCHEDULED and not record.steps_in(StepState.DONE):
        planned = f" instead of at {_moment(record.start_at, record.updated_at or 0)}" if record.start_at else ""
        return f"Starting {job} ({command}) now{planned}."
    return f"Resuming {job} ({command}): done steps are kept; it continues at '{next_step}'."


def _why_not_pausable(record: JobRecord) -> str:
    job, state = record.id, record.state
    if state == JobState.RUNNING:
        return (f"a cancel was already requested by {record.cancel_requested_by}; it stops at the next safe "
                "point")
    if state == JobState.PAUSED:
        return f"it is already paused: `resume {job}` continues it, `cancel {job}` stops it"
    if state == JobState.SCHEDULED:
        when = _moment(record.start_at, record.updated_at or 0) if record.start_at else "later"
        if _window_pause(record):
            return f"it is already paused until {when}: `resume {job}` continues it now, `cancel {job}` stops it"
        return f"it has not started; it starts at {when}: `cancel {job}` drops it"
    if state in (JobState.FAILED, JobState.HALTED):
        return f"it is not running (it {state}): `resume {job}` continues it, `cancel {job}` abandons it"
    if state == JobState.SUCCEEDED:
        return "it already succeeded"
    return f"it is {state}, nothing is left to pause"


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


def cluster_tag(cluster: str) -> str:
    """How messages name the cluster: in bold, first; nothing for the one cluster of a configuration
    without `clusters`."""
    return f"*{escape(cluster)}* · " if cluster else ""


def progress_text(job: JobView) -> str:
    """The one thread message per job, edited in place: a checklist plus where it stands."""
    header = (f"{_JOB_MARKS.get(job.state, '•')} Job `{escape(job.job_id)}` · {cluster_tag(job.cluster)}"
              f"`{escape(job.command_text)}` · {job.state}")
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
        f"{_JOB_MARKS.get(job.state, '•')} `{escape(job.job_id)}` {cluster_tag(job.cluster)}"
        f"`{escape(job.command_text)}` · {job.state}"
        + (f", {job.starts}" if job.starts else f" · {duration(job.elapsed_seconds)}")
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
        # Their result lines start with their own mark and say how the job goes on.
        "paused": escape(job.result) or "⏸ Paused",
        "scheduled": escape(job.result) or "🕘 Scheduled",
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
