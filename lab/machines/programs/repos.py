"""The Kubernetes package repositories a machine's apt can be pointed at, and what they hold.

Two layouts exist and a real fleet may have either (docs/lab.md):
- legacy `apt.kubernetes.io` (frozen in 2024): one repo with every minor, versions `1.20.0-00`;
- `pkgs.k8s.io`: one repo per minor (`/core:/stable:/v1.27/deb/`), versions `1.27.3-1.1`.
How many patches each minor has comes from the machine's archive.json (the scenario).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEGACY_URL = "https://apt.kubernetes.io/"
LEGACY_KEYRING = "/etc/apt/keyrings/kubernetes-archive-keyring.gpg"
PKGS_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
PKGS_LINE = re.compile(r"https://pkgs\.k8s\.io/core:/stable:/v(\d+)\.(\d+)/deb/?\s")
# Also packaged in the Kubernetes repos; their versions do not follow Kubernetes'.
EXTRAS = {"legacy": {"kubernetes-cni": "0.8.7-00", "cri-tools": "1.13.0-01"},
          "pkgs": {"kubernetes-cni": "1.2.0-2.1", "cri-tools": "{minor}.0-1.1"}}
KUBE_BINARIES = ("kubeadm", "kubelet", "kubectl")


@dataclass(frozen=True)
class Repo:
    kind: str  # "legacy" or "pkgs"
    minor: str = ""  # "1.27" for pkgs.k8s.io

    @property
    def url(self) -> str:
        if self.kind == "legacy":
            return LEGACY_URL
        return f"https://pkgs.k8s.io/core:/stable:/v{self.minor}/deb/"

    def source_line(self) -> str:
        """The line kubeadm's install docs put in /etc/apt/sources.list.d/kubernetes.list."""
        if self.kind == "legacy":
            return f"deb [signed-by={LEGACY_KEYRING}] {LEGACY_URL} kubernetes-xenial main"
        return f"deb [signed-by={PKGS_KEYRING}] {self.url} /"

    def describe(self) -> str:
        """How apt-cache names the repo's package index (madison's last column)."""
        if self.kind == "legacy":
            return "https://apt.kubernetes.io kubernetes-xenial/main amd64 Packages"
        return f"https://pkgs.k8s.io/core:/stable:/v{self.minor}/deb  Packages"

    def fetch_name(self) -> str:
        """How apt-get update names the repo's Release file."""
        if self.kind == "legacy":
            return "https://packages.cloud.google.com/apt kubernetes-xenial InRelease"
        return (f"https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:"
                f"/v{self.minor}/deb  InRelease")

    def package_version(self, patch_version: str) -> str:
        """'1.27.3' -> the package version this repo gives it."""
        return f"{patch_version}-00" if self.kind == "legacy" else f"{patch_version}-1.1"


def is_kubernetes_line(line: str) -> bool:
    return any(host in line for host in ("apt.kubernetes.io", "packages.cloud.google.com/apt", "pkgs.k8s.io"))


def parse_line(line: str) -> Repo | None:
    """The Kubernetes repo one `deb` line names; None: one the lab does not know."""
    if "apt.kubernetes.io" in line or "packages.cloud.google.com/apt" in line:
        return Repo("legacy")
    match = PKGS_LINE.search(line + " ")
    return Repo("pkgs", f"{match[1]}.{match[2]}") if match else None


def parse_sources(text: str) -> tuple[Repo | None, str]:
    """The Kubernetes repo a sources.list file names, or (None, the offending line) when a
    `deb` line names something the lab does not know ('' when there is no such line)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        if "apt.kubernetes.io" in line or "packages.cloud.google.com/apt" in line:
            return Repo("legacy"), ""
        match = PKGS_LINE.search(line + " ")
        if match:
            return Repo("pkgs", f"{match[1]}.{match[2]}"), ""
        return None, line
    return None, ""


def minors(archive: dict, repo: Repo) -> dict[str, int]:
    """{minor: latest patch} the repo holds; a pkgs.k8s.io repo holds its own minor only."""
    offered = (archive.get("kubernetes") or {}).get(repo.kind) or {}
    if repo.kind == "pkgs":
        return {repo.minor: offered[repo.minor]} if repo.minor in offered else {}
    return dict(offered)


def exists(archive: dict, repo: Repo) -> bool:
    return bool(minors(archive, repo))


def index(archive: dict, repo: Repo) -> dict[str, list[str]]:
    """What `apt-get update` fetches from the repo: {package: [versions]}, oldest first."""
    found: dict[str, list[str]] = {}
    ordered = sorted(minors(archive, repo).items(), key=lambda item: tuple(int(p) for p in item[0].split(".")))
    versions = [repo.package_version(f"{minor}.{patch}") for minor, latest in ordered for patch in range(latest + 1)]
    for binary in KUBE_BINARIES:
        found[binary] = list(versions)
    if ordered:
        for name, version in EXTRAS[repo.kind].items():
            found[name] = [version.format(minor=ordered[-1][0])]
    return found
