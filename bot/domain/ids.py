"""The ids people type in chat: one pattern each, one generator each."""

from __future__ import annotations

import re
import secrets

# Short enough to type, random enough not to collide in a cluster's lifetime of maintenance
# jobs, and unmistakable for a node name (the prefix).
JOB_ID_PATTERN = re.compile(r"j-[0-9a-f]{8}")
BACKUP_ID_PATTERN = re.compile(r"b-[0-9a-f]{8}")


def new_job_id() -> str:
    return "j-" + secrets.token_hex(4)


def new_approval_id() -> str:
    """It travels as the approval buttons' `value`."""
    return "a-" + secrets.token_hex(4)


def is_job_id(value: str | None) -> bool:
    return bool(value) and JOB_ID_PATTERN.fullmatch(value) is not None
