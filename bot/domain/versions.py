"""Kubernetes versions: `vMAJOR.MINOR.PATCH`, as typed in chat and as reported by the cluster."""

from __future__ import annotations

import re
from typing import NamedTuple

from bot.domain.text import printable

_STRICT = re.compile(r"v(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})")
# Distributions decorate what the cluster reports (v1.28.3+k3s1, v1.27.4-eks-8ccc7ba); the skew
# rules only look at the numbers, so reported versions may carry a semver suffix.
_SUFFIX = re.compile(r"[-+][0-9A-Za-z.+-]{1,64}")


class VersionError(ValueError):
    """A string that is not a Kubernetes version; the message quotes it and shows the form."""


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def minor_label(self) -> str:
        """`v1.20`: how people name a release line."""
        return f"v{self.major}.{self.minor}"


def parse_version(text: str) -> Version:
    """Parse exactly `vMAJOR.MINOR.PATCH` (what a user may type, e.g. `v1.20.0`)."""
    match = _STRICT.fullmatch(text)
    if not match:
        raise VersionError(f'"{printable(text)}" is not a Kubernetes version: expected vMAJOR.MINOR.PATCH, '
                           "e.g. v1.20.0")
    return Version(int(match[1]), int(match[2]), int(match[3]))


def parse_reported_version(text: str) -> Version:
    """Parse a version the cluster reports, ignoring a distribution suffix (`v1.28.3+k3s1`)."""
    match = _STRICT.match(text)
    if not match or (match.end() != len(text) and not _SUFFIX.fullmatch(text, match.end())):
        raise VersionError(f'"{printable(text)}" is not a Kubernetes version: expected vMAJOR.MINOR.PATCH, '
                           "e.g. v1.20.0")
    return Version(int(match[1]), int(match[2]), int(match[3]))

