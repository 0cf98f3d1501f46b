"""Facts about packages that dpkg and apt print: descriptions, sizes, list layout. Pure."""

from __future__ import annotations

import hashlib
import textwrap

DESCRIPTIONS = {
    "kubeadm": "Kubernetes Cluster Bootstrapping Tool",
    "kubelet": "Kubernetes Node Agent",
    "kubectl": "Kubernetes Command Line Tool",
    "kubernetes-cni": "Kubernetes CNI",
    "cri-tools": "Command-line utility for interacting with a container runtime",
    "containerd": "daemon to control runC",
    "libc6": "GNU C Library: Shared libraries",
    "openssl": "Secure Sockets Layer toolkit - cryptographic utility",
    "openssh-server": "secure shell (SSH) server, for secure access from remote machines",
    "sudo": "Provide limited super user privileges to specific users",
    "systemd": "system and service manager",
    "tzdata": "time zone and daylight-saving time data",
}


def description(name: str) -> str:
    if name.startswith("linux-image"):
        return "Linux kernel image"
    return DESCRIPTIONS.get(name, f"{name} package")


def size_kb(name: str, version: str) -> int:
    """A stable, plausible download size."""
    return 200 + int(hashlib.sha256(f"{name}={version}".encode()).hexdigest()[:4], 16) % 9000


def kilobytes(amount: int) -> str:
    return f"{amount:,} kB" if amount < 1000 else f"{amount / 1000:.1f} MB"


def package_list(names: list[str]) -> list[str]:
    """How apt lists package names under a heading: indented, wrapped at 80 columns."""
    return textwrap.wrap(" ".join(names), width=79, initial_indent="  ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)
