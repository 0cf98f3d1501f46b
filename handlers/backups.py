"""backups [--page N]: the backup catalog, newest first, a page of ten at a time (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.backups import Entry, Page
from bot.contract import COUNT, READ_ONLY, Asking, Operation, flag
from bot.domain.text import MAX_MESSAGE_CHARS, age, clip, escape, size

PAGE_SIZE = 10
HOW_TO_MAKE_ONE = ("`backup etcd` takes an etcd snapshot now; `backups.schedule` in the configuration takes them "
                   "on a schedule.")


@dataclass(frozen=True)
class BackupsOptions:
    page: int = flag(COUNT, default=1, help="which page of ten, newest first")


def answer_backups(asking: Asking, options: BackupsOptions) -> str:
    backups = asking.resources["backups"]
    return backups_text(backups.page(options.page, PAGE_SIZE), asking.now, backups.cluster)


def backups_text(page: Page, now: float, cluster: str) -> str:
    """A header, one table row per backup, and the command for the next page."""
    if page.total == 0:
        return f"No backups yet. {HOW_TO_MAKE_ONE}"
    if not page.entries:
        last = page.pages
        return (f"There is no page {page.number}: {page.total} backup{'s' if page.total != 1 else ''} fill "
                f"{last} page{'s' if last != 1 else ''} (`backups --page {last}`).")
    clusters = {entry.cluster for entry in page.entries}
    of = f" of {escape(cluster)}" if clusters == {cluster} else ""
    header = f"*Backups*{of}, newest first (page {page.number} of {page.pages}, {page.total} in all)"
    parts = [header, _table(page.entries, now, with_cluster=clusters != {cluster})]
    if page.number < page.pages:
        parts.append(f"Older: `backups --page {page.number + 1}`")
    return clip("\n".join(parts), MAX_MESSAGE_CHARS)


def _table(entries: tuple[Entry, ...], now: float, *, with_cluster: bool) -> str:
    header = ["ID", "KIND", "AGE", "REVISION", "KEYS", "SIZE", "NODE", "REQUESTER"]
    rows = [[entry.id, entry.kind, age(now - entry.created_at), _number(entry.revision), _number(entry.keys),
             size(entry.size), entry.node or "-", entry.requester or "-"] for entry in entries]
    if with_cluster:
        header.append("CLUSTER")
        for row, entry in zip(rows, entries, strict=True):
            row.append(entry.cluster)
    widths = [min(30, max(len(row[i]) for row in [header, *rows])) for i in range(len(header))]
    lines = ["  ".join(cell[:30].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "```\n" + "\n".join(escape(line) for line in lines) + "\n```"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


BACKUPS = Operation(
    name="backups", words="backups", options=BackupsOptions, policy=READ_ONLY, needs=("backups",),
    description="list backups, newest first, with their age, etcd revision, keys and size", answer=answer_backups,
)
