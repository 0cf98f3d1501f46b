"""The words of an operation: a phrase of literal keywords and typed arguments, and flags.

An operation's phrase is a string such as `"restore etcd from BACKUP_ID"`: lowercase words are
keywords typed literally, uppercase words are arguments from one shared set (`KINDS`: NODE,
NODES, VERSION, DURATION, SECONDS, COUNT, JOB_ID, BACKUP_ID, SELECTOR). Each argument fills the
options field of the same name in lowercase (`BACKUP_ID` -> `backup_id`). Every other field of
the operation's options type is a flag, declared with `flag()`:

    @dataclass(frozen=True, kw_only=True)
    class DrainCommand(DrainOptions):
        node: str                                   # filled by "drain NODE"
        dry_run: bool = flag(help="show the plan only")
        timeout: int = flag(DURATION, default=600)  # --timeout 10m

A flag people type out of habit (kubectl's `--ignore-daemonsets`) that changes nothing here is
declared as a class attribute with `ignored(note)`, not as a field: it is accepted, the note is
shown to the user, and it never reaches the options or the normalised command text.

    ignore_daemonsets: ClassVar[Ignored] = ignored("drain never evicts DaemonSet pods")

Every value is checked here, before anything else sees it (DESIGN principle 5): a node name
is an RFC 1123 label, a version is exactly vMAJOR.MINOR.PATCH, a selector uses a safe alphabet.
So nothing that leaves the grammar could smuggle a shell metacharacter or ping a channel.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain.durations import DurationError, format_duration, parse_duration
from bot.domain.ids import BACKUP_ID_PATTERN, JOB_ID_PATTERN
from bot.domain.selectors import LabelSelector, selector_continues
from bot.domain.text import quote_input
from bot.domain.versions import VersionError, parse_version

# RFC 1123 label, the rule Kubernetes applies to node names (and what makes them shell-safe).
NODE_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_GRACE_PERIOD_SECONDS = 3600
MAX_DURATION_SECONDS = 24 * 3600
MAX_COUNT = 1000
MAX_NODES = 100
_FLAG = "kubemaint.flag"


@dataclass(frozen=True)
class ArgKind:
    """A kind of value: how it is shown in usage, checked and normalised, and typed back.

    `check(raw, noun)` returns the normalised value or raises ValueError with a reason that names
    the value as `noun` ("timeout", "grace period") where that reads better than the kind.
    """

    placeholder: str
    check: Callable[[str, str], Any]
    render: Callable[[Any], str] = str
    continues: Callable[[str, str], bool] | None = None  # may the value span several words?


def check_node_name(value: str, noun: str = "node name") -> str:
    if NODE_NAME_PATTERN.fullmatch(value):
        return value
    quoted = quote_input(value)
    if len(value) > 63:
        raise ValueError(f'"{quoted}" is not a valid node name: node names are at most 63 characters')
    if NODE_NAME_PATTERN.fullmatch(value.lower()):
        raise ValueError(
            f'"{quoted}" is not a valid node name: node names are lowercase (did you mean "{value.lower()}"?)')
    raise ValueError(f'"{quoted}" is not a valid node name: use lowercase letters, digits and "-", '
                     "starting and ending with a letter or digit (RFC 1123)")


def _check_nodes(value: str, noun: str) -> tuple[str, ...]:
    names = [part for part in value.split(",") if part]
    if not names:
        raise ValueError("name at least one node")
    if len(names) > MAX_NODES:
        raise ValueError(f"at most {MAX_NODES} nodes at a time")
    return tuple(dict.fromkeys(check_node_name(name) for name in names))


def _check_job_id(value: str, noun: str) -> str:
    # Hex is case-insensitive, so an id read aloud or retyped in capitals still works.
    if JOB_ID_PATTERN.fullmatch(value.lower()):
        return value.lower()
    raise ValueError(f'"{quote_input(value)}" is not a valid job id: job ids look like j-1a2b3c4d (see `jobs`)')


def _check_backup_id(value: str, noun: str) -> str:
    if BACKUP_ID_PATTERN.fullmatch(value.lower()):
        return value.lower()
    raise ValueError(f'"{quote_input(value)}" is not a valid backup id: backup ids look like b-1a2b3c4d '
                     "(see `backups`)")


def _check_version(value: str, noun: str) -> str:
    try:
        return str(parse_version(value))
    except VersionError as error:
        raise ValueError(str(error)) from None


def _check_seconds(value: str, noun: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", value):
        raise ValueError(f'"{quote_input(value)}" is not a number of seconds: use a whole number like 30')
    seconds = int(value)
    if seconds > MAX_GRACE_PERIOD_SECONDS:
        raise ValueError(f"a {noun} of {seconds}s is too long: at most {MAX_GRACE_PERIOD_SECONDS} seconds")
    return seconds


def _check_duration(value: str, noun: str) -> int:
    try:
        seconds = parse_duration(value, units="smh", zero_ok=True)
    except DurationError as error:
        raise ValueError(str(error)) from None
    if seconds <= 0:
        raise ValueError(f"a {noun} must be longer than 0s")
    if seconds > MAX_DURATION_SECONDS:
        longest = format_duration(MAX_DURATION_SECONDS)
        raise ValueError(f'a {noun} of "{quote_input(value)}" is too long: at most {longest}')
    return seconds


def _check_count(value: str, noun: str) -> int:
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_COUNT:
        raise ValueError(f'"{quote_input(value)}" is not a count: use a whole number from 1 to {MAX_COUNT}')
    return int(value)


def _check_namespace(value: str, noun: str) -> str:
    # Namespaces are RFC 1123 labels: lowercase letters, digits and '-', at most 63 characters.
    if re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        return value
    raise ValueError(f'"{quote_input(value)}" is not a valid namespace: lowercase letters, digits and "-", '
                     "at most 63 characters")


def _check_selector(value: str, noun: str) -> str:
    return LabelSelector.parse(value).text


NODE = ArgKind("NODE", check_node_name)
NODES = ArgKind("NODES", _check_nodes, render=",".join)  # node01,node02
VERSION = ArgKind("VERSION", _check_version)
DURATION = ArgKind("DURATION", _check_duration, render=format_duration)
SECONDS = ArgKind("SECONDS", _check_seconds)
COUNT = ArgKind("COUNT", _check_count)
JOB_ID = ArgKind("JOB_ID", _check_job_id)
BACKUP_ID = ArgKind("BACKUP_ID", _check_backup_id)
SELECTOR = ArgKind("SELECTOR", _check_selector, continues=selector_continues)
NAMESPACE = ArgKind("NAMESPACE", _check_namespace)
KINDS: dict[str, ArgKind] = {kind.placeholder: kind for kind in
                             (NODE, NODES, VERSION, DURATION, SECONDS, COUNT, JOB_ID, BACKUP_ID, SELECTOR, NAMESPACE)}


def choice(*values: str) -> ArgKind:
    """A flag value that is one of a few words (`--reboot auto|always|never`)."""

    def check(raw: str, noun: str) -> str:
        if raw in values:
            return raw
        return _refuse_choice(raw, noun, values)

    return ArgKind("|".join(values), check)


def _refuse_choice(raw: str, noun: str, values: tuple[str, ...]) -> str:
    words = ", ".join(values[:-1]) + f" or {values[-1]}"
    raise ValueError(f'"{quote_input(raw)}" is not a valid {noun}: use {words}')


def flag(kind: ArgKind | None = None, *, default: Any = None, help: str = "") -> Any:
    """A `--flag` field of an options type: boolean without a kind (default False), else
    `--flag VALUE` checked by `kind`. The default is defined here, once."""
    if kind is None:
        default = bool(default)
    return dataclasses.field(default=default, metadata={_FLAG: (kind, help)})


@dataclass(frozen=True)
class Ignored:
    """A flag accepted and ignored, with the note the user is shown (see `ignored`)."""

    note: str


def ignored(note: str) -> Ignored:
    """A `--flag` that is accepted but changes nothing, declared as a class attribute of the
    options type (`ignore_daemonsets: ClassVar[Ignored] = ignored("...")`): as a class attribute
    it is inherited like the flags but is no field, so it never reaches the options, the
    normalised text or a job. `note` says why it changes nothing."""
    if not note.strip():
        raise TypeError("an ignored flag needs a note saying why it changes nothing")
    return Ignored(note)


@dataclass(frozen=True)
class NoOptions:
    """The options of a command that takes none."""


@dataclass(frozen=True)
class Keyword:
    word: str


@dataclass(frozen=True)
class Slot:
    kind: ArgKind
    field: str


@dataclass(frozen=True)
class Flag:
    name: str  # as typed: "grace-period"
    field: str  # in the options type: "grace_period"
    kind: ArgKind | None  # None: a boolean flag
    default: Any
    help: str = ""

    @property
    def usage(self) -> str:
        return f"[--{self.name}]" if self.kind is None else f"[--{self.name} {self.kind.placeholder}]"

    @property
    def noun(self) -> str:
        return self.field.replace("_", " ")


@dataclass(frozen=True)
class Words:
    """An operation's phrase and flags, and its options type; built from the declaration."""

    phrase: tuple[Keyword | Slot, ...]
    flags: tuple[Flag, ...]
    options: type
    ignored_flags: tuple[tuple[str, str], ...] = ()  # (name as typed, note): flags accepted and ignored

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(token.word for token in self.phrase if isinstance(token, Keyword))

    @property
    def usage(self) -> str:
        shown = [token.word if isinstance(token, Keyword) else token.kind.placeholder for token in self.phrase]
        return " ".join([*shown, *(f.usage for f in self.flags)])

    def flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.name == name), None)

    def ignored_note(self, name: str) -> str | None:
        """The note of an accepted-and-ignored flag, or None if `name` is not one."""
        return next((note for ignored_name, note in self.ignored_flags if ignored_name == name), None)

    def given(self, options: Any) -> dict[str, Any]:
        """The flags that differ from their defaults, by name: what a user would have to type."""
        return {f.name: getattr(options, f.field) for f in self.flags if getattr(options, f.field) != f.default}

    def text(self, options: Any) -> str:
        """The one normalised command line for `options`: keywords, arguments, then flags by name."""
        words = [token.word if isinstance(token, Keyword) else token.kind.render(getattr(options, token.field))
                 for token in self.phrase]
        for name, value in self.given(options).items():
            spec = self.flag(name)
            words.append(f"--{name}" if spec.kind is None else f"--{name} {spec.kind.render(value)}")
        return " ".join(words)


def words_of(phrase: str, options: type) -> Words:
    """Check a declaration's phrase against its options type (at import time: a mistake here is a
    programming error, reported with the operation's phrase)."""
    if not dataclasses.is_dataclass(options) or not options.__dataclass_params__.frozen:
        raise TypeError(f"{phrase!r}: options must be a frozen dataclass, not {options!r}")
    tokens: list[Keyword | Slot] = []
    for word in phrase.split():
        if word.isupper():
            kind = KINDS.get(word)
            if kind is None:
                raise TypeError(f"{phrase!r}: unknown argument {word}; known: {', '.join(KINDS)}")
            tokens.append(Slot(kind, word.lower()))
        elif re.fullmatch(r"[a-z][a-z0-9-]*", word):
            tokens.append(Keyword(word))
        else:
            raise TypeError(f"{phrase!r}: {word!r} is neither a keyword (lowercase) nor an argument (NODE, ...)")
    if not tokens or not isinstance(tokens[0], Keyword):
        raise TypeError(f"{phrase!r}: a phrase starts with a keyword")
    fields = {f.name: f for f in dataclasses.fields(options)}
    slots = {token.field for token in tokens if isinstance(token, Slot)}
    if missing := sorted(slots - set(fields)):
        raise TypeError(f"{phrase!r}: {options.__name__} has no field {', '.join(missing)}")
    flags = []
    for name, spec in fields.items():
        if name in slots:
            continue
        if isinstance(spec.default, Ignored):  # annotated as a field: it would become part of the options
            raise TypeError(f"{phrase!r}: {options.__name__}.{name} is ignored(): declare it as "
                            f"`{name}: ClassVar[Ignored] = ignored(...)`, not as a field")
        if _FLAG not in spec.metadata:
            raise TypeError(f"{phrase!r}: {options.__name__}.{name} is neither in the phrase nor a flag()")
        kind, help_text = spec.metadata[_FLAG]
        flags.append(Flag(name.replace("_", "-"), name, kind, spec.default, help_text))
    ignored_flags = tuple((name.replace("_", "-"), getattr(options, name).note) for name in sorted(dir(options))
                          if isinstance(getattr(options, name), Ignored))  # class attributes, inherited too
    return Words(tuple(tokens), tuple(sorted(flags, key=lambda f: f.name)), options, ignored_flags)


def narrow(options: Any, to: type) -> Any:
    """The `to` part of `options` (a subclass instance): `DrainOptions` from a `DrainCommand`."""
    return to(**{f.name: getattr(options, f.name) for f in dataclasses.fields(to)})
