"""Text that ends up in Slack: one escaping rule, and fitting into Slack's sizes.

Anything that came from a user, the cluster or a node goes through `escape` (or `quote_input`,
which also makes it printable and short) before it is posted, so it cannot ping `@channel`
or forge a link.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_MESSAGE_CHARS = 3900  # Slack's practical limit for a message is about 4,000
MAX_LINE_CHARS = 300  # one runaway error detail must not crowd out the rest


def escape(text: str) -> str:
    """Slack's three control characters as entities; everything else (mrkdwn, emoji) stays."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote_input(value: str, limit: int = 40) -> str:
    """User input made safe to echo in chat: printable, truncated, escaped."""
    return escape(printable(value, limit))


def printable(value: str, limit: int = 40) -> str:
    """Control characters as "?", cut to `limit` characters with "…"."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def fit(lines: Sequence[str], budget: int, noun: str) -> list[str]:
    """As many lines as fit in `budget` characters, then `… and N more <noun>`."""
    if sum(len(line) + 1 for line in lines) <= budget:
        return list(lines)
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        more = f"… and {len(lines) - index} more {noun}"
        if used + len(line) + 1 + len(more) + 1 > budget:
            return [*kept, more]
        kept.append(line)
        used += len(line) + 1
    return kept


def clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` cut to `limit` characters with "…", never inside an entity such as `&amp;`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # "&am" would show as garbage
    return cut + "…"


def duration(seconds: float) -> str:
    """`0.4s`, `12s`, `1m 05s`, `2h 03m`: precise when short, readable when long."""
    if round(seconds, 1) < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def age(seconds: float) -> str:
    """How long ago, coarsely, as a list of backups shows it: `40s`, `12m`, `5h 20m`, `3d 4h`, `45d`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days}d {hours}h" if hours and days < 10 else f"{days}d"


def size(count: int) -> str:
    """Bytes in binary units, three significant digits: `512 B`, `1.5 KiB`, `23.4 MiB`, `1.07 GiB`."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1023.5 or unit == "PiB":  # 1023.9 KiB reads better as 1 MiB
            break
    return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
