"""The operation contract: what an operation declares (operation.py), the words it is typed
with (words.py), the resources it names (resources.py), how operations are found
(registry.py), and what people read about the jobs they become (reports.py).

Operations (handlers/) import this; the chat edge finds and runs them through it.
"""

from bot.contract.operation import (
    OPERATORS,
    READ_ONLY,
    ROLES,
    Answer,
    Asking,
    Attachment,
    Operation,
    Plan,
    PlanChanged,
    Policy,
    Role,
)
from bot.contract.resources import NotConfigured, Resource
from bot.contract.words import (
    BACKUP_ID,
    COUNT,
    DURATION,
    JOB_ID,
    NAMESPACE,
    NODE,
    NODES,
    SECONDS,
    SELECTOR,
    VERSION,
    Ignored,
    NoOptions,
    choice,
    flag,
    ignored,
)

__all__ = [
    "BACKUP_ID", "COUNT", "DURATION", "JOB_ID", "NAMESPACE", "NODE", "NODES", "OPERATORS", "READ_ONLY", "ROLES",
    "SECONDS", "SELECTOR", "VERSION", "Answer", "Asking", "Attachment", "Ignored", "NoOptions", "NotConfigured",
    "Operation", "Plan", "PlanChanged", "Policy", "Resource", "Role", "choice", "flag", "ignored",
]
