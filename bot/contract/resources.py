"""Resources operations need by name ("kube", "redis", later "ssh", "backups"): each declared once,
as a module-level `Resource` beside the operations, with how to build it from the settings.

A process keeps one `Resources` for its life: a value is built the first time someone asks for
it, by one thread, and shared after that (a worker's jobs reuse its kube client and its TLS
connection instead of opening one per job).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.engine.actions import SharedResources


class NotConfigured(ValueError):
    """The settings leave this resource out (no `ssh` section): operations that can do without it say
    what they skipped; the others fail with this message."""


@dataclass(frozen=True)
class Resource:
    name: str
    build: Callable[[Any], Any]  # settings -> the resource
    summary: str = ""


class Resources(SharedResources):
    """Resources built on first use from their declarations; ending a job run leaves them open."""

    def __init__(self, kinds: Mapping[str, Resource], settings: Any) -> None:
        super().__init__()
        self._kinds = dict(kinds)
        self._settings = settings
        self._lock = threading.Lock()

    def __missing__(self, name: str) -> Any:
        kind = self._kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise KeyError(f"no resource named {name!r} is declared (declared: {known})")
        with self._lock:
            if name not in self:
                self[name] = kind.build(self._settings)
            return dict.__getitem__(self, name)
