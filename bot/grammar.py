"""Chat text -> `Command`, or a `GrammarError` that tells the user what to type instead.

This is the only door from chat into kubemaint (DESIGN principle 5): every value that comes
out of `parse` has been checked against a strict pattern, so nothing later has to wonder
whether a node name could smuggle a shell metacharacter.

Verbs live in one table, `VERBS`. A new operation is one `VerbSpec` entry: its positional
arguments (each an `ArgKind`, which knows its placeholder, pattern and the `Command` field it
fills), its boolean flags, its value flags (each a `ValueFlag`, which checks and normalises its
value), its usage line and its one-line description.
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


OptionValue = str | bool | int


class Options(Mapping[str, OptionValue]):
    """Read-only, hashable flags of a command (`--force` -> {"force": True}).

    `Command` is frozen and hashable so it can be a dict key or a de-duplication token; a
    plain dict would break both.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, OptionValue] | None = None) -> None:
        self._items: tuple[tuple[str, OptionValue], ...] = tuple(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> OptionValue:
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
class ValueFlag:
    """A `--name VALUE` (or `--name=VALUE`) flag: checked, normalised and stored in `Command.options`.

    A value equal to `default` is not stored, so `drain node01 --timeout 10m` and `drain node01`
    are the same `Command` (one normalised text per meaning); `Command.option` fills it in.
    """

    name: str
    placeholder: str
    check: Callable[[str], OptionValue]  # returns the normalised value or raises ValueError(reason)
    render: Callable[[Any], str] = str  # the normalised value as it is typed back
    default: OptionValue | None = None
    # May the value span several words? Set-based selectors need spaces ("tier in (a,b)").
    words: Callable[[str, str], bool] | None = None


@dataclass(frozen=True)
class VerbSpec:
    name: str
    args: tuple[ArgKind, ...]
    description: str
    flags: frozenset[str] = frozenset()  # boolean `--flag`s, stored in `Command.options`
    values: tuple[ValueFlag, ...] = ()  # `--flag VALUE`s, stored in `Command.options`

    @property
    def usage(self) -> str:
        flags = {flag: f"[--{flag}]" for flag in self.flags}
        flags.update({value.name: f"[--{value.name} {value.placeholder}]" for value in self.values})
        parts = [self.name, *(arg.placeholder for arg in self.args), *(flags[name] for name in sorted(flags))]
        return " ".join(parts)

    def value_flag(self, name: str) -> ValueFlag | None:
        return next((value for value in self.values if value.name == name), None)


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

# --- drain's values ----------------------------------------------------------------------------

MAX_GRACE_PERIOD_SECONDS = 3600
MAX_TIMEOUT_SECONDS = 24 * 3600
DEFAULT_DRAIN_TIMEOUT_SECONDS = 600
_SECONDS = re.compile(r"[0-9]{1,6}")
_DURATION = re.compile(r"(?:([0-9]{1,5})h)?(?:([0-9]{1,7})m)?(?:([0-9]{1,9})s)?")
# Kubernetes label syntax: a name segment, optionally behind a DNS-subdomain prefix.
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
# Everything a selector may contain: nothing here means anything to a shell or to Slack.
_SELECTOR_CHARS = re.compile(r"[A-Za-z0-9._/=!(), -]+")
_SET_TERM = re.compile(r"([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)")
_EQUALITY_TERM = re.compile(r"([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)")
_EXISTS_TERM = re.compile(r"(!?)\s*([^\s=!(),]+)")
_SELECTOR_HELP = ("use label keys and values of letters, digits, \".\", \"_\", \"-\" (and \"/\" in keys) with "
                  "key=value, key!=value, \"key in (a,b)\", \"key notin (a,b)\", key or !key, joined by commas")


def _check_seconds(value: str) -> int:
    if not _SECONDS.fullmatch(value):
        raise ValueError(f'"{quote_input(value)}" is not a number of seconds: use a whole number like 30')
    seconds = int(value)
    if seconds > MAX_GRACE_PERIOD_SECONDS:
        raise ValueError(f"a grace period of {seconds}s is too long: at most {MAX_GRACE_PERIOD_SECONDS} seconds")
    return seconds


def _check_duration(value: str) -> int:
    match = _DURATION.fullmatch(value.lower())
    if not value or not match:
        raise ValueError(f'"{quote_input(value)}" is not a duration: use a number with s, m or h, like 30s, 10m or 1h')
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("a timeout must be longer than 0s")
    if total > MAX_TIMEOUT_SECONDS:
        raise ValueError(f'a timeout of "{quote_input(value)}" is too long: at most 24h')
    return total


def format_duration(seconds: int) -> str:
    """600 -> "10m", 5400 -> "1h30m": how durations are typed, and how `Command.text` shows them."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{amount}{unit}" for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if amount)
    return text or "0s"


def _check_label_key(key: str, term: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix)):
        raise ValueError(f'"{quote_input(term)}": the key prefix "{quote_input(prefix)}" is not a DNS subdomain')
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f'"{quote_input(term)}": "{quote_input(name)}" is not a valid label key (at most 63 '
                         "letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit)")
    return key


def _check_label_value(value: str, term: str) -> str:
    if value and not _LABEL_NAME.fullmatch(value):
        raise ValueError(f'"{quote_input(term)}": "{quote_input(value)}" is not a valid label value (at most 63 '
                         "letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit)")
    return value


def _selector_terms(text: str) -> list[str]:
    """Split on the commas between terms, not the ones inside `in (...)`."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f'"{quote_input(text)}": unbalanced parentheses')
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    if depth:
        raise ValueError(f'"{quote_input(text)}": unbalanced parentheses')
    terms.append(current.strip())
    if not all(terms):
        raise ValueError(f'"{quote_input(text)}": an empty term (a stray comma?)')
    return terms


def _normalise_selector_term(term: str) -> tuple[str, str]:
    if match := _SET_TERM.fullmatch(term):
        key, operator, raw_values = match[1], match[2], match[3]
        values = sorted({_check_label_value(v.strip(), term) for v in raw_values.split(",")})
        if values == [""]:
            raise ValueError(f'"{quote_input(term)}": `{operator}` needs at least one value')
        return _check_label_key(key, term), f"{key} {operator} ({','.join(values)})"
    if match := _EQUALITY_TERM.fullmatch(term):
        key, operator, value = match[1], match[2], match[3]
        operator = "!=" if operator == "!=" else "="  # == and = mean the same
        return _check_label_key(key, term), f"{key}{operator}{_check_label_value(value, term)}"
    if match := _EXISTS_TERM.fullmatch(term):
        return _check_label_key(match[2], term), f"{match[1]}{match[2]}"
    raise ValueError(f'"{quote_input(term)}" is not a selector term')


def check_label_selector(value: str) -> str:
    """A Kubernetes label selector, normalised: terms sorted, `==` as `=`, set values sorted.

    Only the safe subset of the syntax is accepted, so the value can be shown in chat, stored
    in a job and passed to the API without escaping.
    """
    text = " ".join(value.split())
    if not text:
        raise ValueError("the pod selector is empty")
    if not _SELECTOR_CHARS.fullmatch(text):
        raise ValueError(f'"{quote_input(text)}" is not a valid pod selector: {_SELECTOR_HELP}')
    try:
        terms = [_normalise_selector_term(term) for term in _selector_terms(text)]
    except ValueError as error:
        raise ValueError(f"not a valid pod selector: {error}; {_SELECTOR_HELP}") from None
    return ",".join(rendered for _, rendered in sorted(set(terms)))


def _selector_continues(text: str, next_word: str) -> bool:
    # A selector is one word unless it is visibly unfinished: inside `( )`, after a comma or an
    # operator, or followed by an operator ("tier in (a,b)", "app != web").
    if text.count("(") > text.count(")") or text.endswith((",", "=", "!")):
        return True
    if text.rsplit(" ", 1)[-1].lower() in ("in", "notin"):
        return True
    return next_word.lower() in ("in", "notin") or next_word.startswith((",", "=", "!=", "(", ")"))


GRACE_PERIOD = ValueFlag("grace-period", "SECONDS", _check_seconds)
TIMEOUT = ValueFlag("timeout", "DURATION", _check_duration, format_duration, DEFAULT_DRAIN_TIMEOUT_SECONDS)
POD_SELECTOR = ValueFlag("pod-selector", "SELECTOR", check_label_selector, words=_selector_continues)

VERBS: dict[str, VerbSpec] = {
    spec.name: spec
    for spec in (
        VerbSpec("help", (), "show this list of commands"),
        VerbSpec("status", (), "show nodes, component versions and version-skew warnings"),
        VerbSpec("cordon", (NODE,), "mark a node unschedulable; running pods stay where they are"),
        VerbSpec("uncordon", (NODE,), "make a node schedulable again; pods do not move back by themselves"),
        VerbSpec(
            "drain", (NODE,),
            "cordon a node and evict its pods (DaemonSet pods stay); shows what moves, what is lost and what "
            "blocks before anything happens",
            frozenset({"force", "delete-emptydir-data", "dry-run"}),
            (POD_SELECTOR, GRACE_PERIOD, TIMEOUT),
        ),
        VerbSpec("jobs", (), "list recent and running jobs"),
        VerbSpec("job", (JOB_ID,), "show the steps and progress of one job"),
        VerbSpec("cancel", (JOB_ID,), "stop a running job at its next safe point"),
        VerbSpec("resume", (JOB_ID,), "continue a failed or halted job from the step where it stopped"),
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

    def option(self, name: str) -> OptionValue | None:
        """A flag's value, or the verb's default for it (None when it has none)."""
        if name in self.options:
            return self.options[name]
        spec = VERBS.get(self.verb)
        value_flag = spec.value_flag(name) if spec else None
        return value_flag.default if value_flag else None


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
    options, positional = _parse_flags(spec, rest)
    values: dict[str, Any] = {"options": options}
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


def _parse_flags(spec: VerbSpec, words: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Flags (anywhere after the verb, `--name value` or `--name=value`) and the positional words."""
    flags: dict[str, Any] = {}
    positional: list[str] = []
    unknown: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("--"):
            positional.append(word)
            continue
        raw_name, has_value, inline = word[2:].partition("=")
        name = raw_name.lower()
        value_flag = spec.value_flag(name)
        if name in spec.flags:
            if has_value:
                raise GrammarError(f"`--{name}` takes no value", spec.usage)
            flags[name] = True
        elif value_flag is not None:
            if name in flags:
                raise GrammarError(f"`--{name}` is given twice", spec.usage)
            if has_value:
                raw = inline
            elif index < len(words) and not words[index].startswith("--"):
                raw, index = words[index], index + 1
            else:
                raw = ""
            while value_flag.words and raw and index < len(words) and not words[index].startswith("--") \
                    and value_flag.words(raw, words[index]):
                raw, index = f"{raw} {words[index]}", index + 1
            if not raw:
                raise GrammarError(f"`--{name}` needs a value: --{name} {value_flag.placeholder}", spec.usage)
            try:
                value = value_flag.check(raw)
            except ValueError as error:
                raise GrammarError(f"--{name}: {error}", spec.usage) from None
            flags[name] = value
        else:
            unknown.append(f'"{quote_input(word)}"')
    if unknown:
        known = ", ".join(f"--{flag}" for flag in sorted({*spec.flags, *(v.name for v in spec.values)})) or "no flags"
        raise GrammarError(f"`{spec.name}` does not know {', '.join(unknown)} (it takes {known})", spec.usage)
    for value_flag in spec.values:
        # The default is implied, never stored: one `Command` (and one text) per meaning.
        if value_flag.default is not None and flags.get(value_flag.name) == value_flag.default:
            del flags[value_flag.name]
    return flags, positional


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
        value_flag = spec.value_flag(name)
        if name in positional_fields:
            continue
        if value_flag is not None:
            words.append(f"--{name} {value_flag.render(value)}")
        elif value is True:
            words.append(f"--{name}")
    return " ".join(words)
