"""The dispatcher every lab program's wrapper execs: `python -m lab.machines.programs NAME ARGS...`."""

from __future__ import annotations

import contextlib
import ctypes
import sys

from lab.machines.programs import PROGRAMS, load, state
from lab.machines.programs.system import System

PR_SET_NAME = 15


def _name_process(name: str) -> None:
    """ps and apt's "held by process 1234 (apt-get)" name the program, not python."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PROGRAMS:
        sys.stderr.write(f"usage: python -m lab.machines.programs {{{','.join(PROGRAMS)}}} ARGS...\n")
        return 2
    name, args = argv[0], argv[1:]
    _name_process(name)
    system = System()
    failure = state.failure(system, name, args)
    if failure is not None:  # the lab's fault: this program fails as told
        sys.stdout.write(failure.get("stdout", ""))
        sys.stderr.write(failure.get("stderr", ""))
        return int(failure.get("exitCode", 1))
    try:
        return load(name)(system, args)
    except BrokenPipeError:
        return 141  # the reader went away (`apt list | head`), as SIGPIPE would end it
    finally:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
