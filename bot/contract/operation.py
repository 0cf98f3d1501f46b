"""What an operation declares, once, in its own module under handlers/.

    CORDON = Operation(
        name="cordon",                       # the policy key in config, the job's verb, the audit name
        words="cordon NODE",                 # keywords and typed arguments (bot/contract/words.py)
        options=NodeOptions,                 # the frozen options type: parsed, planned on, run with
        description="mark a node unschedulable; running pods stay where they are",
        policy=Policy(allowed_roles=("operator",)),
        needs=("kube",),                     # resources by name (bot/contract/resources.py)
        gather=read_node_and_its_pods,       # (resources, options) -> facts: the reads
        plan=plan_cordon,                    # (facts, options) -> Plan: pure; builds the steps
    )

A read-only command declares `answer` instead of `gather` and `plan`: (Asking, options) -> the
reply text, or an `Answer` when one message is not enough (further messages, attached files). An
operation with a `dry_run` flag posts its plan and stops when it is set.

`recheck(facts, options, approved) -> problem or None` is what the worker runs before a step
acts, on fresh facts (`Operation.still_holds`): the cluster may have changed since the
approver read the plan.

`describe(facts, options) -> lines` says what is true now on the operation's target ("node01
is cordoned; 53 pods the drain would evict are still on it"), and `undo(options)` the command
that puts it back ("uncordon node01"): what the bot tells a thread whose job kubemaint lost.

Operations are found by looking for module-level `Operation` objects (bot/contract/registry.py);
nothing else in the product names them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.contract.words import NoOptions, Words, words_of
from bot.engine.model import Step

if TYPE_CHECKING:
    from bot.contract.registry import Registry

Role = Literal["viewer", "operator", "approver"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver")


class Policy(BaseModel):
    """Who may run a command and whether a second person reads the plan first. An operation
    declares its default; `policies.<name>` in the config overrides it key by key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_roles: tuple[Role, ...]
    approval_required: bool = False
    approvals_needed: int = Field(default=1, ge=1)
    approval_ttl_seconds: int = Field(default=1800, gt=0)


READ_ONLY = Policy(allowed_roles=ROLES)
OPERATORS = Policy(allowed_roles=("operator",))
# What a command gets when nothing says otherwise: fail safe.
FALLBACK_POLICY = Policy(allowed_roles=("operator",), approval_required=True)


@dataclass(frozen=True)
class Plan:
    """What an operation will do, computed before anything happens.

    `lines` is what the approver reads (a line starting with spaces belongs to the line above);
    `refusal`, when set, stops the request before approval with the reason and what would make
    it possible; `next_command` is offered when the job is done; `start_at` (epoch seconds) queues
    the job to start then rather than now (a reboot waiting for its maintenance window).
    """

    lines: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    locks: tuple[str, ...] = ()
    refusal: str | None = None
    next_command: str | None = None
    start_at: float | None = None


@dataclass(frozen=True)
class Attachment:
    """A file posted with an answer (Slack's file upload): what is too long for a message."""

    filename: str
    title: str
    content: str


@dataclass(frozen=True)
class Answer:
    """A read-only command's reply: `text` first, then each of `more` as its own message in the same
    thread (a long listing, page by page), then each file of `files`."""

    text: str
    more: tuple[str, ...] = ()
    files: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Asking:
    """What a read-only command's `answer` gets besides its options."""

    user: str
    resources: Mapping[str, Any]
    settings: Any  # the process's settings (bot/chat/config.py Settings)
    operations: Registry
    now: float


@dataclass(frozen=True)
class Operation:
    name: str
    words: str
    description: str
    options: type = NoOptions
    policy: Policy = FALLBACK_POLICY
    needs: tuple[str, ...] = ()
    answer: Callable[[Asking, Any], str | Answer] | None = None
    gather: Callable[[Mapping[str, Any], Any], Any] | None = None
    plan: Callable[[Any, Any], Plan] | None = None
    recheck: Callable[[Any, Any, Any], str | None] | None = None
    describe: Callable[[Any, Any], list[str]] | None = None
    undo: Callable[[Any], str | None] | None = None
    grammar: Words = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grammar", words_of(self.words, self.options))
        if (self.answer is None) == (self.plan is None):
            raise TypeError(f"operation {self.name!r}: declare either answer (read-only) or gather and plan")
        if self.plan is not None and self.gather is None:
            raise TypeError(f"operation {self.name!r}: plan needs gather (the reads it plans on)")

    @property
    def read_only(self) -> bool:
        return self.answer is not None

    @property
    def usage(self) -> str:
        return self.grammar.usage

    def text(self, options: Any) -> str:
        return self.grammar.text(options)

    def still_holds(self, resources: Mapping[str, Any], options: Any, approved: Any) -> Any:
        """The worker's re-check before a step acts: fresh facts, checked against what was
        approved. Returns the facts (the step acts on them); raises PlanChanged saying what changed."""
        facts = self.gather(resources, options)
        if self.recheck is not None and (problem := self.recheck(facts, options, approved)):
            raise PlanChanged(problem)
        return facts


class PlanChanged(Exception):
    """The cluster changed since the plan was approved, in a way the approver did not see."""
