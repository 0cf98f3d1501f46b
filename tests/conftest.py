"""Shared fixtures: labs per scenario (reset between tests) and the kubectl referees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.testing import LabProcess

SDK_BIN = Path("/usr/lib/google-cloud-sdk/bin")
# The kubectl on PATH plus two pinned minors whose messages differ (1.30 doubled
# "cannot delete" in the no-controller error).
KUBECTL_CANDIDATES = ["kubectl", str(SDK_BIN / "kubectl.1.29"), str(SDK_BIN / "kubectl.1.33")]


@dataclass
class Kubectl:
    path: str
    cache_dir: Path

    def minor(self, lab: LabProcess) -> int:
        """The minor that actually runs against `lab`: the kubectl on PATH is a dispatcher that
        picks the client matching the server's minor when it has one."""
        out = self.run(lab, "version", "-o", "json").stdout
        return int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))

    def run(self, lab: LabProcess, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.path, "--kubeconfig", str(lab.kubeconfig), "--cache-dir", str(self.cache_dir),
             *args],
            capture_output=True, text=True, timeout=timeout,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest test files first (their `runs_long` mark), the rest in their usual order. The parallel
    run hands out whole files in this order, so the last file a test process takes is a short one instead
    of a two-minute one started when the others are nearly done."""

    def seconds(item: pytest.Item) -> float:
        mark = item.get_closest_marker("runs_long")
        return mark.args[0] if mark else 0

    items.sort(key=lambda item: -seconds(item))  # stable: a file's tests keep their order


def _available_kubectls() -> list[str]:
    return [c for c in KUBECTL_CANDIDATES if shutil.which(c)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kubectl" in metafunc.fixturenames:
        found = _available_kubectls() or ["missing-kubectl"]
        metafunc.parametrize("kubectl_path", found, ids=[Path(p).name for p in found],
                             scope="session")


@pytest.fixture
def kubectl(kubectl_path: str, tmp_path: Path) -> Kubectl:
    if not shutil.which(kubectl_path):
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is required under CI but none was found on this machine")
        pytest.skip("kubectl not found: the lab's kubectl fidelity tests need it on PATH")
    cache = tmp_path / "kube-cache"  # discovery is cached for 6 h: never share it
    return Kubectl(kubectl_path, cache)


class LabPool:
    """One lab process per scenario for the whole session; tests reset it before use."""

    def __init__(self) -> None:
        self.labs: dict[str, LabProcess] = {}

    def get(self, scenario: str) -> LabProcess:
        lab = self.labs.get(scenario)
        if lab is None:
            lab = self.labs[scenario] = LabProcess(scenario, time_scale=0.05).start()
        else:
            lab.reset()
        lab.set_faults({})
        return lab

    def close(self) -> None:
        for lab in self.labs.values():
            lab.stop()


@pytest.fixture(scope="session")
def lab_pool():
    pool = LabPool()
    yield pool
    pool.close()


@pytest.fixture
def seeds_lab(lab_pool: LabPool) -> LabProcess:
    return lab_pool.get("seeds-os-upgrade")


@pytest.fixture
def workers_lab(lab_pool: LabPool) -> LabProcess:
    return lab_pool.get("three-workers")
