"""The path of a kubeadm upgrade: one minor per hop, which versions the package repo offers, the
rolling order (control planes one at a time, then workers in waves) and kubeadm's own limits. Pure.

kubeadm refuses to skip a minor, so v1.19 -> v1.22 is three hops: the newest v1.20 patch, the
newest v1.21 patch, then v1.22.x as asked. Every node goes through every hop: kubeadm refuses to
upgrade the control plane past kubelets more than one minor older (three from v1.29).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.domain.versions import Version, VersionError, parse_reported_version

# pkgs.k8s.io's "1.29.3-1.1" and the legacy repo's "1.20.0-00" (an epoch is allowed, as dpkg writes it).
_PACKAGE_VERSION = re.compile(r"(?:\d+:)?(\d+)\.(\d+)\.(\d+)-[0-9A-Za-z.+~]+")
# kubeadm's kubelet skew limit on `upgrade apply`: 1 minor up to v1.28, 3 from v1.29 (KEP-3935).
KUBEADM_WIDER_KUBELET_SKEW_SINCE = 29


class PathError(ValueError):
    """The target cannot be reached; the message says why and what would work."""


def package_kube_version(package_version: str) -> Version | None:
    """'1.20.0-00' -> v1.20.0; None for anything else."""
    match = _PACKAGE_VERSION.fullmatch(package_version.strip())
    return Version(1, int(match[2]), int(match[3])) if match and match[1] == "1" else None


def reported(text: str) -> Version | None:
    try:
        return parse_reported_version(text)
    except VersionError:
        return None


@dataclass(frozen=True)
class Offer:
    """What the package repo offers: Kubernetes version -> the exact package version to install."""

    packages: Mapping[Version, str]

    def versions(self, minor: int) -> list[Version]:
        return sorted(v for v in self.packages if v.minor == minor)

    def latest(self, minor: int) -> Version | None:
        found = self.versions(minor)
        return found[-1] if found else None

    def newest(self) -> Version | None:
        return max(self.packages) if self.packages else None


def offer_from(package_versions: Iterable[str]) -> Offer:
    found: dict[Version, str] = {}
    for text in package_versions:
        version = package_kube_version(text)
        if version is not None:
            found.setdefault(version, text.strip())
    return Offer(found)


def hops(current: Version, target: Version, offer: Offer) -> list[Version]:
    """The versions to pass through, one minor at a time, ending at `target`."""
    if target.major != current.major:
        raise PathError(f"{target} is another major version than the cluster's {current}: kubeadm upgrades "
                        "within one major version")
    if target < current:
        raise PathError(f"{target} is older than the cluster's {current}: kubemaint does not downgrade (kubeadm "
                        "cannot downgrade etcd); restore etcd from a backup taken before the upgrade instead")
    if target not in offer.packages:
        listed = offer.versions(target.minor)
        shown = (f"the {target.minor_label} patches there are {listed[0]} to {listed[-1]}" if listed
                 else f"it has no {target.minor_label} packages")
        raise PathError(f"{target} is not in the package repo: {shown}")
    path = []
    for minor in range(current.minor + 1, target.minor):
        latest = offer.latest(minor)
        if latest is None:
            raise PathError(f"the package repo has no v{current.major}.{minor} packages, and kubeadm cannot skip "
                            f"a minor on the way from {current} to {target}")
        path.append(latest)
    if target != current:
        path.append(target)
    return path


def default_target(current: Version, offer: Offer) -> Version | None:
    """What `upgrade plan` shows without a version: the newest patch of the next minor, or of the
    current one when there is no next minor in the repo; None when nothing is newer."""
    candidates = [v for v in (offer.latest(current.minor + 1), offer.latest(current.minor)) if v and v > current]
    return candidates[0] if candidates else None


def kubeadm_kubelet_limit(target: Version) -> int:
    return 3 if target.minor >= KUBEADM_WIDER_KUBELET_SKEW_SINCE else 1


def too_old_kubelets(target: Version, kubelets: Mapping[str, Version]) -> list[str]:
    """Nodes whose kubelet `kubeadm upgrade apply target` refuses to leave behind."""
    limit = kubeadm_kubelet_limit(target)
    return sorted(node for node, version in kubelets.items() if target.minor - version.minor > limit)


def waves(workers: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Workers in groups of at most `size`, in the given order."""
    if size < 1:
        raise PathError("--max-unavailable must be at least 1")
    return [tuple(workers[i:i + size]) for i in range(0, len(workers), size)]


@dataclass(frozen=True)
class Estimate:
    """A rough duration: what the rollout waits for, not what the machines' speed adds."""

    per_control_plane: float
    per_wave: float

    def total(self, hop_count: int, control_planes: int, wave_count: int, snapshot: bool) -> float:
        per_hop = control_planes * self.per_control_plane + wave_count * self.per_wave
        return hop_count * per_hop + (60.0 if snapshot else 0.0)


# A kubeadm control plane: packages (~30 s), `upgrade apply` (its static pods restart, ~2 min), drain,
# kubelet restart and Ready (~1 min). A worker: packages, `upgrade node`, drain, kubelet and Ready.
DEFAULT_ESTIMATE = Estimate(per_control_plane=240.0, per_wave=150.0)
