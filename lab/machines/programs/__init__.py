"""The programs of a lab machine, run inside it by one dispatcher (`python -m lab.machines.programs NAME ARGS`).

Each program is `main(system, args) -> exit code` in a module of its own; a new one (say
`kubeadm upgrade`) is a module and a line here. Standard library only: they start in
a few tens of milliseconds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# name -> (module, function, where the real program lives on a Debian/Ubuntu machine)
PROGRAMS: dict[str, tuple[str, str, str]] = {
    "apt-get": ("apt", "apt_get", "/usr/bin/apt-get"),
    "apt-cache": ("apt", "apt_cache", "/usr/bin/apt-cache"),
    "apt": ("apt", "apt", "/usr/bin/apt"),
    "apt-mark": ("aptmark", "apt_mark", "/usr/bin/apt-mark"),
    "dpkg": ("dpkg", "dpkg", "/usr/bin/dpkg"),
    "dpkg-query": ("dpkg", "dpkg_query", "/usr/bin/dpkg-query"),
    "systemctl": ("systemctl", "systemctl", "/usr/bin/systemctl"),
    "reboot": ("systemctl", "reboot", "/usr/sbin/reboot"),
    "poweroff": ("systemctl", "poweroff", "/usr/sbin/poweroff"),
    "halt": ("systemctl", "poweroff", "/usr/sbin/halt"),
    "shutdown": ("systemctl", "shutdown", "/usr/sbin/shutdown"),
    "kubelet": ("kube", "kubelet", "/usr/bin/kubelet"),
    "kubeadm": ("kube", "kubeadm", "/usr/bin/kubeadm"),
    "kubectl": ("kube", "kubectl", "/usr/bin/kubectl"),
    "uname": ("uname", "uname", "/usr/bin/uname"),
    "uptime": ("uname", "uptime", "/usr/bin/uptime"),
}


def load(name: str) -> Callable:
    module, function, _ = PROGRAMS[name]
    return getattr(importlib.import_module(f"lab.machines.programs.{module}"), function)
