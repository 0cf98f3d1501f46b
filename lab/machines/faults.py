"""Faults of one machine, set at runtime through PUT /_lab/machines/NAME/faults. Pure."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

PROGRAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
SUBCOMMAND_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=/@-]*$")
KEYS = ("sshRefused", "dropAfterSeconds", "latencyMs", "failures", "hostKeyChanged", "kubeletFails", "bootFails")


@dataclass(frozen=True)
class MachineFaults:
    ssh_refused: bool = False  # nothing listens on the machine's SSH port: connections are refused
    drop_after_seconds: float | None = None  # every SSH connection is cut this long after it began
    latency_ms: float = 0.0  # every SSH command waits this long before it runs
    # "program [subcommand words]" -> {"exitCode", "stderr", "stdout"}: `kubeadm upgrade apply` fails
    # while `kubeadm version` works (the longest key matching the command's leading words wins)
    failures: dict[str, dict] = field(default_factory=dict)
    host_key_changed: bool = False  # the machine presents another host key than known_hosts has
    kubelet_fails: bool = False  # a started kubelet exits at once (systemctl still says 0); cleared: it comes up
    boot_fails: bool = False  # a reboot never comes back (a kernel that hangs at boot): off until powered on

    @classmethod
    def from_dict(cls, data: object) -> MachineFaults:
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown machine faults {', '.join(unknown)}; known: {', '.join(KEYS)}")
        for key in ("sshRefused", "hostKeyChanged", "kubeletFails", "bootFails"):
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
            words = program.split() if isinstance(program, str) else []
            if not words or not PROGRAM_NAME.match(words[0]):
                raise ValueError(f"failures: {program!r} is not a program name")
            bad = [w for w in words[1:] if not SUBCOMMAND_WORD.match(w)]
            if bad:
                raise ValueError(f"failures: {program!r}: {bad[0]!r} is not a subcommand word (flags are not matched)")
            program = " ".join(words)
            if not isinstance(failure, dict) or set(failure) - {"exitCode", "stderr", "stdout"}:
                raise ValueError(f'failures.{program} must be {{"exitCode": N, "stderr": "...", "stdout": "..."}}')
            code = failure.get("exitCode", 1)
            if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
                raise ValueError(f"failures.{program}.exitCode must be between 1 and 255")
            checked[program] = {"exitCode": code, "stderr": str(failure.get("stderr", "")),
                                "stdout": str(failure.get("stdout", ""))}
        return cls(data.get("sshRefused", False), None if drop is None else float(drop), float(latency), checked,
                   data.get("hostKeyChanged", False), data.get("kubeletFails", False), data.get("bootFails", False))

    def as_dict(self) -> dict:
        shown = {"sshRefused": self.ssh_refused, "dropAfterSeconds": self.drop_after_seconds,
                 "latencyMs": self.latency_ms, "failures": self.failures, "hostKeyChanged": self.host_key_changed}
        if self.kubelet_fails:  # shown when set only: the earlier keys' shape stays as clients know it
            shown["kubeletFails"] = True
        if self.boot_fails:
            shown["bootFails"] = True
        return shown

    def by_program(self) -> dict[str, dict[str, dict]]:
        """{program: {subcommand words ("" for any): failure}}."""
        grouped: dict[str, dict[str, dict]] = {}
        for key, failure in self.failures.items():
            program, _, words = key.partition(" ")
            grouped.setdefault(program, {})[words] = failure
        return grouped

    @property
    def any(self) -> bool:
        return self != MachineFaults()


def shim(program: str, failures: dict[str, dict], shim_dirs: tuple[str, ...]) -> str:
    """A program that fails as told, put ahead of the real one on PATH (for programs the lab does
    not provide itself; the lab's own programs read the fault from faults.json). `failures` maps
    subcommand words ("" for any) to a failure; a command no key matches runs the real program."""
    lines = [f"#!/bin/sh\n# {program} fails: a lab fault (PUT /_lab/machines/NAME/faults)",
             'words=""', 'for arg; do case "$arg" in -*) ;; *) words="$words $arg " ;; esac; done',
             'words=$(printf "%s" "$words" | tr -s " ")', 'case "$words" in']
    for words in sorted(failures, key=lambda w: -len(w.split())):
        failure = failures[words]
        pattern = shlex.quote(" " + " ".join(words.split()) + " ") + "*" if words else "*"
        lines.append(f"  {pattern})\n    printf '%s' {shlex.quote(failure['stdout'])}\n"
                     f"    printf '%s' {shlex.quote(failure['stderr'])} >&2\n    exit {failure['exitCode']} ;;")
    lines.append("esac")
    skipped = "|".join(shim_dirs)
    lines += ['IFS=:', 'for dir in $PATH; do', f'  case "$dir" in {skipped}) continue ;; esac',
              f'  if [ -x "$dir/{program}" ]; then unset IFS; exec "$dir/{program}" "$@"; fi', 'done',
              f'echo "{program}: command not found" >&2', 'exit 127', '']
    return "\n".join(lines)
