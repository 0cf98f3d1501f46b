"""Writing a benchmark's results into docs/benchmarks.md: its section replaced, the others kept."""

from __future__ import annotations

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
