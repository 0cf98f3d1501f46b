"""Kubernetes version strings as the lab reports them (vMAJOR.MINOR.PATCH)."""

from __future__ import annotations

import re

VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def parse(version: str) -> tuple[int, int, int]:
    match = VERSION.match(version)
    if not match:
        raise ValueError(f"version {version!r} is not of the form vMAJOR.MINOR.PATCH (e.g. v1.19.0)")
    return int(match[1]), int(match[2]), int(match[3])


def parse_minor(version: str) -> int:
    return parse(version)[1]
