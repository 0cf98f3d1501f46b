"""Kubernetes label selectors: the one parser for the string form (`LabelSelector.parse("app=web,!canary")`),
the API form (`matchLabels` / `matchExpressions`), and matching.

The string parser accepts only a safe subset of the syntax (letters, digits and `._/=!(), -`), so
a parsed selector can be shown in chat, stored in a job and sent to the API without escaping.
It normalises: terms sorted, `==` as `=`, set values sorted; `LabelSelector.text` is that form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain.text import quote_input

# Kubernetes label syntax: a name segment, optionally behind a DNS-subdomain prefix.
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
SELECTOR_CHARS = re.compile(r"[A-Za-z0-9._/=!(), -]+")  # nothing here means anything to a shell or to Slack
_SET_TERM = re.compile(r"([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)")
_EQUALITY_TERM = re.compile(r"([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)")
_EXISTS_TERM = re.compile(r"(!?)\s*([^\s=!(),]+)")
SELECTOR_HELP = ("use label keys and values of letters, digits, \".\", \"_\", \"-\" (and \"/\" in keys) with "
                 "key=value, key!=value, \"key in (a,b)\", \"key notin (a,b)\", key or !key, joined by commas")


@dataclass(frozen=True)
class Requirement:
    """One `matchExpressions` entry; `matchLabels` and `key=value` become `In` with one value."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        return False  # an operator we do not know matches nothing, as the API server would refuse it


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector: every requirement must hold; no requirements match everything."""

    requirements: tuple[Requirement, ...] = ()
    text: str = ""  # the normalised string form, when parsed from one

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @classmethod
    def from_api(cls, obj: Mapping) -> LabelSelector:
        requirements = [Requirement(k, "In", (str(v),)) for k, v in sorted((obj.get("matchLabels") or {}).items())]
        requirements += [
            Requirement(e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or ()))
            for e in obj.get("matchExpressions") or []
        ]
        return cls(tuple(requirements))

    @classmethod
    def parse(cls, value: str) -> LabelSelector:
        """The string form, checked and normalised. Raises ValueError saying what is wrong."""
        return _parse(value)


def _parse(value: str) -> LabelSelector:
    text = " ".join(value.split())
    if not text:
        raise ValueError("the pod selector is empty")
    if not SELECTOR_CHARS.fullmatch(text):
        raise ValueError(f'"{quote_input(text)}" is not a valid pod selector: {SELECTOR_HELP}')
    try:
        terms = sorted(set(map(_term, _split(text))), key=lambda term: (term[1].key, term[0]))
    except ValueError as error:
        raise ValueError(f"not a valid pod selector: {error}; {SELECTOR_HELP}") from None
    return LabelSelector(tuple(requirement for _, requirement in terms), ",".join(shown for shown, _ in terms))


def _split(text: str) -> list[str]:
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


def _term(term: str) -> tuple[str, Requirement]:
    """(normalised text, requirement) of one term."""
    if match := _SET_TERM.fullmatch(term):
        key, operator = _key(match[1], term), match[2]
        values = sorted({_value(v.strip(), term) for v in match[3].split(",")})
        if values == [""]:
            raise ValueError(f'"{quote_input(term)}": `{operator}` needs at least one value')
        return (f"{key} {operator} ({','.join(values)})",
                Requirement(key, "In" if operator == "in" else "NotIn", tuple(values)))
    if match := _EQUALITY_TERM.fullmatch(term):
        key, value = _key(match[1], term), _value(match[3], term)
        negated = match[2] == "!="  # == and = mean the same
        return f"{key}{'!=' if negated else '='}{value}", Requirement(key, "NotIn" if negated else "In", (value,))
    if match := _EXISTS_TERM.fullmatch(term):
        key = _key(match[2], term)
        return f"{match[1]}{key}", Requirement(key, "DoesNotExist" if match[1] else "Exists")
    raise ValueError(f'"{quote_input(term)}" is not a selector term')


def _key(key: str, term: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix)):
        raise ValueError(f'"{quote_input(term)}": the key prefix "{quote_input(prefix)}" is not a DNS subdomain')
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f'"{quote_input(term)}": "{quote_input(name)}" is not a valid label key (at most 63 '
                         "letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit)")
    return key


def _value(value: str, term: str) -> str:
    if value and not _LABEL_NAME.fullmatch(value):
        raise ValueError(f'"{quote_input(term)}": "{quote_input(value)}" is not a valid label value (at most 63 '
                         "letters, digits, \"-\", \"_\" or \".\", starting and ending with a letter or digit)")
    return value


def selector_continues(text: str, next_word: str) -> bool:
    """Does a selector typed as `text` go on into `next_word`? A selector is one word unless it is
    visibly unfinished: inside `( )`, after a comma or an operator, or followed by an operator
    ("tier in (a,b)", "app != web")."""
    if text.count("(") > text.count(")") or text.endswith((",", "=", "!")):
        return True
    if text.rsplit(" ", 1)[-1].lower() in ("in", "notin"):
        return True
    return next_word.lower() in ("in", "notin") or next_word.startswith((",", "=", "!=", "(", ")"))
