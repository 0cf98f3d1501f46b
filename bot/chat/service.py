"""What the bot does with a message or a click, apart from Slack's wire details.

bot/chat/app.py adapts slack-bolt to this; tests and the benchmark drive it through the emulator.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from kubernetes.client.exceptions import ApiException
from redis import Redis
from redis.exceptions import LockError
from urllib3.exceptions import HTTPError as TransportError

from bot.chat import approval_store, authz, render
from bot.chat.approvals import ApprovalRequest, clock_time, decide, outcome
from bot.chat.clusters import Clusters, UnknownCluster, qualified_command
from bot.chat.config import Settings
from bot.chat.grammar import Command, GrammarError, parse
from bot.chat.metrics import APPROVALS, COMMANDS, UNKNOWN_VERB
from bot.chat.outbox import new_ref
from bot.chat.progress import remember_message
from bot.contract import Answer, Asking, Plan
from bot.contract.reports import cluster_tag, progress_text, queued_view
from bot.domain.ids import new_approval_id, new_job_id
from bot.domain.text import MAX_MESSAGE_CHARS, escape
from bot.engine import JobSpec, get_job, queue
from bot.engine.audit import audit
from bot.engine.locks import qualify

log = structlog.get_logger("kubemaint.service")


class Chat(Protocol):
    """The few Slack calls the bot makes (bot/chat/slack_chat.py implements them with slack_sdk)."""

    def post(self, channel: str, text: str, *, thread_ts: str | None = None, blocks: list | None = None,
             ref: str | None = None) -> str: ...

    def update(self, channel: str, ts: str, text: str, *, blocks: list | None = None) -> bool | None: ...

    def ephemeral(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> None: ...

    def upload(self, channel: str, filename: str, title: str, content: str, *, thread_ts: str | None = None) -> None:
        ...

    def groups_of(self, user: str) -> list[str]: ...


@dataclass(frozen=True)
class Message:
    user: str
    channel: str
    thread_ts: str | None  # where replies go: the thread of the message
    text: str


class Kubemaint:
    """One message or click at a time: parse, authorize, then answer (read-only commands) or
    gather, plan and ask for approval or queue the job. Which command does what is the
    operations' business (bot/contract); nothing here names one."""

    def __init__(self, settings: Settings, redis: Redis, clusters: Clusters, chat: Chat,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.operations = settings.operations
        self.redis = redis
        self.clusters = clusters
        self.chat = chat
        self.clock = clock

    # -- messages --------------------------------------------------------------------------

    def handle_message(self, msg: Message) -> None:
        reply = self._replier(msg)
        try:
            command = parse(msg.text, self.operations)
        except GrammarError as error:
            audit(self.redis, "request.invalid", user=msg.user, text=msg.text[:200], reason=error.reason)
            COMMANDS.labels(UNKNOWN_VERB, "invalid").inc()
            reply(str(error))
            return
        try:
            cluster = self._cluster_of(command, msg.channel)
        except UnknownCluster as unknown:
            audit(self.redis, "request.invalid", user=msg.user, text=msg.text[:200], reason=str(unknown))
            COMMANDS.labels(command.verb, "invalid").inc()
            reply(str(unknown))
            return
        command = dataclasses.replace(command, cluster=cluster or None)
        settings = self.clusters.settings_for(cluster)
        roles = authz.roles_of(msg.user, self.chat.groups_of(msg.user), settings.roles)
        try:
            authz.check(command, roles, settings, user_id=msg.user)
        except authz.NotAllowed as refusal:
            audit(self.redis, "request.refused", user=msg.user, command=command.text, reason=refusal.message,
                  **_cluster_field(cluster))
            COMMANDS.labels(command.verb, "not_allowed").inc()
            reply(cluster_tag(cluster) + refusal.message)
            return
        audit(self.redis, "request", user=msg.user, command=command.text, channel=msg.channel,
              **_cluster_field(cluster))
        for note in command.notes:  # how the words were read (an accepted kubectl habit, say): said first
            reply(f"Note: {note}")
        try:
            if command.operation.read_only:
                asking = Asking(msg.user, self.clusters.resources_for(cluster), settings, self.operations,
                                self.clock())
                self._answer(msg, command.operation.answer(asking, command.options), cluster)
                COMMANDS.labels(command.verb, "answered").inc()
            else:
                COMMANDS.labels(command.verb, self._plan_and_submit(msg, command, cluster)).inc()
        except (ApiException, TransportError, ConnectionError) as error:
            # The cluster API is down or refusing: say so instead of staying silent.
            audit(self.redis, "request.failed", user=msg.user, command=command.text, error=str(error)[:300])
            COMMANDS.labels(command.verb, "cluster_error").inc()
            reply(f"Could not read the cluster for `{command.text}`: {cluster_error(error)}. Nothing was changed; "
                  "try again in a moment.")

    def _cluster_of(self, command: Command, channel: str) -> str:
        """The cluster `command` is for: the one it names, its job's (`cancel JOB_ID` is about that job's
        cluster, whatever the channel), its channel's, or the default one."""
        job_id = getattr(command.options, "job_id", None)
        if command.cluster is None and job_id and self.settings.clusters:
            record = get_job(self.redis, job_id)
            if record is not None and record.spec.cluster in self.settings.clusters:
                return record.spec.cluster
        return self.clusters.resolve(command.cluster, channel, command.operation.needs)

    def _answer(self, msg: Message, answer: str | Answer, cluster: str = "") -> None:
        if isinstance(answer, str):
            answer = Answer(answer)
        for index, text in enumerate((answer.text, *answer.more)):  # one thread lane: they arrive in this order
            self.chat.post(msg.channel, cluster_tag(cluster) + text if index == 0 else text, thread_ts=msg.thread_ts)
        for file in answer.files:
            self.chat.upload(msg.channel, file.filename, file.title, file.content, thread_ts=msg.thread_ts)

    def _replier(self, msg: Message) -> Callable[[str], str]:
        return lambda text: self.chat.post(msg.channel, text, thread_ts=msg.thread_ts)

    def _plan_and_submit(self, msg: Message, command: Command, cluster: str) -> str:
        """Plan, then refuse, show (dry run), queue or ask for approval; returns which (the metric's outcome)."""
        operation = command.operation
        plan = operation.plan(operation.gather(self.clusters.resources_for(cluster), command.options),
                              command.options)
        tag = cluster_tag(cluster)
        if plan.refusal:
            audit(self.redis, "request.refused", user=msg.user, command=command.text, reason=plan.refusal,
                  **_cluster_field(cluster))
            self.chat.post(msg.channel, tag + plan.refusal, thread_ts=msg.thread_ts)
            return "refused"
        if getattr(command.options, "dry_run", False):
            text = "\n".join([f"{tag}Dry run of `{command.text}`: nothing was changed.", *plan.lines])
            self.chat.post(msg.channel, text[:MAX_MESSAGE_CHARS], thread_ts=msg.thread_ts)
            audit(self.redis, "request.dry_run", user=msg.user, command=command.text, **_cluster_field(cluster))
            return "dry_run"
        policy = self.clusters.settings_for(cluster).policy(operation.name)
        if not policy.approval_required:
            self._submit(operation.name, plan, command.text, msg.user, (), msg.channel, msg.thread_ts,
                         cluster=cluster)
            return "queued"
        request = ApprovalRequest(
            id=new_approval_id(), command_text=command.text, requester=msg.user, channel=msg.channel,
            created_at=self.clock(), ttl_seconds=policy.approval_ttl_seconds,
            approvals_needed=policy.approvals_needed, cluster=cluster,
        )
        if (earlier := self._open_request(request)) is not None:
            audit(self.redis, "request.repeated", user=msg.user, command=command.text, request=earlier.request.id)
            self.chat.post(msg.channel, already_asked(earlier), thread_ts=msg.thread_ts)
            return "repeated"
        pending = approval_store.PendingRequest(
            request=request, verb=operation.name, plan_lines=list(plan.lines), steps=list(plan.steps),
            locks=list(plan.locks), next_command=plan.next_command, thread_ts=msg.thread_ts, start_at=plan.start_at,
        )
        # The card's ref is recorded before the card is queued: whatever happens in between (Redis going
        # away, say), a stored request always knows its card.
        pending.card_ts = new_ref()
        approval_store.save(self.redis, pending, still_pending=True)
        self.chat.post(msg.channel, render.approval_fallback_text(request), thread_ts=msg.thread_ts,
                       blocks=render.approval_card(request, plan.lines), ref=pending.card_ts)
        audit(self.redis, "approval.requested", request=request.id, user=msg.user, command=command.text,
              approvals_needed=request.approvals_needed, ttl_seconds=request.ttl_seconds, **_cluster_field(cluster))
        return "awaiting_approval"

    def _open_request(self, request: ApprovalRequest) -> approval_store.PendingRequest | None:
        """The same user's request for the same command that still waits for a decision, if any."""
        earlier_id = approval_store.claim(self.redis, request)
        if earlier_id is None:
            return None
        earlier = approval_store.load(self.redis, earlier_id)
        if earlier is not None and earlier.request.state(self.clock()) == "pending":
            return earlier
        approval_store.claim(self.redis, request, replace=True)  # that one expired meanwhile: this one is open
        return None

    def _submit(self, verb: str, plan: Plan | approval_store.PendingRequest, command_text: str, requester: str,
                approvers: tuple[str, ...], channel: str, thread_ts: str | None, job_id: str | None = None,
                cluster: str = "") -> str:
        # The locks and the next command are the cluster's own: another cluster's node01 is another node.
        spec = JobSpec.create(verb, command_text, requester, plan.steps, approvers=approvers, channel=channel,
                              thread_ts=thread_ts, locks=[qualify(target, cluster) for target in plan.locks],
                              next_command=qualified_command(plan.next_command, cluster), job_id=job_id,
                              cluster=cluster)
        if job_id and get_job(self.redis, job_id) is not None:
            return job_id  # queued by a click that Redis cut short before it could say so
        # The message's ref is recorded before anything is queued, so the publisher always knows which
        # message to edit; the job is queued before its message, so a worker starts at once.
        ref = new_ref()
        remember_message(self.redis, spec.id, channel, ref)
        queue.submit(self.redis, spec, start_at=plan.start_at)
        self.chat.post(channel, progress_text(queued_view(spec.id, command_text, spec.step_names(), plan.start_at,
                                                          cluster)), thread_ts=thread_ts, ref=ref)
        return spec.id

    def describe_now(self, command_text: str) -> tuple[list[str], str | None]:
        """What is true now on the target of `command_text`, and the command that undoes it (for a
        thread whose job Redis lost)."""
        try:
            command = parse(command_text, self.operations)
        except GrammarError:
            return [], None
        operation, options = command.operation, command.options
        undo = operation.undo(options) if operation.undo else None
        if operation.describe is None:
            return [], undo
        if command.cluster and command.cluster not in self.settings.clusters:
            return [], undo  # a cluster taken out of the configuration since
        try:
            resources = self.clusters.resources_for(command.cluster or "")
            return operation.describe(operation.gather(resources, options), options), undo
        except (ApiException, TransportError, ConnectionError) as error:
            return [f"(kubemaint could not read the cluster just now: {cluster_error(error)})"], undo

    # -- clicks ----------------------------------------------------------------------------

    def handle_click(self, user: str, channel: str, action_id: str, request_id: str,
                     card: tuple[str, str] = ("", "")) -> None:
        """An Approve or Deny click on the card `card` (its ts and text, as the click carried them)."""
        if action_id not in (render.APPROVE_ACTION_ID, render.DENY_ACTION_ID):
            return
        try:
            with approval_store.deciding(self.redis, request_id):
                self._decide(user, channel, action_id, request_id, card)
        except LockError:
            self.chat.ephemeral(channel, user, "Another click on this card is still being handled: try again in a "
                                               "few seconds.")

    def _decide(self, user: str, channel: str, action_id: str, request_id: str, card: tuple[str, str]) -> None:
        pending = approval_store.load(self.redis, request_id)
        if pending is None:
            self.chat.ephemeral(channel, user, "This request no longer exists (kubemaint keeps requests for "
                                               "a week, and forgets them if its Redis loses its data): ask "
                                               "again for a new card.")
            if card[0]:  # its buttons would only ever get this answer
                self.chat.update(channel, card[0], f"kubemaint no longer knows request {request_id}",
                                 blocks=render.forgotten_card(card[1], request_id))
            return
        if pending.request.cluster and pending.request.cluster not in self.settings.clusters:
            self.chat.ephemeral(channel, user, f"This request is for cluster {pending.request.cluster}, which is no "
                                               "longer configured: nothing can be approved on it.")
            return
        # The request's cluster decides who may approve it: an approver of staging is not one of prod.
        roles = authz.roles_of(user, self.chat.groups_of(user),
                               self.clusters.settings_for(pending.request.cluster).roles)
        now = self.clock()
        decision = decide(pending.request, user, roles, action_id, now)
        if not decision.changed:
            audit(self.redis, "approval.ignored", request=request_id, user=user, action=action_id,
                  reason=decision.message)
            APPROVALS.labels("ignored").inc()
            self.chat.ephemeral(channel, user, decision.message, thread_ts=pending.thread_ts)
            if pending.request.state(now) == "approved" and pending.job_id:
                self._submit_approved(pending, channel)  # the approving click was cut short
            if pending.request.state(now) != "pending":
                # Buttons on a decided card: its redraw was lost (Redis went away mid-click, say).
                self._redraw_card(pending, now)
            return
        pending.request = decision.request
        state = decision.request.state(now)
        audit(self.redis, f"approval.{action_id}", request=request_id, user=user, state=state,
              command=pending.request.command_text)
        APPROVALS.labels(action_id).inc()
        if state == "approved":
            pending.job_id = new_job_id()
        # The decision (and its job's id) is stored before the job is queued: a click cut short by
        # Redis going away is finished by the next click, and never runs a second job.
        # Until its job is queued an approved request stays listed, so the background sweep
        # (`expire_requests`) queues it if nobody clicks again.
        approval_store.save(self.redis, pending, still_pending=state == "pending" or state == "approved")
        if state == "approved":
            self._submit_approved(pending, channel)
        self._redraw_card(pending, now)

    def _submit_approved(self, pending: approval_store.PendingRequest, channel: str) -> None:
        """Queue the job an approval asked for, once: `submitted` records that it was."""
        if not pending.submitted:
            request = pending.request
            self._submit(pending.verb, pending, request.command_text, request.requester, request.approvers, channel,
                         pending.thread_ts, job_id=pending.job_id, cluster=request.cluster)
            pending.submitted = True
        approval_store.save(self.redis, pending, still_pending=False)

    def _redraw_card(self, pending: approval_store.PendingRequest, now: float) -> None:
        request = pending.request
        if request.state(now) == "pending":
            blocks = render.approval_card(request, pending.plan_lines)
        else:
            blocks = render.decided_card(request, pending.plan_lines, now)
        text = render.approval_fallback_text(request)
        if request.state(now) != "pending":
            text = f"`{request.command_text}`: {outcome(request) if request.state(now) != 'expired' else 'expired'}"
        self.chat.update(request.channel, pending.card_ts, text, blocks=blocks)

    def expire_requests(self) -> int:
        """Mark cards whose time ran out, so nobody approves a stale plan; returns how many. (And queue
        the job of an approval whose click was cut short before it could.)"""
        now, expired = self.clock(), 0
        for request_id in approval_store.pending_ids(self.redis):
            with approval_store.deciding(self.redis, request_id):
                pending = approval_store.load(self.redis, request_id)
                if pending is not None and pending.request.state(now) == "approved":
                    self._submit_approved(pending, pending.request.channel)
                    self._redraw_card(pending, now)
                    continue
                if pending is None or pending.request.state(now) != "expired":
                    continue
                approval_store.save(self.redis, pending, still_pending=False)
                audit(self.redis, "approval.expired", request=request_id, command=pending.request.command_text)
                APPROVALS.labels("expired").inc()
                if pending.card_ts:
                    self._redraw_card(pending, now)
                expired += 1
        return expired


def already_asked(earlier: approval_store.PendingRequest) -> str:
    """The pointer a repeated ask gets instead of a second card."""
    request = earlier.request
    so_far = f", {len(request.approvals)} of {request.approvals_needed} approvals so far" if request.approvals else ""
    return (f"You already asked for `{escape(request.command_text)}` at {clock_time(request.created_at)}: that "
            f"request (`{request.id}`) is still waiting for approval{so_far}, and its card is the one to approve. "
            f"It expires at {clock_time(request.expires_at)}; Deny on that card withdraws it.")


def _cluster_field(cluster: str) -> dict[str, str]:
    """The audit record's `cluster` field, when several clusters are configured."""
    return {"cluster": cluster} if cluster else {}


def cluster_error(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"the API answered {error.status} {error.reason}"
    return f"the API is unreachable ({type(error).__name__})"
