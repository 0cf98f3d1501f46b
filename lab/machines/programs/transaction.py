"""What an `apt-get install` or `upgrade` would change, decided before anything is touched. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.machines.programs.cache import Available, Cache
from lab.machines.programs.debversion import compare


@dataclass
class Change:
    name: str
    old: str | None  # None: newly installed
    new: Available

    @property
    def kind(self) -> str:
        if self.old is None:
            return "install"
        return "downgrade" if compare(self.new.version, self.old) < 0 else "upgrade"


@dataclass
class Transaction:
    changes: list[Change] = field(default_factory=list)
    kept_back: list[str] = field(default_factory=list)  # held packages an upgrade leaves alone
    up_to_date: list[tuple[str, str]] = field(default_factory=list)  # (name, version) asked for, already there
    errors: list[str] = field(default_factory=list)
    not_upgraded: int = 0

    def of_kind(self, kind: str) -> list[str]:
        return sorted(c.name for c in self.changes if c.kind == kind)

    def held_changed(self, cache: Cache) -> list[str]:
        return sorted(c.name for c in self.changes if cache.held(c.name))


def install(cache: Cache, targets: list[str]) -> Transaction:
    """`apt-get install NAME[=VERSION] ...`: the newest version, or the one named (globs allowed)."""
    plan = Transaction()
    for target in targets:
        name, _, pattern = target.partition("=")
        name = name.split("/", 1)[0]
        if not cache.known(name):
            plan.errors.append(f"Unable to locate package {name}")
            continue
        chosen = cache.find(name, pattern) if pattern else cache.candidate(name)
        if chosen is None:
            if pattern:
                plan.errors.append(f"Version '{pattern}' for '{name}' was not found")
            else:
                plan.errors.append(f"Package '{name}' has no installation candidate")
            continue
        old = cache.installed_version(name)
        if old is not None and compare(chosen.version, old) == 0:
            plan.up_to_date.append((name, old))
            continue
        plan.changes.append(Change(name, old, chosen))
    changing = {c.name for c in plan.changes}
    plan.not_upgraded = sum(1 for name in cache.upgradable() if name not in changing)
    return plan


def upgrade(cache: Cache) -> Transaction:
    """`apt-get upgrade`: every upgradable package except the held ones, which are kept back."""
    plan = Transaction()
    for name in cache.upgradable():
        if cache.held(name):
            plan.kept_back.append(name)
        else:
            plan.changes.append(Change(name, cache.installed_version(name), cache.candidate(name)))
    plan.not_upgraded = len(plan.kept_back)
    return plan
