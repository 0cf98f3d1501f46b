"""help: every command with its usage, from the operations' own declarations."""

from __future__ import annotations

from bot.contract import READ_ONLY, Asking, NoOptions, Operation
from bot.contract.registry import Registry
from bot.contract.registry import operations as builtin_operations


def help_text(operations: Registry | None = None) -> str:
    """Every command's usage and description, one per line."""
    operations = operations if operations is not None else builtin_operations()
    lines = [f"`{op.usage}` — {op.description}" for op in operations.values()]
    return "Commands (mention me or use /kubemaint):\n" + "\n".join(lines)


def answer_help(asking: Asking, options: NoOptions) -> str:
    text = help_text(asking.operations)
    clusters = list(getattr(asking.settings, "clusters", None) or ())
    if clusters:
        text += (f"\nEvery command takes `--cluster NAME` (clusters: {', '.join(clusters)}); without it, a command "
                 "goes to its channel's cluster.")
    return text


HELP = Operation(name="help", words="help", policy=READ_ONLY, description="show this list of commands",
                 answer=answer_help)
