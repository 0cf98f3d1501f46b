"""systemctl and the power commands (reboot, poweroff, halt, shutdown), as systemd 237-245 answer.

Services are entries in services.json; the lab watches it (the kubelet's state and version
reach the API from there) and acts on power requests left in /run/kubemaint-lab/power.
"""

from __future__ import annotations

import time

from lab.machines.programs import state
from lab.machines.programs.system import System

UNITS = {"kubelet": "kubelet: The Kubernetes Node Agent", "containerd": "containerd container runtime",
         "docker": "Docker Application Container Engine", "ssh": "OpenBSD Secure Shell server"}
ALIASES = {"sshd": "ssh"}
UNIT_FILES = {"kubelet": "/lib/systemd/system/kubelet.service", "containerd": "/lib/systemd/system/containerd.service",
              "docker": "/lib/systemd/system/docker.service", "ssh": "/lib/systemd/system/ssh.service"}
AUTH = "Interactive authentication required."
NOT_ROOT_POWER = ("Failed to set wall message, ignoring: " + AUTH + "\n"
                  "Failed to {verb} system via logind: " + AUTH + "\n"
                  "Failed to start {verb}.target: " + AUTH + "\n"
                  "See system logs and 'systemctl status {verb}.target' for details.")
CONTROL_VERBS = ("start", "stop", "restart", "try-restart", "reload-or-restart", "reload")


def unit_name(word: str) -> str:
    name = word.removesuffix(".service")
    return ALIASES.get(name, name)


def split(args: list[str]) -> tuple[list[str], list[str]]:
    """(words, flags): the value after -p/--property is a flag's, not a unit."""
    words, flags, skip = [], [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-p", "--property"):
            skip = True
        elif arg.startswith("-"):
            flags.append(arg)
        else:
            words.append(arg)
    return words, flags


def systemctl(system: System, args: list[str]) -> int:
    words, flags = split(args)
    if not words:
        return list_units(system)
    verb, units = words[0], [unit_name(w) for w in words[1:]]
    if verb in CONTROL_VERBS:
        return control(system, verb, units)
    if verb == "daemon-reload":
        if not system.is_root:
            system.err(f"Failed to reload daemon: {AUTH}")
            return 1
        return 0
    if verb == "is-active":
        return is_active(system, units, quiet="--quiet" in flags or "-q" in flags)
    if verb == "is-enabled":
        return is_enabled(system, units)
    if verb in ("enable", "disable"):
        return enable(system, verb, units)
    if verb == "status":
        return status(system, units)
    if verb == "show":
        return show(system, units, args)
    if verb in ("reboot", "poweroff", "halt"):
        return power(system, "poweroff" if verb == "halt" else verb)
    system.err(f"Unknown operation {verb}.")
    return 1


def _services(system: System) -> dict:
    return state.services(system)


def control(system: System, verb: str, units: list[str]) -> int:
    if not units:
        system.err("Too few arguments.")
        return 1
    services = _services(system)
    for unit in units:
        if unit not in services:
            system.err(f"Failed to {verb} {unit}.service: Unit {unit}.service not found.")
            return 5
    if not system.is_root:
        system.err(f"Failed to {verb} {units[0]}.service: {AUTH}\n"
                   f"See system logs and 'systemctl status {units[0]}.service' for details.")
        return 1
    with system.lock(state.SERVICES_LOCK, wait=True):
        services = _services(system)
        for unit in units:
            entry = services[unit]
            if verb == "stop":
                entry["active"] = False
                entry.pop("activating", None)
                entry["since"] = system.clock()
            elif verb in ("start", "restart", "reload-or-restart") or (verb == "try-restart" and entry["active"]):
                if verb == "start" and entry["active"]:
                    continue
                start(system, unit, entry)
        system.write_json(state.SERVICES, services)
    return 0


def start(system: System, unit: str, entry: dict) -> None:
    """A (re)started kubelet runs the binary installed now: that is the version it reports.

    kubeadm's kubelet.service is Type=simple: `systemctl start` succeeds as soon as the process
    is forked, even if the kubelet exits at once (the lab's kubeletFails fault); systemd then
    restarts it every RestartSec, so the unit stays "activating (auto-restart)"."""
    entry["active"] = True
    entry["since"] = system.clock()
    entry.pop("activating", None)
    if unit == "kubelet":
        installed = state.installed_version(system, "kubelet")
        if installed is None:
            entry["active"] = False
        elif state.kubelet_fails(system):
            entry["active"] = False
            entry["activating"] = True
        else:
            entry["version"] = state.kube_version(installed)


def is_active(system: System, units: list[str], quiet: bool) -> int:
    if not units:
        system.err("Too few arguments.")
        return 1
    services = _services(system)
    all_active = True
    for unit in units:
        entry = services.get(unit, {})
        active = bool(entry.get("active"))
        all_active = all_active and active
        if not quiet:
            system.out("active" if active else "activating" if entry.get("activating") else "inactive")
    return 0 if all_active else 3


def is_enabled(system: System, units: list[str]) -> int:
    services = _services(system)
    code = 0
    for unit in units:
        if unit not in services:
            system.err(f"Failed to get unit file state for {unit}.service: No such file or directory")
            return 1
        enabled = services[unit].get("enabled", True)
        system.out("enabled" if enabled else "disabled")
        code = code or (0 if enabled else 1)
    return code


def enable(system: System, verb: str, units: list[str]) -> int:
    services = _services(system)
    for unit in units:
        if unit not in services:
            system.err(f"Failed to {verb} unit: Unit file {unit}.service does not exist.")
            return 1
    if not system.is_root:
        system.err(f"Failed to {verb} unit: {AUTH}")
        return 1
    with system.lock(state.SERVICES_LOCK, wait=True):
        services = _services(system)
        for unit in units:
            wanted = verb == "enable"
            if services[unit].get("enabled", True) != wanted:
                link = f"/etc/systemd/system/multi-user.target.wants/{unit}.service"
                system.err(f"Created symlink {link} → {UNIT_FILES[unit]}." if wanted else f"Removed {link}.")
            services[unit]["enabled"] = wanted
        system.write_json(state.SERVICES, services)
    return 0


def _since(entry: dict) -> str:
    return time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(entry.get("since") or 0))


def _ago(system: System, entry: dict) -> str:
    seconds = int(system.clock() - (entry.get("since") or 0))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}min {seconds % 60}s ago"
    return f"{seconds // 3600}h {seconds % 3600 // 60}min ago"


def status(system: System, units: list[str]) -> int:
    services = _services(system)
    code = 0
    for index, unit in enumerate(units or ["kubelet"]):
        if unit not in services:
            system.err(f"Unit {unit}.service could not be found.")
            return 4
        entry = services[unit]
        if index:
            system.out()
        enabled = "enabled" if entry.get("enabled", True) else "disabled"
        active = (f"active (running) since {_since(entry)}; {_ago(system, entry)}" if entry.get("active")
                  else f"activating (auto-restart) (Result: exit-code) since {_since(entry)}; {_ago(system, entry)}"
                  if entry.get("activating") else f"inactive (dead) since {_since(entry)}; {_ago(system, entry)}")
        system.out(f"{'●' if entry.get('active') else '○'} {unit}.service - {UNITS[unit]}")
        system.out(f"     Loaded: loaded ({UNIT_FILES[unit]}; {enabled}; vendor preset: enabled)")
        if unit == "kubelet":
            system.out("    Drop-In: /etc/systemd/system/kubelet.service.d\n             └─10-kubeadm.conf")
        system.out(f"     Active: {active}")
        code = code or (0 if entry.get("active") else 3)
    return code


def show(system: System, units: list[str], args: list[str]) -> int:
    """`systemctl show -p ActiveState[,SubState] [--value] UNIT`."""
    wanted: list[str] = []
    for index, arg in enumerate(args):
        if arg in ("-p", "--property") and index + 1 < len(args):
            wanted += args[index + 1].split(",")
        elif arg.startswith("--property="):
            wanted += arg.split("=", 1)[1].split(",")
    services = _services(system)
    for unit in units:
        entry = services.get(unit)
        props = {
            "Id": f"{unit}.service",
            "ActiveState": "active" if entry and entry.get("active") else
                           "activating" if entry and entry.get("activating") else "inactive",
            "SubState": "running" if entry and entry.get("active") else
                        "auto-restart" if entry and entry.get("activating") else "dead",
            "LoadState": "loaded" if entry else "not-found",
            "UnitFileState": ("enabled" if entry.get("enabled", True) else "disabled") if entry else "",
            "ActiveEnterTimestamp": _since(entry) if entry and entry.get("active") else "",
        }
        for name in wanted or list(props):
            if name in props:
                system.out(props[name] if "--value" in args else f"{name}={props[name]}")
    return 0


def list_units(system: System) -> int:
    services = _services(system)
    system.out("  UNIT                LOAD   ACTIVE   SUB     DESCRIPTION")
    for unit in sorted(services):
        entry = services[unit]
        active, sub = ("active", "running") if entry.get("active") else ("inactive", "dead")
        system.out(f"  {unit + '.service':<19} loaded {active:<8} {sub:<7} {UNITS.get(unit, unit)}")
    return 0


# -- power ---------------------------------------------------------------------------------------


def power(system: System, verb: str) -> int:
    """Ask the lab to power-cycle or power off this machine (it acts within a moment, as systemd
    takes a moment to stop everything); the SSH session ends when the machine goes down."""
    if not system.is_root:
        system.err(NOT_ROOT_POWER.format(verb=verb))
        return 1
    system.write_text(state.POWER_REQUEST, verb + "\n")
    return 0


def reboot(system: System, args: list[str]) -> int:
    return power(system, "poweroff" if {"-p", "--poweroff"} & set(args) else "reboot")


def poweroff(system: System, args: list[str]) -> int:
    return power(system, "reboot" if "--reboot" in args else "poweroff")


def shutdown(system: System, args: list[str]) -> int:
    flags = [a for a in args if a.startswith("-")]
    times = [a for a in args if not a.startswith("-")]
    if "-c" in flags:
        system.remove(state.POWER_REQUEST)
        return 0
    when = times[0] if times else "+1"
    if when not in ("now", "+0"):
        system.err(f"shutdown: the lab's machines shut down at once only (now or +0), not {when}")
        return 1
    return power(system, "reboot" if {"-r", "--reboot"} & set(flags) else "poweroff")
