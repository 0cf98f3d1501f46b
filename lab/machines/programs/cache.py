"""apt's view of a machine's packages: what dpkg has installed and what the fetched lists offer.

Pure: built from the JSON of packages.json and lists.json, no files touched.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from lab.machines.programs.debversion import compare, sort_key
from lab.machines.programs.repos import Repo

DPKG_STATUS = "/var/lib/dpkg/status"


@dataclass(frozen=True)
class Available:
    """One version of a package that a fetched package list offers."""

    version: str
    origin: str  # how apt-cache names the index it comes from
    suite: str  # how `apt list` names it
    source: str  # "kubernetes" or "os": which package archive it belongs to
    kernel: str = ""  # the kernel release a kernel package's version installs
    reboot: bool = False  # Debian's notify-reboot-required runs when it is installed


class Cache:
    def __init__(self, dpkg: dict, lists: dict) -> None:
        self.installed: dict[str, dict] = dpkg.get("packages") or {}
        self.available: dict[str, list[Available]] = {}
        for fetched in [lists.get("kubernetes") or {}, *(lists.get("kubernetesMore") or [])]:
            self._add_kubernetes(fetched)
        self._add_os(lists.get("os") or {})
        for versions in self.available.values():
            versions.sort(key=lambda a: sort_key(a.version), reverse=True)

    def _add_kubernetes(self, fetched: dict) -> None:
        if not fetched.get("repo"):
            return
        repo = Repo(**fetched["repo"])
        suite = "kubernetes-xenial" if repo.kind == "legacy" else "unknown"
        for name, versions in (fetched.get("packages") or {}).items():
            self.available.setdefault(name, []).extend(
                Available(v, repo.describe(), suite, "kubernetes") for v in versions)

    def _add_os(self, fetched: dict) -> None:
        mirror, codename = fetched.get("mirror", ""), fetched.get("codename", "")
        updates = fetched.get("updates") or {}
        for name, entry in self.installed.items():
            if entry.get("origin") == "os":  # installed from the release pocket, still offered there
                self.available.setdefault(name, []).append(
                    Available(entry["version"], f"{mirror} {codename}/main amd64 Packages", codename, "os",
                              entry.get("kernel", "")))
        for name, update in updates.items():
            self.available.setdefault(name, []).append(
                Available(update["version"], f"{mirror} {codename}-updates/main amd64 Packages",
                          f"{codename}-updates", "os", update.get("kernel", ""), bool(update.get("reboot"))))

    # -- questions apt asks ------------------------------------------------------------------

    def known(self, name: str) -> bool:
        return name in self.installed or name in self.available

    def versions(self, name: str) -> list[Available]:
        """Offered versions, newest first."""
        return self.available.get(name, [])

    def candidate(self, name: str) -> Available | None:
        versions = self.versions(name)
        return versions[0] if versions else None

    def installed_version(self, name: str) -> str | None:
        entry = self.installed.get(name)
        return entry["version"] if entry else None

    def held(self, name: str) -> bool:
        return bool((self.installed.get(name) or {}).get("held"))

    def upgradable(self) -> list[str]:
        """Installed packages whose candidate is newer, sorted by name."""
        found = []
        for name in sorted(self.installed):
            best = self.candidate(name)
            if best and compare(best.version, self.installed[name]["version"]) > 0:
                found.append(name)
        return found

    def find(self, name: str, pattern: str) -> Available | None:
        """The newest offered version matching `pattern` (apt accepts globs: kubeadm='1.27.*')."""
        for available in self.versions(name):
            if fnmatch.fnmatchcase(available.version, pattern):
                return available
        return None
