"""The nodes' Prometheus metrics: SSH commands (docs/operations.md, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SSH_SECONDS = Histogram("kubemaint_ssh_command_duration_seconds", "How long node commands over SSH took, from "
                        "connecting to their end, by outcome (ok, failed: a non-zero exit, or why none came)",
                        ["outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
SSH_FAILURES = Counter("kubemaint_ssh_command_failures", "Node commands over SSH that did not exit 0, by reason: "
                       "exit (a non-zero exit code), deadline, dropped (the connection), too_large (output), "
                       "not_run (no session: connect, host key, login), error (anything else)", ["reason"])


def observe_command(outcome: str, seconds: float) -> None:
    """One command's end, from the audit record's `outcome` ("ok", "exit 1", "deadline", "not run (connect)")."""
    reason = _reason(outcome)
    SSH_SECONDS.labels("ok" if reason is None else "failed").observe(max(0.0, seconds))
    if reason is not None:
        SSH_FAILURES.labels(reason).inc()


def _reason(outcome: str) -> str | None:
    if outcome == "ok":
        return None
    if outcome.startswith("exit") or outcome == "failed":
        return "exit"
    if outcome in ("deadline", "dropped"):
        return outcome
    if outcome == "too large":
        return "too_large"
    if outcome.startswith("not run"):
        return "not_run"
    return "error"
