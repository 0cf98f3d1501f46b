"""What a node says about itself over SSH: OS, kernel, boot, Kubernetes packages and their holds,
the package repo, pending updates and whether a reboot is required.

One fixed script reads it all in one round trip (nothing from chat goes into it), printing each
part under a marker line; `parse_facts` turns that output into `MachineFacts` (pure). The
commands are the ones an operator would type on a Debian node and work without root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
_MARK = "@@kubemaint:"
_PARTS = {
    "os": "cat /etc/os-release",
    "kernel": "uname -r",
    "boot": "uptime -s",
    "packages": "dpkg-query -W -f='${Package} ${Version}\\n' " + " ".join(KUBE_PACKAGES),
    "held": "apt-mark showhold",
    "repo": "cat /etc/apt/sources.list.d/kubernetes.list",
    "pending": "apt-get -s upgrade",
    "reboot": "if [ -f /var/run/reboot-required ]; then echo REQUIRED; cat /var/run/reboot-required.pkgs; fi",
}
_PKGS_K8S = re.compile(r"pkgs\.k8s\.io/core:/stable:/(v1\.\d+)/deb")
_LEGACY_REPO = re.compile(r"apt\.kubernetes\.io/?\s+kubernetes-\w+\s+main")
_INST = re.compile(r"^Inst (\S+) \[([^\]]+)\] \((\S+)")
_KEPT_BACK = "The following packages have been kept back:"


def facts_script() -> list[str]:
    """The argv that prints every part under its marker (errors of one part do not stop the rest)."""
    # Each part's errors go with its output (a missing file says so there); the script itself ends well,
    # so a non-zero exit means the shell could not run it.
    script = "; ".join(f"echo '{_MARK}{name}'; {{ {command}; }} 2>&1" for name, command in _PARTS.items())
    return ["sh", "-c", script + "; exit 0"]


@dataclass(frozen=True)
class Pending:
    package: str
    installed: str
    candidate: str


@dataclass(frozen=True)
class MachineFacts:
    os_image: str
    kernel: str
    booted: str  # "2026-12-01 13:02:11", local time as `uptime -s` prints it
    packages: dict[str, str] = field(default_factory=dict)  # installed Kubernetes packages -> version
    held: frozenset[str] = frozenset()
    repo: str = ""  # "v1.32" (pkgs.k8s.io, one minor per repo), "legacy apt.kubernetes.io", or the line
    pending: tuple[Pending, ...] = ()
    kept_back: tuple[str, ...] = ()  # held packages apt-get would not upgrade
    reboot_required: bool = False
    reboot_packages: tuple[str, ...] = ()


def parse_facts(output: str) -> MachineFacts:
    parts = _split(output)
    os_release = dict(_os_release(parts.get("os", "")))
    pending, kept_back = _pending(parts.get("pending", ""))
    reboot = [line for line in parts.get("reboot", "").splitlines() if line.strip()]
    return MachineFacts(
        os_image=os_release.get("PRETTY_NAME", "unknown"),
        kernel=_first_line(parts.get("kernel", "")),
        booted=_first_line(parts.get("boot", "")),
        packages=_packages(parts.get("packages", "")),
        held=frozenset(line.strip() for line in parts.get("held", "").splitlines() if line.strip()),
        repo=_repo(parts.get("repo", "")),
        pending=pending,
        kept_back=kept_back,
        reboot_required="REQUIRED" in reboot,
        reboot_packages=tuple(line.strip() for line in reboot if line.strip() != "REQUIRED"),
    )


def _split(output: str) -> dict[str, str]:
    parts: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(_MARK):
            current = parts.setdefault(line[len(_MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in parts.items()}


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _os_release(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals:
            pairs.append((key.strip(), value.strip().strip('"')))
    return pairs


def _packages(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        words = line.split()
        # dpkg-query names a package it does not know on stderr ("no packages found matching ...").
        if len(words) == 2 and words[0] in KUBE_PACKAGES:
            found[words[0]] = words[1]
    return found


def _repo(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    for line in lines:
        if match := _PKGS_K8S.search(line):
            return match[1]
        if _LEGACY_REPO.search(line):
            return "legacy apt.kubernetes.io"
    return lines[0] if lines else ""


def _pending(text: str) -> tuple[tuple[Pending, ...], tuple[str, ...]]:
    pending, kept, in_kept = [], [], False
    for line in text.splitlines():
        if match := _INST.match(line):
            pending.append(Pending(match[1], match[2], match[3]))
        if line.startswith(_KEPT_BACK):
            in_kept = True
        elif in_kept and line.startswith("  "):
            kept.extend(line.split())
        else:
            in_kept = False
    return tuple(pending), tuple(kept)
