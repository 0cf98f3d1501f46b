"""uname and uptime: the machine's running kernel and boot time come from its boot record."""

from __future__ import annotations

import time

from lab.machines.programs import state
from lab.machines.programs.system import System

FIELDS = {"-s": "kernel-name", "-n": "nodename", "-r": "kernel-release", "-v": "kernel-version", "-m": "machine",
          "-p": "processor", "-i": "hardware-platform", "-o": "operating-system"}
KERNEL_BUILD = "#1-Ubuntu SMP Wed Jan 6 13:20:46 UTC 2021"  # how the kernel was built, not when it booted
ORDER = ["-s", "-n", "-r", "-v", "-m", "-p", "-i", "-o"]


def uname(system: System, args: list[str]) -> int:
    boot = state.boot(system)
    kernel = boot.get("kernel", "unknown")
    values = {"-s": "Linux", "-n": system.hostname(), "-r": kernel, "-v": KERNEL_BUILD,
              "-m": "x86_64", "-p": "x86_64", "-i": "x86_64", "-o": "GNU/Linux"}
    wanted: set[str] = set()
    long_names = {f"--{name}": flag for flag, name in FIELDS.items()}
    for arg in args:
        if arg in ("-a", "--all"):
            wanted.update(ORDER)
        elif arg in long_names:
            wanted.add(long_names[arg])
        elif arg.startswith("-") and not arg.startswith("--") and all(f"-{c}" in FIELDS or c == "a" for c in arg[1:]):
            for letter in arg[1:]:
                wanted.update(ORDER if letter == "a" else [f"-{letter}"])
        else:
            system.err(f"uname: invalid option -- '{arg.lstrip('-')[:1]}'\nTry 'uname --help' for more information."
                       if arg.startswith("-") else f"uname: extra operand '{arg}'\nTry 'uname --help' for more "
                                                    f"information.")
            return 1
    system.out(" ".join(values[f] for f in ORDER if f in (wanted or {"-s"})))
    return 0


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    clock = f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min"
    return f"{days} day{'s' if days != 1 else ''}, {clock}" if days else clock


def _pretty(seconds: int) -> str:
    parts = []
    for size, unit in ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return "up " + (", ".join(parts) or "0 minutes")


def uptime(system: System, args: list[str]) -> int:
    booted = float(state.boot(system).get("bootedAt") or system.clock())
    seconds = int(system.clock() - booted)
    if "-s" in args or "--since" in args:
        system.out(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(booted)))
    elif "-p" in args or "--pretty" in args:
        system.out(_pretty(seconds))
    else:
        now = time.strftime("%H:%M:%S", time.gmtime(system.clock()))
        system.out(f" {now} up {_duration(seconds)},  1 user,  load average: 0.00, 0.00, 0.00")
    return 0
