"""Version-skew policy (kubernetes.io/releases/version-skew-policy) as plain-English warnings.

Rules, measured in minor versions:
- HA kube-apiservers: newest and oldest within one minor.
- kube-controller-manager, kube-scheduler: never newer than any kube-apiserver, at most one
  minor older than the newest.
- kubelet, kube-proxy: never newer than any kube-apiserver, at most three minors older than
  the newest, or two when the kubelet/kube-proxy itself is older than v1.25 (upstream words it
  as "kubelet < 1.25 may only be up to two minor versions older", so the bound follows the
  node component's version, not the API server's).
- Any component outside the three newest minors is unsupported.

"Never newer" is checked against the *oldest* API server and "at most N older" against the
*newest*, which is how upstream narrows the window while an HA control plane is mid-upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.domain.versions import Version, VersionError, parse_reported_version

APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
SUPPORTED_MINORS = 3  # upstream maintains the three newest minors
# KEP-3935 widened node skew from n-2 to n-3 for kubelets at v1.25 and later.
WIDER_NODE_SKEW_SINCE_MINOR = 25

# Names as a sentence subject ("kubelets must never be newer ...").
_PLURAL = {
    CONTROLLER_MANAGER: "the controller manager",
    SCHEDULER: "the scheduler",
    KUBELET: "kubelets",
    KUBE_PROXY: "kube-proxy",
}

Versions = Sequence[str] | Mapping[str, str]  # bare versions, or where-it-runs -> version


@dataclass(frozen=True)
class NodeVersions:
    name: str
    kubelet: str
    kube_proxy: str | None = None  # None when the cluster runs no kube-proxy (e.g. eBPF dataplanes)


@dataclass(frozen=True)
class SkewWarning:
    component: str  # for an unsupported version shared by several components, all of them
    subject: str  # what the message is about: a node name, a control-plane instance, or several
    message: str


@dataclass(frozen=True)
class _Seen:
    component: str
    subject: str
    version: Version

    @property
    def where(self) -> str:
        return _where(self.component, self.subject)


def check_skew(
    apiserver_versions: Versions,
    nodes: Sequence[NodeVersions],
    controller_managers: Versions,
    schedulers: Versions,
    supported_latest_minor: int,
    supported_minors: int = SUPPORTED_MINORS,
) -> list[SkewWarning]:
    """Every skew-policy violation among the given components, most serious first.

    The control-plane arguments take either a list of versions or a mapping from where the
    instance runs (e.g. the control-plane node) to its version; the mapping gives better messages.
    Unreadable versions become warnings rather than exceptions, so `status` always answers.
    """
    warnings: list[SkewWarning] = []
    apiservers = _parse_all(APISERVER, apiserver_versions, warnings)
    control_plane = _parse_all(CONTROLLER_MANAGER, controller_managers, warnings) + _parse_all(
        SCHEDULER, schedulers, warnings
    )
    node_components: list[_Seen] = []
    for node in nodes:
        node_components += _parse_all(KUBELET, {node.name: node.kubelet}, warnings)
        if node.kube_proxy is not None:
            node_components += _parse_all(KUBE_PROXY, {node.name: node.kube_proxy}, warnings)

    if apiservers:
        newest = max(apiservers, key=lambda seen: seen.version).version
        oldest = min(apiservers, key=lambda seen: seen.version).version
        if _gap(newest, oldest) > 1:
            warnings.append(SkewWarning(APISERVER, APISERVER, (
                f"kube-apiserver instances run {newest} and {oldest}: the newest and oldest kube-apiserver "
                "must be within one minor version"
            )))
        for seen in control_plane:
            warnings += _against_apiserver(seen, newest, oldest, max_older=1)
        for seen in node_components:
            older_node = seen.version.minor < WIDER_NODE_SKEW_SINCE_MINOR
            warnings += _against_apiserver(seen, newest, oldest, max_older=2 if older_node else 3)

    warnings += _unsupported(apiservers + control_plane + node_components, supported_latest_minor, supported_minors)
    return warnings


def _against_apiserver(seen: _Seen, newest: Version, oldest: Version, max_older: int) -> list[SkewWarning]:
    rule_subject = _PLURAL[seen.component]
    if _gap(seen.version, oldest) > 0:
        return [SkewWarning(seen.component, seen.subject, (
            f"{seen.where} is {seen.version}, newer than kube-apiserver {oldest}: "
            f"{rule_subject} must never be newer than the API server"
        ))]
    behind = _gap(newest, seen.version)
    if behind <= max_older:
        return []
    if seen.component in (KUBELET, KUBE_PROXY) and max_older == 2:
        rule = f"{rule_subject} older than v1.{WIDER_NODE_SKEW_SINCE_MINOR} may be at most 2 minors older"
    else:
        rule = f"{rule_subject} may be at most {_minors(max_older)} older"
    return [SkewWarning(seen.component, seen.subject, (
        f"{seen.where} is {seen.version}, {_minors(behind)} older than kube-apiserver {newest}: "
        f"{rule} than the API server"
    ))]


def _unsupported(seen_all: list[_Seen], latest_minor: int, supported_minors: int) -> list[SkewWarning]:
    # One warning per version: a cluster entirely on v1.19 is one fact, not one per node.
    oldest_supported = latest_minor - supported_minors + 1
    supported = ", ".join(f"v1.{minor}" for minor in range(oldest_supported, latest_minor + 1))
    by_version: dict[Version, dict[str, list[str]]] = {}
    for seen in seen_all:
        if not (seen.version.major == 1 and oldest_supported <= seen.version.minor <= latest_minor):
            by_version.setdefault(seen.version, {}).setdefault(seen.component, []).append(seen.subject)
    warnings = []
    for version, components in by_version.items():
        if version.major == 1 and version.minor > latest_minor:
            why = (f"newer than the newest release kubemaint knows (v1.{latest_minor}; "
                   "raise supported_latest_minor if it is out)")
        else:
            why = f"outside the supported Kubernetes minors ({supported})"
        parts = []
        for component, subjects in components.items():
            named = [subject for subject in dict.fromkeys(subjects) if not subject.startswith(component)]
            parts.append(f"{component} on {_join_subjects(named)}" if named else component)
        subjects = list(dict.fromkeys(subject for found in components.values() for subject in found))
        warnings.append(SkewWarning(", ".join(components), ", ".join(subjects), (
            f"{version} is {why}: {'; '.join(parts)}"
        )))
    return warnings


def _parse_all(component: str, versions: Versions, warnings: list[SkewWarning]) -> list[_Seen]:
    if isinstance(versions, Mapping):
        named = list(versions.items())
    elif len(versions) == 1:
        named = [(component, versions[0])]
    else:
        named = [(f"{component} #{index}", version) for index, version in enumerate(versions, start=1)]
    parsed = []
    for subject, text in named:
        try:
            parsed.append(_Seen(component, subject, parse_reported_version(text)))
        except VersionError as error:
            message = f"{_where(component, subject)}: {error}; its skew was not checked"
            warnings.append(SkewWarning(component, subject, message))
    return parsed


def _where(component: str, subject: str) -> str:
    # "kubelet on node01", but "kube-scheduler #2" rather than "kube-scheduler on kube-scheduler #2".
    return subject if subject.startswith(component) else f"{component} on {subject}"


def _gap(newer: Version, older: Version) -> int:
    return (newer.major - older.major) * 1000 + newer.minor - older.minor


def _minors(count: int) -> str:
    return "1 minor" if count == 1 else f"{count} minors"


def _join_subjects(subjects: list[str], shown: int = 5) -> str:
    if len(subjects) <= shown:
        return ", ".join(subjects)
    return ", ".join(subjects[:shown]) + f" and {len(subjects) - shown} more"
