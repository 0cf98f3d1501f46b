"""The approval card: Block Kit (slack_sdk models) for a request, and for it once decided.

Pure: data in, blocks out. Text that came from the cluster or from operations is Slack-escaped
so it cannot ping `@channel` or forge links, and every section stays under Block Kit's limit,
with "… and N more" where something had to go.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.chat.approvals import ApprovalRequest, clock_time, outcome
from bot.contract.reports import cluster_tag
from bot.domain.text import clip, escape, fit

_MAX_SECTION_CHARS = 2900  # Block Kit rejects section text over 3,000
APPROVE_ACTION_ID = "approve"
DENY_ACTION_ID = "deny"
_SUB_BULLET = "\u2003◦ "  # an em space keeps the sub-line under its bullet; Slack trims plain spaces


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
        _section(f"{cluster_tag(request.cluster)}<@{request.requester}> asks to run `{escape(request.command_text)}`"),
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
        _section(f"{cluster_tag(request.cluster)}<@{request.requester}> asked to run "
                 f"`{escape(request.command_text)}`"),
        _section(_plan_text(plan_lines)),
        ContextBlock(elements=[MarkdownTextObject(text=f"request `{escape(request.id)}`")]),
    ]
    return [block.to_dict() for block in blocks]


def forgotten_card(card_text: str, request_id: str) -> list[dict]:
    """A card whose request kubemaint no longer has (a week old, or its Redis lost it): what it
    asked, and no buttons, so nobody keeps clicking a dead card."""
    blocks: list[Block] = [
        _section("⚠️ *kubemaint no longer knows this request*: ask again for a new card."),
        _section(clip(card_text or "(the card's text was not sent with the click)")),
        ContextBlock(elements=[MarkdownTextObject(text=f"request `{escape(request_id)}`")]),
    ]
    return [block.to_dict() for block in blocks]


def approval_fallback_text(request: ApprovalRequest) -> str:
    """Plain text for notifications and clients that cannot show blocks."""
    return (f"{cluster_tag(request.cluster)}<@{request.requester}> asks to run `{escape(request.command_text)}`: "
            "approval needed")


def _plan_text(plan_lines: Sequence[str]) -> str:
    """A bullet per plan line; a line indented in the plan is a sub-line of the one above."""
    if not plan_lines:
        return "*Plan*\nNothing to do."
    lines = [f"{_SUB_BULLET if line.startswith(' ') else '• '}{clip(escape(line.strip()))}" for line in plan_lines]
    return "*Plan*\n" + "\n".join(fit(lines, _MAX_SECTION_CHARS - 10, "steps"))


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, _MAX_SECTION_CHARS)))
