"""Faults of one machine, set at runtime through PUT /_lab/machines/NAME/faults. Pure."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

PROGRAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
KEYS = ("sshRefused", "dropAfterSeconds", "latencyMs", "failures", "hostKeyChanged")


@dataclass(frozen=True)
class MachineFaults:
    ssh_refused: bool = False  # nothing listens on the machine's SSH port: connections are refused
    drop_after_seconds: float | None = None  # every SSH connection is cut this long after it began
    latency_ms: float = 0.0  # every SSH command waits this long before it runs
    failures: dict[str, dict] = field(default_factory=dict)  # program -> {"exitCode", "stderr", "stdout"}
    host_key_changed: bool = False  # the machine presents another host key than known_hosts has

    @classmethod
    def from_dict(cls, data: object) -> MachineFaults:
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown machine faults {', '.join(unknown)}; known: {', '.join(KEYS)}")
        for key in ("sshRefused", "hostKeyChanged"):
            if not isinstance(data.get(key, False), bool):
                raise ValueError(f"{key} must be true or false")
        drop = data.get("dropAfterSeconds")
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, int | float) or drop < 0):
            raise ValueError("dropAfterSeconds must be a number of seconds >= 0, or null")
        latency = data.get("latencyMs", 0)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ValueError("latencyMs must be a number >= 0")
        failures = data.get("failures") or {}
        if not isinstance(failures, dict):
            raise ValueError('failures must map a program to {"exitCode": N, "stderr": "..."}')
        checked = {}
        for program, failure in failures.items():
            if not PROGRAM_NAME.match(program):
                raise ValueError(f"failures: {program!r} is not a program name")
            if not isinstance(failure, dict) or set(failure) - {"exitCode", "stderr", "stdout"}:
                raise ValueError(f'failures.{program} must be {{"exitCode": N, "stderr": "...", "stdout": "..."}}')
            code = failure.get("exitCode", 1)
            if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
                raise ValueError(f"failures.{program}.exitCode must be between 1 and 255")
            checked[program] = {"exitCode": code, "stderr": str(failure.get("stderr", "")),
                                "stdout": str(failure.get("stdout", ""))}
        return cls(data.get("sshRefused", False), None if drop is None else float(drop), float(latency), checked,
                   data.get("hostKeyChanged", False))

    def as_dict(self) -> dict:
        return {"sshRefused": self.ssh_refused, "dropAfterSeconds": self.drop_after_seconds,
                "latencyMs": self.latency_ms, "failures": self.failures, "hostKeyChanged": self.host_key_changed}

    @property
    def any(self) -> bool:
        return self != MachineFaults()


def shim(program: str, failure: dict) -> str:
    """A program that fails as told, put ahead of the real one on PATH (for programs the lab does
    not provide itself; the lab's own programs read the fault from faults.json)."""
    return (f"#!/bin/sh\n# {program} fails: a lab fault (PUT /_lab/machines/NAME/faults)\n"
            f"printf '%s' {shlex.quote(failure['stdout'])}\nprintf '%s' {shlex.quote(failure['stderr'])} >&2\n"
            f"exit {failure['exitCode']}\n")
