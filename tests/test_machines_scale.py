"""Machines at the scale of the upgrade benchmark, and their end: 30 machines start well within
30 s (docs/lab.md has the measured figures), and no process of a machine outlives its lab,
whether the lab stops cleanly or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from lab.machines import addresses
from lab.testing import LabProcess, wait_until

START_BOUND = 30.0  # the bound; measured: about 2-3 s for 30 machines on two cores


def machine_processes(lab_pid: int) -> list[int]:
    """Every process in a machine namespace started under this lab: the pid namespaces of the
    lab's `unshare` children."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if len(fields.get("NSpid", "").split()) > 1 and fields.get("PPid", "").strip() != "":
            found.append(int(entry))
    return [pid for pid in found if _under(pid, lab_pid)]


def _under(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


def mentioning(directory: str) -> list[int]:
    """Processes whose command line names `directory` (a machine's `unshare` names its files)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if directory.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def listening_on(machine_addresses: set[str]) -> set[tuple[str, int]]:
    return {(a, p) for a, p in addresses.listeners() if a in machine_addresses}


def test_thirty_machines_start_quickly_answer_over_ssh_and_are_gone_when_the_lab_stops() -> None:
    started = time.monotonic()
    lab = LabProcess("large:30:0:30", ready_timeout=START_BOUND + 30).start()
    try:
        took = time.monotonic() - started
        machines = lab.machines()
        assert len(machines) == 30
        assert took < START_BOUND, f"30 machines took {took:.1f}s to start"
        machine_addresses = {m["address"] for m in machines.values()}
        assert len(listening_on(machine_addresses)) == 30
        result = lab.ssh("node0029", "hostname; systemctl is-active kubelet")
        assert (result.returncode, result.stdout) == (0, "node0029\nactive\n"), result.stderr
        lab_pid = lab.process.pid
        assert machine_processes(lab_pid), "the machines' processes are found"
    finally:
        lab.stop()
    wait_until(lambda: not listening_on(machine_addresses), 10, "the machines' sshd to be gone")
    wait_until(lambda: not machine_processes(lab_pid), 10, "the machines' processes to be gone")


def test_a_killed_lab_takes_its_machines_with_it() -> None:
    lab = LabProcess("seeds-upgrade").start()
    try:
        machine_addresses = {m["address"] for m in lab.machines().values()}
        session = subprocess.Popen(["ssh", "-F", str(lab.ssh_config), "node01", "sleep 60"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: lab.ssh("node01", "pgrep -x sleep").returncode == 0, 10, "the session's sleep")
        assert mentioning(str(lab.workdir)), "the machines' processes are found"
        os.kill(lab.process.pid, signal.SIGKILL)  # the lab alone: no cleanup runs in it
        wait_until(lambda: not listening_on(machine_addresses), 10, "the machines' sshd to be gone")
        assert session.wait(timeout=10) == 255, "its session ended with the machine"
        wait_until(lambda: not mentioning(str(lab.workdir)), 10, "every process of the machines to be gone")
    finally:
        lab.stop()
    assert not lab.workdir.exists(), "the machines' files went with the lab's directory"
