"""Chat text -> `Command`, or a `GrammarError` that tells the user what to type instead.

This is the only door from chat into kubemaint (DESIGN principle 5): every value that comes
out of `parse` has been checked against a strict pattern, so nothing later has to wonder
whether a node name could smuggle a shell metacharacter.

Verbs live in one table, `VERBS`. A new operation is one `VerbSpec` entry: its positional
arguments (each an `ArgKind`, which knows its placeholder, pattern and the `Command` field it
fills), its flags, its usage line and its one-line description.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# RFC 1123 label, the rule Kubernetes applies to node names (and what makes them shell-safe).
NODE_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Job ids are ours to choose: short enough to type, random enough not to collide in a
# cluster's lifetime of maintenance jobs, and unmistakable for a node name (the `j-` prefix).
# bot/jobs/model.py generates them in the same format.
JOB_ID_PATTERN = re.compile(r"j-[0-9a-f]{8}")
# A long paste is never a command; refusing early also bounds the work difflib does.
MAX_TEXT_LENGTH = 500
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_SLASH_COMMAND = "/kubemaint"


class GrammarError(ValueError):
    """Input that is not a command. `reason` says what is wrong, `usage` what would be right.

    Values quoted from the input are truncated and Slack-escaped, so `str(error)` can be
    posted to a channel as is (it cannot ping `<!channel>` or forge a link).
    """

    def __init__(self, reason: str, usage: str) -> None:
        super().__init__(reason, usage)
        self.reason = reason
        self.usage = usage

    def __str__(self) -> str:
        return f"{self.reason}\nUsage: {self.usage}"


class Options(Mapping[str, "str | bool"]):
    """Read-only, hashable flags of a command (`--force` -> {"force": True}).

    `Command` is frozen and hashable so it can be a dict key or a de-duplication token; a
    plain dict would break both.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str | bool] | None = None) -> None:
        self._items: tuple[tuple[str, str | bool], ...] = tuple(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> str | bool:
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Options({dict(self._items)!r})"


@dataclass(frozen=True)
class ArgKind:
    """A positional argument: how it is shown in usage, checked, and where it lands."""

    placeholder: str
    field: str  # a `Command` attribute ("node", "job_id") or, for later verbs, an options key
    check: Callable[[str], str]  # returns the normalised value or raises ValueError(reason)


@dataclass(frozen=True)
class VerbSpec:
    name: str
    args: tuple[ArgKind, ...]
    description: str
    flags: frozenset[str] = frozenset()  # boolean `--flag`s, stored in `Command.options`

    @property
    def usage(self) -> str:
        parts = [self.name, *(arg.placeholder for arg in self.args), *(f"[--{flag}]" for flag in sorted(self.flags))]
        return " ".join(parts)


def _check_node_name(value: str) -> str:
    if NODE_NAME_PATTERN.fullmatch(value):
        return value
    quoted = quote_input(value)
    if len(value) > 63:
        raise ValueError(f'"{quoted}" is not a valid node name: node names are at most 63 characters')
    if NODE_NAME_PATTERN.fullmatch(value.lower()):
        raise ValueError(
            f'"{quoted}" is not a valid node name: node names are lowercase (did you mean "{value.lower()}"?)'
        )
    raise ValueError(
        f'"{quoted}" is not a valid node name: use lowercase letters, digits and "-", '
        "starting and ending with a letter or digit (RFC 1123)"
    )


def _check_job_id(value: str) -> str:
    # Hex is case-insensitive, so an id read aloud or retyped in capitals still works.
    normalised = value.lower()
    if JOB_ID_PATTERN.fullmatch(normalised):
        return normalised
    raise ValueError(f'"{quote_input(value)}" is not a valid job id: job ids look like j-1a2b3c4d (see `jobs`)')


NODE = ArgKind("NODE", "node", _check_node_name)
JOB_ID = ArgKind("JOB_ID", "job_id", _check_job_id)

VERBS: dict[str, VerbSpec] = {
    spec.name: spec
    for spec in (
        VerbSpec("help", (), "show this list of commands"),
        VerbSpec("status", (), "show nodes, component versions and version-skew warnings"),
        VerbSpec("cordon", (NODE,), "mark a node unschedulable; running pods stay where they are"),
        VerbSpec("uncordon", (NODE,), "make a node schedulable again; pods do not move back by themselves"),
        VerbSpec("jobs", (), "list recent and running jobs"),
        VerbSpec("job", (JOB_ID,), "show the steps and progress of one job"),
        VerbSpec("cancel", (JOB_ID,), "stop a running job at its next safe point"),
    )
}


@dataclass(frozen=True)
class Command:
    """A validated command. `text` is its normalised form, and `parse(cmd.text) == cmd`."""

    verb: str
    node: str | None = None
    job_id: str | None = None
    options: Options = field(default_factory=Options)
    text: str = ""

    def __post_init__(self) -> None:
        # Accept a plain dict for convenience; store the hashable form.
        if not isinstance(self.options, Options):
            object.__setattr__(self, "options", Options(self.options))
        if not self.text:
            object.__setattr__(self, "text", _normalised_text(self))


def parse(text: str) -> Command:
    """Parse one line of chat. Raises `GrammarError` (and nothing else) for anything invalid."""
    if not isinstance(text, str):
        raise GrammarError("a command must be text", overall_usage())
    if len(text) > MAX_TEXT_LENGTH:
        raise GrammarError(f"that is too long to be a command ({len(text)} characters)", overall_usage())
    words = _strip_prefixes(text.split())
    if not words:
        return Command("help")  # a bare mention is a request for help, not a mistake
    verb_word, *rest = words
    spec = VERBS.get(verb_word.lower())
    if spec is None:
        raise GrammarError(_unknown_verb_reason(verb_word), overall_usage())
    flag_words = [word for word in rest if word.startswith("--")]
    positional = [word for word in rest if not word.startswith("--")]
    values: dict[str, Any] = {"options": _parse_flags(spec, flag_words)}
    if len(positional) < len(spec.args):
        missing = spec.args[len(positional)].placeholder
        raise GrammarError(f"`{spec.name}` needs a {missing}", spec.usage)
    if len(positional) > len(spec.args):
        extra = " ".join(positional[len(spec.args):])
        raise GrammarError(f'`{spec.name}` does not take "{quote_input(extra)}"', spec.usage)
    for kind, word in zip(spec.args, positional, strict=True):
        try:
            value = kind.check(word)
        except ValueError as error:
            raise GrammarError(str(error), spec.usage) from None
        if kind.field in ("node", "job_id"):
            values[kind.field] = value
        else:
            values["options"][kind.field] = value
    return Command(spec.name, node=values.get("node"), job_id=values.get("job_id"), options=values["options"])


def help_text() -> str:
    """Every verb's usage and description, one per line, for the `help` command."""
    lines = [f"`{spec.usage}` — {spec.description}" for spec in VERBS.values()]
    return "Commands (mention me or use /kubemaint):\n" + "\n".join(lines)


def overall_usage() -> str:
    """One line naming every verb with its arguments."""
    return " | ".join(spec.usage for spec in VERBS.values())


def quote_input(value: str, limit: int = 40) -> str:
    """User input made safe to echo in Slack: printable, Slack-escaped, truncated."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in value)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _strip_prefixes(words: list[str]) -> list[str]:
    # Slack delivers "<@U0BOT> cordon node01" for a mention; people also paste "/kubemaint ...".
    if words and _MENTION.fullmatch(words[0]):
        words = words[1:]
    if words and words[0].lower() == _SLASH_COMMAND:
        words = words[1:]
    return words


def _unknown_verb_reason(word: str) -> str:
    reason = f'unknown command "{quote_input(word)}"'
    close = difflib.get_close_matches(word.lower(), list(VERBS), n=1, cutoff=0.6)
    if close:
        reason += f"; did you mean `{close[0]}`?"
    return reason


def _parse_flags(spec: VerbSpec, words: list[str]) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for word in words:
        name = word[2:].lower()
        if name not in spec.flags:
            known = ", ".join(f"--{flag}" for flag in sorted(spec.flags)) or "no flags"
            raise GrammarError(f'`{spec.name}` does not know "{quote_input(word)}" (it takes {known})', spec.usage)
        flags[name] = True
    return flags


def _normalised_text(command: Command) -> str:
    spec = VERBS.get(command.verb)
    if spec is None:
        return command.verb
    words = [spec.name]
    for kind in spec.args:
        value = getattr(command, kind.field) if kind.field in ("node", "job_id") else command.options.get(kind.field)
        if value is not None:
            words.append(str(value))
    positional_fields = {kind.field for kind in spec.args}
    for name, value in command.options.items():
        if name not in positional_fields and value is True:
            words.append(f"--{name}")
    return " ".join(words)
