"""apt-mark hold|unhold|showhold, as apt 2.x answers (dpkg selections kept in packages.json)."""

from __future__ import annotations

from lab.machines.programs import state
from lab.machines.programs.apt import LOCK_HELD
from lab.machines.programs.system import LockHeld, System

USAGE = """apt 2.0.6 (amd64)
Usage: apt-mark [options] {auto|manual} pkg1 [pkg2 ...]

apt-mark is a simple command line interface for marking packages
as manually or automatically installed. It can also be used to
manipulate the dpkg(1) selection states of packages, and to list
all packages with or without a certain marking.

Most used commands:
  auto - Mark the given packages as automatically installed
  manual - Mark the given packages as manually installed
  hold - Mark a package as held back
  unhold - Unset a package set as held back
  showauto - Print the list of automatically installed packages
  showmanual - Print the list of manually installed packages
  showhold - Print the list of packages on hold"""
NOT_ROOT = ("dpkg: error: requested operation requires superuser privilege\n"
            "E: Sub-process dpkg --set-selections returned an error code (2)\n"
            "E: Executing dpkg failed. Are you root?")


def apt_mark(system: System, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        system.out(USAGE)
        return 1
    command, names = words[0], words[1:]
    dpkg = state.packages(system)
    installed = dpkg["packages"]
    if command == "showhold":
        for name in sorted(n for n, entry in installed.items() if entry.get("held")):
            if not names or name in names:
                system.out(name)
        return 0
    if command in ("showmanual", "showauto"):
        if command == "showmanual":
            for name in sorted(installed):
                system.out(name)
        return 0
    if command not in ("hold", "unhold", "auto", "manual"):
        system.err(f"E: Invalid operation {command}")
        return 100
    if not names:
        system.err("E: No packages found")
        return 100
    unknown = [n for n in names if n not in installed]
    if unknown:
        system.err("\n".join(f"E: Unable to locate package {n}" for n in unknown) + "\nE: No packages found")
        return 100
    if command in ("auto", "manual"):
        for name in names:
            system.out(f"{name} was already set to {'manually' if command == 'manual' else 'automatically'} "
                       f"installed.")
        return 0
    hold = command == "hold"
    to_change = [n for n in names if bool(installed[n].get("held")) != hold]
    for name in names:
        if name not in to_change:
            system.out(f"{name} was already set on hold." if hold else f"{name} was already not on hold.")
    if not to_change:
        return 0
    if not system.is_root:
        system.err(NOT_ROOT)
        return 100
    try:
        with system.lock(state.DPKG_LOCK, wait=False):
            dpkg = state.packages(system)  # again, under the lock
            for name in to_change:
                dpkg["packages"][name]["held"] = hold
            system.write_json(state.PACKAGES, dpkg)
    except LockHeld as held:
        system.err(LOCK_HELD.format(path=state.DPKG_LOCK, holder=held.holder) +
                   "\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
                   "is another process using it?")
        return 100
    for name in to_change:
        system.out(f"{name} set on hold." if hold else f"Canceled hold on {name}.")
    return 0
