"""The machines of one lab: planned with the scenario, built and booted together when the lab
serves, watched on one timer, reset with the lab, stopped with it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lab
from lab.machines import addresses, layout, pki, spec, sshfiles
from lab.machines.faults import MachineFaults
from lab.machines.keys import generate
from lab.machines.kubelet import HasStore, NodeAgent
from lab.machines.machine import Machine
from lab.machines.spec import MachineSpec

log = logging.getLogger("lab.machines")
BOOTING_AT_ONCE = 8  # on two cores, more in parallel only queue up


def machine_python() -> str:
    """The interpreter that runs the machines' programs: the system's python3 (as on a real node;
    every user of the machine may run it), else the lab's own (which may live under /root, where
    the machine's non-root users cannot reach it)."""
    system_python = "/usr/bin/python3"
    try:
        found = subprocess.run([system_python, "-c", "import sys; print(sys.version_info >= (3, 10))"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        found = ""
    return system_python if found == "True" else sys.executable


def watch_interval(time_scale: float) -> float:
    """How often the lab looks at its machines: a few times per (scaled) second, at least 10 times a
    second in fast tests, at least once a second in real time."""
    return max(0.1, min(1.0, 2.0 * time_scale))


class Fleet:
    def __init__(self, specs: list[MachineSpec], block: addresses.Block | None, lab_state: HasStore) -> None:
        self.specs = specs
        self.block = block
        self.lab = lab_state
        self.machines: dict[str, Machine] = {}
        self.login_key = generate("kubemaint@lab")
        self.files: sshfiles.SshFiles | None = None
        # Whether kubelets run the containers of static pods (etcd); a lab that keeps its objects
        # in memory has no use for an etcd.
        self.run_containers = True
        self._watching: asyncio.Task | None = None

    # -- planning (no processes yet) ------------------------------------------------------------

    @staticmethod
    def node_addresses(nodes: list[dict], block: addresses.Block | None, fallback) -> dict[str, str]:
        return {node["name"]: node.get("address") or (block.address(index) if block else fallback(index))
                for index, node in enumerate(nodes)}

    @classmethod
    def plan(cls, scenario_machines: dict | bool | None, nodes: list[dict], version: str, lab_state: HasStore,
             fallback_address) -> tuple[Fleet | None, dict[str, str]]:
        """The fleet a scenario asks for (None when no node is a machine) and every node's address."""
        if not spec.machine_nodes(scenario_machines, nodes):
            return None, cls.node_addresses(nodes, None, fallback_address)
        block = addresses.allocate(len(nodes))
        node_addresses = cls.node_addresses(nodes, block, fallback_address)
        try:
            specs = spec.build(scenario_machines, nodes, version, node_addresses)
        except BaseException:
            block.release()
            raise
        return cls(specs, block, lab_state), node_addresses

    # -- life -----------------------------------------------------------------------------------

    async def start(self, workdir: Path, api_server: str, token: str, ca_cert: bytes, ca_key: bytes,
                    hide: Path | None = None) -> None:
        """Build and boot every machine in `workdir`; `hide` (the lab's private state, holding every
        machine's files) is an empty directory inside each machine."""
        if os.geteuid() != 0:
            raise PermissionError("the lab's machines need root (mount namespaces, overlayfs); "
                                  "run the lab as root, or start it with --no-machines")
        source = Path(lab.__file__).resolve().parent.parent
        python = machine_python()
        # Byte-compiled once here, where it can be written: the machines run with PYTHONDONTWRITEBYTECODE.
        subprocess.run([python, "-m", "compileall", "-q", str(source / "lab" / "machines" / "programs"),
                        str(source / "lab" / "__init__.py"), str(source / "lab" / "machines" / "__init__.py")],
                       check=False, capture_output=True)
        world = layout.World(
            python=python, source=str(source), api_server=api_server, token=token, ca_pem=ca_cert,
            cluster=pki.cluster_authorities(pki.Authority.load(ca_cert, ca_key)), login_key=self.login_key,
            host_passwd=Path("/etc/passwd").read_text(), host_group=Path("/etc/group").read_text(),
            hidden=(str(hide or workdir),), time_scale=self.lab.time_scale)
        kubectl = shutil.which("kubectl")
        kubectl = os.path.realpath(kubectl) if kubectl else ""
        for machine_spec in self.specs:
            agent = NodeAgent(machine_spec.name, self.lab)
            machine = Machine(machine_spec, workdir / machine_spec.name, addresses.ssh_port(machine_spec.address),
                              world, agent, self.lab.time_scale, kubectl)
            machine.pods.enabled = self.run_containers
            machine.build()
            self.machines[machine_spec.name] = machine
        await self._boot_all(list(self.machines.values()))
        self._watching = asyncio.create_task(self._watch())

    async def _boot_all(self, machines: list[Machine]) -> None:
        gate = asyncio.Semaphore(BOOTING_AT_ONCE)

        async def boot(machine: Machine) -> None:
            async with gate:
                await machine.power_on()
                machine.mark_pristine()

        await asyncio.gather(*(boot(m) for m in machines))

    async def _watch(self) -> None:
        interval = watch_interval(self.lab.time_scale)
        while True:
            await asyncio.sleep(interval)
            for machine in list(self.machines.values()):
                try:
                    machine.tick()
                except Exception:
                    log.exception("%s: watching it failed", machine.name)

    async def stop(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        await asyncio.gather(*(m.stop() for m in self.machines.values()), return_exceptions=True)
        if self.files is not None:
            sshfiles.remove(self.files)
        if self.block is not None:
            self.block.release()

    async def reset(self) -> None:
        """With the lab's reset: machines anything happened to are built and booted afresh; the
        others are only shown to the new API objects again."""
        changed = [m for m in self.machines.values() if not m.pristine()]
        for machine in changed:
            await machine.power_off()
            machine.build()
        await self._boot_all(changed)
        for machine in self.machines.values():
            if machine not in changed:
                machine.agent.stop()
                machine.agent.kubelet_active = False
                await machine.reannounce()

    async def reannounce(self) -> None:
        """Show every machine to the API again (it has loaded its objects anew: from etcd after a
        restart or a restore, where nodes and mirror pods may be as they were long ago)."""
        for machine in list(self.machines.values()):
            await machine.reannounce()

    # -- what the lab hands out ------------------------------------------------------------------

    def targets(self) -> list[sshfiles.Target]:
        return [sshfiles.Target(m.name, m.spec.address, m.port, m.host_key) for m in self.machines.values()]

    def write_ssh_files(self, kubeconfig: Path, scenario: str) -> sshfiles.SshFiles:
        self.files = sshfiles.SshFiles.beside(kubeconfig)
        sshfiles.write(self.files, self.login_key, self.targets(), scenario)
        return self.files

    def describe(self) -> dict:
        files = self.files
        return {
            "sshConfig": str(files.config) if files else None, "knownHosts": str(files.known_hosts) if files else None,
            "identityFile": str(files.key) if files else None,
            "machines": {name: m.describe() for name, m in self.machines.items()},
        }

    def machine(self, name: str) -> Machine | None:
        return self.machines.get(name)

    async def set_faults(self, name: str, faults: MachineFaults) -> None:
        await self.machines[name].set_faults(faults)
