"""What people see in Slack: Block Kit cards (slack_sdk models) and message texts.

Everything here is pure: data in, blocks or mrkdwn text out. Text that came from the cluster or
from handlers is Slack-escaped (`&`, `<`, `>`) so it cannot ping `@channel` or forge links, and
every message stays under `MAX_MESSAGE_CHARS` (Slack's practical limit is about 4,000), with
"… and N more" where something had to go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.approvals import ApprovalRequest, clock_time, outcome
from bot.skew import SkewWarning

MAX_MESSAGE_CHARS = 3900
_MAX_SECTION_CHARS = 2900  # Block Kit rejects section text over 3,000
_MAX_LINE_CHARS = 300  # one runaway error detail must not crowd out the rest
APPROVE_ACTION_ID = "approve"
DENY_ACTION_ID = "deny"

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "halted"]
StepState = Literal["pending", "running", "done", "failed", "skipped"]

_STEP_MARKS: dict[str, str] = {"pending": "▫️", "running": "⏳", "done": "✅", "failed": "❌", "skipped": "⏭️"}
_JOB_MARKS: dict[str, str] = {
    "queued": "🕒", "running": "⏳", "succeeded": "✅", "failed": "❌", "cancelled": "🚫", "halted": "⏸️",
}


def escape(text: str) -> str:
    """Slack's three control characters as entities; everything else (mrkdwn, emoji) stays."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- approval cards ------------------------------------------------------------------------------


def approval_card(request: ApprovalRequest, plan_lines: Sequence[str]) -> list[dict]:
    """The card an approver acts on: who asked, the command, the plan, Approve and Deny."""
    approve = ButtonElement(
        text="Approve",
        action_id=APPROVE_ACTION_ID,
        value=request.id,
        style="primary",
        confirm=ConfirmObject(
            title="Approve this command?",
            text=(
                f"<@{request.requester}> will run `{escape(request.command_text)}`. "
                "The plan is checked again before anything changes."
            ),
            confirm="Approve",
            deny="Back",
        ),
    )
    deny = ButtonElement(text="Deny", action_id=DENY_ACTION_ID, value=request.id, style="danger")
    needs = f"{request.approvals_needed} approval{'s' if request.approvals_needed != 1 else ''}"
    status = f"Needs {needs}, expires at {clock_time(request.expires_at)}"
    if request.approvals:
        approved_by = ", ".join(f"<@{user}>" for user in request.approvers)
        status += f" · {len(request.approvals)} of {request.approvals_needed} so far: {approved_by}"
    blocks: list[Block] = [
        _section(f"<@{request.requester}> asks to run `{escape(request.command_text)}`"),
        _section(_plan_text(plan_lines)),
        ContextBlock(elements=[MarkdownTextObject(text=f"{status} · request `{escape(request.id)}`")]),
        ActionsBlock(block_id=f"approval:{request.id}", elements=[approve, deny]),
    ]
    return [block.to_dict() for block in blocks]


def decided_card(request: ApprovalRequest, plan_lines: Sequence[str], now: float) -> list[dict]:
    """The same card once decided or expired: no buttons, the outcome on top."""
    state = request.state(now)
    if state == "expired":
        headline = f"⌛ *Expired* at {clock_time(request.expires_at)} without a decision"
    elif state == "pending":
        headline = "⏳ *Waiting for approval*"
    else:
        mark = "✅" if state == "approved" else "↩️" if request.withdrawn else "❌"
        said = outcome(request)
        headline = f"{mark} {said[0].upper()}{said[1:]}"
    blocks: list[Block] = [
        _section(headline),
        _section(f"<@{request.requester}> asked to run `{escape(request.command_text)}`"),
        _section(_plan_text(plan_lines)),
        ContextBlock(elements=[MarkdownTextObject(text=f"request `{escape(request.id)}`")]),
    ]
    return [block.to_dict() for block in blocks]


def approval_fallback_text(request: ApprovalRequest) -> str:
    """Plain text for notifications and clients that cannot show blocks."""
    return f"<@{request.requester}> asks to run `{escape(request.command_text)}`: approval needed"


def _plan_text(plan_lines: Sequence[str]) -> str:
    if not plan_lines:
        return "*Plan*\nNothing to do."
    lines = [f"• {_line(escape(line))}" for line in plan_lines]
    return "*Plan*\n" + "\n".join(_fit(lines, _MAX_SECTION_CHARS - 10, "steps"))


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=_clip(text, _MAX_SECTION_CHARS)))


# --- job progress ------------------------------------------------------------------------------------


class StepView(NamedTuple):
    name: str
    state: StepState
    seconds: float | None = None  # how long it took (or has been running)
    detail: str = ""  # e.g. "3 pods left", or why it failed


@dataclass(frozen=True)
class JobView:
    """What a progress message shows about a job; built by the bot from the job's events."""

    job_id: str
    command_text: str
    state: JobState
    steps: tuple[StepView, ...] = ()
    elapsed_seconds: float = 0.0
    result: str = ""  # final one-liner, e.g. "node01 cordoned" or why it stopped
    next_command: str | None = None  # what to type next, e.g. "uncordon node01" or a resume command

    def __post_init__(self) -> None:
        # Accept plain (name, state, seconds, detail) tuples from callers.
        object.__setattr__(self, "steps", tuple(StepView(*step) for step in self.steps))


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
    return "\n".join(["*Jobs*", *_fit(lines, MAX_MESSAGE_CHARS - 10, "jobs")])


def duration(seconds: float) -> str:
    """`0.4s`, `12s`, `1m 05s`, `2h 03m`: precise when short, readable when long."""
    if round(seconds, 1) < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _step_line(step: StepView) -> str:
    line = f"{_STEP_MARKS.get(step.state, '•')} {escape(step.name)}"
    if step.seconds is not None and step.state != "pending":
        line += f" ({duration(step.seconds)})"
    if step.detail:
        line += f" — {escape(step.detail)}"
    return _line(line)


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
    return _fit(lines, budget, "steps")


def _final_line(job: JobView) -> str:
    took = duration(job.elapsed_seconds)
    result = f": {escape(job.result)}" if job.result else ""
    summary = {
        "queued": f"Queued, waiting for a worker{result}",
        "running": f"Running for {took}{result}",
        "succeeded": f"*Succeeded* in {took}{result}",
        "failed": f"*Failed* after {took}{result}",
        "cancelled": f"*Cancelled* after {took}{result}",
        "halted": f"*Halted* after {took}{result}",
    }.get(job.state, f"{job.state} after {took}{result}")
    return _line(summary, limit=_MAX_LINE_CHARS * 2)


# --- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: bool
    schedulable: bool
    roles: tuple[str, ...]
    kubelet: str
    pods: int


@dataclass(frozen=True)
class ComponentView:
    component: str  # "kube-apiserver"
    where: str  # the control-plane node it runs on
    version: str


def status_text(nodes: Sequence[NodeView], components: Sequence[ComponentView], warnings: Sequence[SkewWarning]) -> str:
    """The answer to `status`: a node table, control-plane versions, then skew warnings."""
    ready = sum(node.ready for node in nodes)
    cordoned = sum(not node.schedulable for node in nodes)
    pods = sum(node.pods for node in nodes)
    summary = (
        f"*Cluster status*: {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
        f"({ready} ready, {cordoned} cordoned), {pods} pod{'s' if pods != 1 else ''}"
    )
    parts = [summary, _node_table(nodes, budget=2000)]
    if components:
        lines = [f"• {escape(c.component)} {escape(c.version)} on {escape(c.where)}" for c in components]
        parts.append("*Control plane*\n" + "\n".join(_fit(lines, 600, "components")))
    used = sum(len(part) + 1 for part in parts)
    if warnings:
        lines = [_line(f"⚠️ {escape(w.message)}", limit=_MAX_LINE_CHARS * 2) for w in warnings]
        parts.append("*Warnings*\n" + "\n".join(_fit(lines, MAX_MESSAGE_CHARS - used - 20, "warnings")))
    else:
        parts.append("No version-skew warnings.")
    return _clip("\n".join(parts), MAX_MESSAGE_CHARS)


def _node_table(nodes: Sequence[NodeView], budget: int) -> str:
    if not nodes:
        return "No nodes found."
    header = ("NODE", "READY", "SCHEDULING", "ROLES", "KUBELET", "PODS")
    rows = [
        (
            node.name,
            "yes" if node.ready else "NO",
            "enabled" if node.schedulable else "cordoned",
            ",".join(node.roles) or "-",
            node.kubelet,
            str(node.pods),
        )
        for node in nodes
    ]
    widths = [min(40, max(len(row[i]) for row in [header, *rows])) for i in range(len(header))]
    lines = ["  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    fitted = _fit([escape(line) for line in lines], budget - 8, "nodes")
    return "```\n" + "\n".join(fitted) + "\n```"


# --- fitting text into Slack's limits -----------------------------------------------------------------


def _fit(lines: list[str], budget: int, noun: str) -> list[str]:
    """As many lines as fit in `budget` characters, then `… and N more <noun>`."""
    if sum(len(line) + 1 for line in lines) <= budget:
        return lines
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        more = f"… and {len(lines) - index} more {noun}"
        if used + len(line) + 1 + len(more) + 1 > budget:
            return [*kept, more]
        kept.append(line)
        used += len(line) + 1
    return kept


def _line(text: str, limit: int = _MAX_LINE_CHARS) -> str:
    return _clip(text, limit)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Cutting inside an entity ("&am") would show garbage; back up to before it.
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"
