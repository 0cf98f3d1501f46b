"""Chat text -> `Command`, or a `GrammarError` that tells the user what to type instead.

This is the only door from chat into kubemaint (DESIGN principle 5): every value in a `Command`
has been checked by its kind (bot/contract/words.py), so nothing later has to wonder whether a
node name could smuggle a shell metacharacter.

The words come from the operations' declarations: a phrase of keywords and typed arguments
("restore etcd from BACKUP_ID") and the flags of its options type. Several phrases may share a
first word ("upgrade plan", "upgrade to VERSION"); the one whose keywords match is parsed.
What chat adds around a command (mentions, smart dashes) is undone first (bot/chat/typed.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bot.chat.typed import command_words, unquoted
from bot.contract.operation import Operation
from bot.contract.registry import Registry
from bot.contract.registry import operations as builtin_operations
from bot.contract.words import Flag, Keyword, Words
from bot.domain.text import quote_input

# A long paste is never a command; refusing early also bounds the work difflib does.
MAX_TEXT_LENGTH = 500


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


@dataclass(frozen=True)
class Command:
    """A validated command: the operation, its frozen options, and the one normalised text
    (`parse(cmd.text) == cmd`).

    `notes` are what the user should be told about how their words were read (a flag accepted
    and ignored, such as drain's `--ignore-daemonsets`), in the order typed. They are not part
    of the command: two commands with the same options are equal, whatever notes they carry.
    """

    operation: Operation
    options: Any
    notes: tuple[str, ...] = field(default=(), compare=False)
    cluster: str | None = None  # `--cluster NAME`, which every command takes (several clusters configured)

    @property
    def verb(self) -> str:
        return self.operation.name

    @property
    def text(self) -> str:
        text = self.operation.text(self.options)
        return f"{text} --cluster {self.cluster}" if self.cluster else text

    @property
    def flags(self) -> Mapping[str, Any]:
        """The flags that differ from their defaults, by name (`{"force": True}`)."""
        return MappingProxyType(self.operation.grammar.given(self.options))


def parse(text: str, operations: Registry | None = None) -> Command:
    """Parse one line of chat. Raises `GrammarError` (and nothing else) for anything invalid."""
    operations = operations if operations is not None else builtin_operations()
    if not isinstance(text, str):
        raise GrammarError("a command must be text", overall_usage(operations))
    if len(text) > MAX_TEXT_LENGTH:
        raise GrammarError(f"that is too long to be a command ({len(text)} characters)", overall_usage(operations))
    words = command_words(text)
    if (bare := unquoted(words)) is not None:
        raise _quotes_refused(bare, operations)
    cluster, words = _take_cluster(words)
    command = _parse_words(words, operations)
    return dataclasses.replace(command, cluster=cluster) if cluster else command


CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
CLUSTER_USAGE = "COMMAND --cluster NAME (the name of one of the configured clusters)"


def _take_cluster(words: list[str]) -> tuple[str | None, list[str]]:
    """`--cluster NAME` (or `--cluster=NAME`) anywhere after the first word, and the other words. Whether the
    name is a configured cluster is the bot's business: the grammar only checks it is a name."""
    cluster, rest, index = None, words[:1], 1
    while index < len(words):
        word = words[index]
        index += 1
        name, has_value, inline = word[2:].partition("=") if word.startswith("--") else ("", False, "")
        if name.lower() != "cluster":
            rest.append(word)
            continue
        if cluster is not None:
            raise GrammarError("`--cluster` is given twice", CLUSTER_USAGE)
        if has_value:
            value = inline
        elif index < len(words) and not words[index].startswith("--"):
            value, index = words[index], index + 1
        else:
            value = ""
        if not value:
            raise GrammarError("`--cluster` needs a value: --cluster NAME", CLUSTER_USAGE)
        if not CLUSTER_NAME.fullmatch(value):
            raise GrammarError(f'--cluster: "{quote_input(value)}" is not a cluster name (letters, digits, ".", "_" '
                               'and "-")', CLUSTER_USAGE)
        cluster = value
    return cluster, rest


def _parse_words(words: list[str], operations: Registry) -> Command:
    if not words:
        return Command(operations["help"], operations["help"].options())  # a bare mention asks for help
    first, *rest = words
    candidates = sorted(operations.starting_with(first.lower()), key=lambda op: op.words)
    if not candidates:
        raise GrammarError(_unknown_verb_reason(first, operations), overall_usage(operations))
    if len(candidates) == 1:
        return _parse_as(candidates[0], rest)
    # Several phrases start with this word: the one whose keywords were typed decides.
    ranked = sorted(candidates, key=lambda op: -_keywords_matched(op, rest))
    best = _keywords_matched(ranked[0], rest)
    if best > 0:
        # "upgrade plan" / "upgrade plan VERSION": the same keywords, so the number of words typed decides.
        tied = [op for op in ranked if _keywords_matched(op, rest) == best]
        fitting = [op for op in tied if len(op.grammar.phrase) - 1 == len(_plain(op, rest))]
        return _parse_as(fitting[0] if len(fitting) == 1 else ranked[0], rest)
    # No keyword decides ("status" / "status NODE"): the number of values typed does.
    fitting = [op for op in candidates if _arguments_only(op) and len(op.grammar.phrase) - 1 == len(_plain(op, rest))]
    if len(fitting) > 1:
        # "reboot --needed --max-unavailable 1": only one phrase knows those flags, so the 1 is a flag's value.
        fitting = [op for op in fitting if _flags_fit(op, rest)] or fitting
    if len(fitting) == 1:
        return _parse_as(fitting[0], rest)
    usage = " | ".join(op.usage for op in candidates)
    if any(len(op.grammar.phrase) == 1 for op in candidates):
        choices = " or ".join(f"`{_phrase_text(op.grammar)}`" for op in candidates)
        raise GrammarError(f"type {choices}", usage)
    choices = " or ".join(f"`{_after_first(op.grammar)}`" for op in candidates)
    raise GrammarError(f"`{first.lower()}` needs {choices}", usage)


def overall_usage(operations: Registry | None = None) -> str:
    """One line naming every command with its arguments."""
    return " | ".join(op.usage for op in (operations if operations is not None else builtin_operations()).values())


def _after_first(words: Words) -> str:
    return " ".join(t.word if isinstance(t, Keyword) else t.kind.placeholder for t in words.phrase[1:])


def _phrase_text(words: Words) -> str:
    return " ".join([words.keywords[0], _after_first(words)]).strip()


def _arguments_only(operation: Operation) -> bool:
    return not any(isinstance(token, Keyword) for token in operation.grammar.phrase[1:])


def _plain(operation: Operation, typed: list[str]) -> list[str]:
    """The words that are not flags or flag values, as this phrase's flags read them."""
    try:
        return _parse_flags(operation.grammar, operation.usage, typed)[1]
    except GrammarError:
        # A bad flag value ("--reboot sometimes") is still that flag's value, not a plain word.
        plain, words = [], iter(typed)
        for word in words:
            if word.startswith("--"):
                spec = operation.grammar.flag(word[2:])
                if spec is not None and spec.kind is not None and "=" not in word:
                    next(words, None)
            else:
                plain.append(word)
        return plain


def _flags_fit(operation: Operation, typed: list[str]) -> bool:
    try:
        _parse_flags(operation.grammar, operation.usage, typed)
    except GrammarError:
        return False
    return True


def _quotes_refused(words: list[str], operations: Registry) -> GrammarError:
    """Quoted values are refused, never unquoted and run: quotes are a shell habit, and what the bot
    acts on must be exactly what was typed. The answer names the command to type without them."""
    try:
        command = _parse_words(words, operations)
    except GrammarError as error:
        return GrammarError(f"quotes are not needed, and {error.reason}", error.usage)
    return GrammarError(f"quotes are not needed: type {command.text}", command.operation.usage)


def _keywords_matched(operation: Operation, typed: list[str]) -> int:
    """How many of the phrase's keywords after the first were typed in their places."""
    matched = 0
    # A wrong flag of this phrase still lets the other words be compared.
    for token, word in zip(operation.grammar.phrase[1:], (word.lower() for word in _plain(operation, typed)),
                           strict=False):
        if isinstance(token, Keyword):
            if token.word != word:
                break
            matched += 1
    return matched


def _unknown_verb_reason(word: str, operations: Registry) -> str:
    reason = f'unknown command "{quote_input(word)}"'
    firsts = sorted({op.grammar.keywords[0] for op in operations.values()})
    close = difflib.get_close_matches(word.lower(), firsts, n=1, cutoff=0.6)
    if close:
        reason += f"; did you mean `{close[0]}`?"
    return reason


def _parse_as(operation: Operation, words: list[str]) -> Command:
    grammar = operation.grammar
    values, positional, notes = _parse_flags(grammar, operation.usage, words)
    said = [grammar.keywords[0]]
    for index, token in enumerate(grammar.phrase[1:]):
        shown = " ".join(said)
        if index >= len(positional):
            missing = f"`{token.word}`" if isinstance(token, Keyword) else f"a {token.kind.placeholder}"
            raise GrammarError(f"`{shown}` needs {missing}", operation.usage)
        word = positional[index]
        if isinstance(token, Keyword):
            if word.lower() != token.word:
                raise GrammarError(f'`{shown}` needs `{token.word}` here, not "{quote_input(word)}"', operation.usage)
            said.append(token.word)
            continue
        try:
            values[token.field] = token.kind.check(word, token.field.replace("_", " "))
        except ValueError as error:
            raise GrammarError(str(error), operation.usage) from None
        said.append(token.kind.placeholder)
    extra = positional[len(grammar.phrase) - 1:]
    if extra:
        raise GrammarError(f'`{" ".join(grammar.keywords)}` does not take "{quote_input(" ".join(extra))}"',
                           operation.usage)
    return Command(operation, operation.options(**values), notes)


def _parse_flags(grammar: Words, usage: str, words: list[str]) -> tuple[dict[str, Any], list[str], tuple[str, ...]]:
    """Flags (anywhere after the first word, `--name value` or `--name=value`) by field, the
    positional words, and the notes of the flags accepted and ignored."""
    values: dict[str, Any] = {}
    positional: list[str] = []
    unknown: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("--"):
            _refuse_single_dash(grammar, usage, word)
            positional.append(word)
            continue
        raw_name, has_value, inline = word[2:].partition("=")
        name = raw_name.lower()
        spec, note = grammar.flag(name), grammar.ignored_note(name)
        if spec is None and note is None:
            unknown.append(f'"{quote_input(word)}"')
            continue
        # Twice is refused for every flag alike: for a value flag the two values may disagree, and
        # a boolean given twice is as likely a paste gone wrong.
        if name in seen:
            raise GrammarError(f"`--{name}` is given twice", usage)
        seen.add(name)
        if spec is None or spec.kind is None:
            if has_value:
                raise GrammarError(f"`--{name}` takes no value", usage)
            if spec is None:
                notes.append(note)
            else:
                values[spec.field] = True
        else:
            raw, index = _flag_value(spec, words, index, inline if has_value else None)
            if not raw:
                raise GrammarError(f"`--{spec.name}` needs a value: --{spec.name} {spec.kind.placeholder}", usage)
            try:
                values[spec.field] = spec.kind.check(raw, spec.noun)
            except ValueError as error:
                raise GrammarError(f"--{spec.name}: {error}", usage) from None
    if unknown:
        known = ", ".join(f"--{f.name}" for f in grammar.flags) or "no flags"
        raise GrammarError(f"`{' '.join(grammar.keywords)}` does not know {', '.join(unknown)} (it takes {known})",
                           usage)
    return values, positional, tuple(notes)


def _refuse_single_dash(grammar: Words, usage: str, word: str) -> None:
    """`-force` for `--force` (a short-option habit) gets the flag's name back, not "not a node name".
    No argument kind accepts a word starting with "-", so such a word is never anything else."""
    if word.startswith("-") and len(word) > 1:
        name = word[1:].partition("=")[0].lower()
        if grammar.flag(name) is not None or grammar.ignored_note(name) is not None:
            raise GrammarError(f"flags start with two dashes: --{name}", usage)


def _flag_value(spec: Flag, words: list[str], index: int, inline: str | None) -> tuple[str, int]:
    """The flag's value (which may span several words, for a selector) and where parsing goes on."""
    if inline is not None:
        raw = inline
    elif index < len(words) and not words[index].startswith("--"):
        raw, index = words[index], index + 1
    else:
        return "", index
    while (spec.kind.continues and raw and index < len(words) and not words[index].startswith("--")
           and spec.kind.continues(raw, words[index])):
        raw, index = f"{raw} {words[index]}", index + 1
    return raw, index

