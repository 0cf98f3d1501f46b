"""Keeping secrets out of logs, the audit trail and error messages.

Two kinds of secret reach node commands: values the caller knows are secret (a kubeadm token in
an argument: wrap it in `Secret`), and values that turn up in output (a private key that `cat`
printed, a password in a config file, the key's passphrase). The first are shown as
`[redacted]` wherever the command is displayed; the second are caught by `Redactor`, which
knows the exact secret values it was given plus the shapes secrets usually have. Raw output is
still handed to the caller, who needs it to parse; only what is displayed is redacted.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"


class Secret:
    """An argument that must run as given but never be shown: `["kubeadm", "join", "--token", Secret(token)]`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret takes a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


_PEM_BEGIN = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
_PEM_END = r"-----END [A-Z0-9 ]*PRIVATE KEY-----"
# Names whose values are secrets: passwords, tokens, keys (YAML's `tls.key`, a kubeconfig's `client-key-data`).
# Bounded and anchored at the start of a word: an unbounded `[\w.-]*` around the alternatives costs
# quadratic time on a long run of letters, and output has megabyte-long lines.
_SECRET_NAME = (r"[\w.-]{0,40}?(?:password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key"
                r"|certificate[_-]key|key[_-]data|\.key\b)[\w.-]{0,40}")
_WORD_START = r"(?<![\w.-])"
_SHAPES = [
    # A whole private key block, or the part of one that a tail or a clipped message kept.
    re.compile(_PEM_BEGIN + r".*?(?:" + _PEM_END + r"|\Z)", re.DOTALL),
    re.compile(r"\A.*?" + _PEM_END, re.DOTALL),
    # name=value, name: value; then --token value
    re.compile(r"(?i)(?P<name>" + _WORD_START + _SECRET_NAME + r")(?P<sep>\"?\s*[:=]\s*)(?P<value>\S+)"),
    re.compile(r"(?i)(?P<name>" + _WORD_START + "--" + _SECRET_NAME + r")(?P<sep>\s+)(?P<value>[^\s-]\S*)"),
    re.compile(r"(?i)(?P<name>\bbearer)(?P<sep>\s+)(?P<value>[\w.~+/=-]+)"),
    re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"),  # a kubeadm bootstrap token
    # Credentials in a URL (an apt source of a private mirror: https://user:password@host/...).
    re.compile(r"(?P<name>://[^\s/@:]+)(?P<sep>:)(?P<value>[^\s/@]+)(?=@)"),
    re.compile(r"\bxox[abposr]-[\w-]+|\bxapp-[\w-]+"),  # Slack tokens
]


def _replace(match: re.Match[str]) -> str:
    names = match.re.groupindex
    if "value" in names:
        return f"{match['name']}{match['sep']}{REDACTED}"
    return REDACTED


class Redactor:
    """Replaces known secret values and secret-shaped text with `[redacted]`. Thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | Secret) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        # Very short values would blank out ordinary words; nobody's passphrase is two letters.
        if value and len(value) >= 4:
            with self._lock:
                self._values.add(value)

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)  # longest first: one may contain another
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        for shape in _SHAPES:
            text = shape.sub(_replace, text)
        return text
