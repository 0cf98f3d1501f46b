"""What a machine's boot does to its own state: the newest installed kernel runs, a new boot
id, enabled services start (the kubelet with the version installed now).

The lab runs this over the machine's disk while it is off, just before it starts it.
"""

from __future__ import annotations

from lab.machines.programs import state
from lab.machines.programs.debversion import sort_key
from lab.machines.programs.system import System
from lab.machines.programs.systemctl import start


def boot(system: System, boot_id: str) -> dict:
    """Record a boot; returns the new boot record."""
    kernels = state.packages(system).get("kernels") or []
    previous = state.boot(system)
    record = {
        "bootId": boot_id,
        "kernel": max(kernels, key=sort_key) if kernels else previous.get("kernel", "unknown"),
        "bootedAt": system.clock(),
        "boots": int(previous.get("boots", 0)) + 1,
    }
    system.write_json(state.BOOT, record)
    services = state.services(system)
    for unit, entry in services.items():
        if entry.get("enabled", True):
            start(system, unit, entry)
        else:
            entry["active"] = False
    system.write_json(state.SERVICES, services)
    return record
