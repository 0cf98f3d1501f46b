"""The ids people type in chat: one pattern each, one generator each."""

from __future__ import annotations

import re
import secrets
import time

# Short enough to type, random enough not to collide in a cluster's lifetime of maintenance
# jobs, and unmistakable for a node name (the prefix).
JOB_ID_PATTERN = re.compile(r"j-[0-9a-f]{8}")
BACKUP_ID_PATTERN = re.compile(r"b-[0-9a-f]{8}")


def new_job_id() -> str:
    return "j-" + secrets.token_hex(4)


# A backup id's first six hex digits are the minutes since BACKUP_ID_EPOCH (2025-01-01 UTC), so ids sort by
# when they were made (until 2056, when six digits run out); the last two are random. Two backups in one
# minute may draw the same pair: the catalog reserves each id before use and draws again if it is taken.
BACKUP_ID_EPOCH = 1_735_689_600
_BACKUP_MINUTES_MAX = 0xFFFFFF


def new_backup_id(now: float | None = None) -> str:
    minutes = int(((time.time() if now is None else now) - BACKUP_ID_EPOCH) // 60)
    return f"b-{min(max(minutes, 0), _BACKUP_MINUTES_MAX):06x}{secrets.randbelow(256):02x}"


def is_backup_id(value: str | None) -> bool:
    return bool(value) and BACKUP_ID_PATTERN.fullmatch(value) is not None


def new_approval_id() -> str:
    """It travels as the approval buttons' `value`."""
    return "a-" + secrets.token_hex(4)


def is_job_id(value: str | None) -> bool:
    return bool(value) and JOB_ID_PATTERN.fullmatch(value) is not None
