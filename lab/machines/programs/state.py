"""Where a machine keeps its state, and the shapes of those files.

Everything lives in the machine's own files, so it survives the machine's reboots and the
lab's restarts of it, and the lab reads it the way an observer would (lab/machines/kubelet.py).

packages.json  {"packages": {name: {"version", "held", "description", "kernel"?}}, "kernels": [release, ...]}
archive.json   what the package mirrors offer (written by the lab from the scenario):
               {"kubernetes": {"legacy": {"1.19": latest patch, ...}, "pkgs": {...}},
                "os": {"codename", "updates": {name: {"version", "kernel"?, "reboot"?}}}}
lists.json     what apt fetched at its last `apt-get update` (same shape as an archive entry)
services.json  {unit: {"enabled", "active", "since", "version"?, "unitChanged"?}}
boot.json      {"bootId", "kernel", "bootedAt", "boots"}
faults.json    {"failures": {"program [subcommand...]": {"exitCode", "stderr", "stdout"}}, "kubeletFails": bool}
               (written by the lab)
"""

from __future__ import annotations

from lab.machines.programs.system import System

STATE_DIR = "/var/lib/kubemaint-lab"
PACKAGES = f"{STATE_DIR}/packages.json"
ARCHIVE = f"{STATE_DIR}/archive.json"
LISTS = f"{STATE_DIR}/lists.json"
SERVICES = f"{STATE_DIR}/services.json"
BOOT = f"{STATE_DIR}/boot.json"
FAULTS = f"{STATE_DIR}/faults.json"
LAB_SETTINGS = f"{STATE_DIR}/lab.json"  # {"timeScale": the lab's}: kubeadm scales its timeouts by it
# Seconds every SSH command waits before it runs (the lab's command-latency fault); read by
# the session wrapper, a shell script, hence a plain number rather than JSON.
SESSION_DELAY = f"{STATE_DIR}/session-delay"
# One line per SSH command the machine ran (time, user, command): what tests read to know that
# nothing ran (a refused host key), as an operator would read auth.log.
SESSION_LOG = "/var/log/kubemaint-lab-sessions.log"
# Cleared at every boot (/run is a fresh tmpfs): a power request lasts until the lab acts on it.
RUN_DIR = "/run/kubemaint-lab"
POWER_REQUEST = f"{RUN_DIR}/power"
BOOT_ID = f"{RUN_DIR}/boot_id"
DPKG_LOCK = "/var/lib/dpkg/lock-frontend"
LISTS_LOCK = "/var/lib/apt/lists/lock"
SERVICES_LOCK = f"{STATE_DIR}/services.lock"
REBOOT_REQUIRED = "/var/run/reboot-required"
REBOOT_REQUIRED_PKGS = "/var/run/reboot-required.pkgs"
KUBERNETES_LIST = "/etc/apt/sources.list.d/kubernetes.list"
KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")


def packages(system: System) -> dict:
    return system.read_json(PACKAGES, {"packages": {}, "kernels": []})


def installed_version(system: System, package: str) -> str | None:
    entry = packages(system)["packages"].get(package)
    return entry["version"] if entry else None


def kube_version(package_version: str) -> str:
    """'1.19.0-00' or '1.27.3-1.1' -> 'v1.19.0': what the binary of that package reports."""
    return "v" + package_version.split("-", 1)[0].split(":", 1)[-1]


def services(system: System) -> dict:
    return system.read_json(SERVICES, {})


def boot(system: System) -> dict:
    return system.read_json(BOOT, {})


def faults(system: System) -> dict:
    return system.read_json(FAULTS, {}) or {}


def failure(system: System, program: str, args: list[str] | tuple[str, ...] = ()) -> dict | None:
    """The lab's fault for this command (PUT /_lab/machines/NAME/faults), if any: a key names the
    program and maybe its leading subcommand words (`kubeadm upgrade apply`), matched on the
    command's leading words that are not flags; the longest matching key wins."""
    words = [a for a in args if not a.startswith("-")]
    best: tuple[int, dict] | None = None
    for key, found in (faults(system).get("failures") or {}).items():
        name, *subcommand = key.split()
        if name == program and words[:len(subcommand)] == subcommand and (best is None or len(subcommand) > best[0]):
            best = (len(subcommand), found)
    return best[1] if best else None


def kubelet_fails(system: System) -> bool:
    """The lab's kubeletFails fault: a started kubelet exits at once, and systemd keeps restarting it."""
    return bool(faults(system).get("kubeletFails"))
