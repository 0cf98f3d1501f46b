"""Writing a benchmark's results into docs/benchmarks.md: its section replaced, the others kept."""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path


def replace_section(path: Path, heading: str, section: str) -> None:
    """Put `section` (starting with "\\n## {heading}") at the end of `path`, removing the previous run's."""
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    marker = f"\n## {heading}"
    if marker in existing:
        start = existing.index(marker)
        end = existing.find("\n## ", start + 1)
        existing = existing[:start] + (existing[end:] if end != -1 else "")
    path.write_text(existing.rstrip("\n") + "\n" + section)


def section(heading: str, script: str, setup: str, body: str) -> str:
    """A benchmark's section: its heading with the time of the run, the command and machine, how it was set up,
    then `body` (the results)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"\n## {heading} ({stamp})\n\n`python benchmarks/{script}` on {platform.machine()}, {setup}\n\n{body}\n"


def publish(text: str, *, record: Path | None, heading: str, script: str, setup: str,
            started: float | None = None) -> None:
    """Print the results (and the run's length, from `started`); with `record`, replace this benchmark's section
    of that file with them."""
    print(text)
    if started is not None:
        print(f"total {time.monotonic() - started:.1f} s")
    if record:
        replace_section(record, heading, section(heading, script, setup, text))
        print(f"recorded in {record}")
