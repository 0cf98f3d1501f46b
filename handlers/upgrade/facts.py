"""What an upgrade is planned on: the cluster (nodes, pods, PDBs, the control plane's static pods),
every machine's Kubernetes packages and repo, and which versions the repo offers, read on the first
control plane without touching its apt configuration.

Reading the next minors of a pkgs.k8s.io repo (one repo per minor) needs that repo's index: the probe
writes a private sources file and lists dir under /var/tmp and points apt at them with `-o
Dir::Etc::SourceList=... -o Dir::State::Lists=...`, so the machine's own sources and lists stay as they
were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot, NodeInfo
from bot.domain.upgrade_path import Offer, offer_from, reported
from bot.domain.versions import Version
from handlers.backup_etcd import control_planes
from handlers.common import node_shell

KUBERNETES_LIST = "/etc/apt/sources.list.d/kubernetes.list"
READ_SECONDS = 30.0  # every machine is asked at once; one that has not answered by then is named
PROBE_SECONDS = 120.0
PROBED_MINORS = 3  # how many minors past the cluster's `upgrade plan` looks for without a version
_MARK = "@@kubemaint-minor:"


@dataclass(frozen=True)
class NodePackages:
    packages: Mapping[str, str]  # kubeadm/kubelet/kubectl -> installed package version
    held: frozenset[str]
    repo: str  # "v1.28" (pkgs.k8s.io), "legacy apt.kubernetes.io", the unknown line, or ""

    @property
    def pkgs_minor(self) -> int | None:
        return int(self.repo.split(".")[1]) if self.repo.startswith("v1.") else None


@dataclass(frozen=True)
class UpgradeFacts:
    snapshot: ClusterSnapshot
    machines: Mapping[str, NodePackages] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)  # node -> why its packages were not read
    offer: Offer | None = None
    offer_problem: str | None = None
    probed_on: str | None = None

    def cluster_version(self) -> Version | None:
        """The oldest kube-apiserver: what kubeadm calls the cluster version."""
        found = [reported(v) for _, v in self.snapshot.component_versions()["kube-apiserver"]]
        versions = [v for v in found if v is not None]
        return min(versions) if versions else None

    def first_control_plane(self) -> NodeInfo | None:
        found = control_planes(self.snapshot)
        return found[0] if found else None


def read_upgrade_facts(resources: Mapping[str, Any], target: Version | None) -> UpgradeFacts:
    snapshot = kube.read_snapshot(resources["kube"], budgets=True)
    facts = UpgradeFacts(snapshot)
    shell, reason = node_shell(resources)
    if shell is None:
        why = reason or "not read"
        return UpgradeFacts(snapshot, unreadable=dict.fromkeys(snapshot.nodes, why),
                            offer_problem=f"an upgrade needs the machines, and they were {why}")
    from bot.nodes import JobRef
    from bot.nodes.facts import facts_script, parse_facts
    from bot.nodes.survey import ask_nodes

    job = JobRef(job_id=None, requester=None)
    answers = ask_nodes(shell, {n.name: n.address for n in snapshot.nodes.values()}, facts_script(), parse_facts,
                        cap_seconds=READ_SECONDS, job=job)
    machines = {node: NodePackages(dict(a.value.packages), a.value.held, a.value.repo)
                for node, a in answers.items() if a.value is not None}
    unreadable = {node: a.problem or "no answer" for node, a in answers.items() if a.value is None}
    first = facts.first_control_plane()
    current = facts.cluster_version()
    offer, problem = None, None
    if first is None or current is None:
        problem = "no control plane with a kube-apiserver static pod was found"
    elif first.name not in machines:
        problem = f"{first.name}'s packages could not be read: {unreadable.get(first.name)}"
    else:
        offer, problem = probe_repo(shell, first, machines[first.name], current, target, job)
    return UpgradeFacts(snapshot, machines, unreadable, offer, problem, first.name if first else None)


def probe_minors(current: Version, target: Version | None) -> list[int]:
    last = target.minor if target is not None else current.minor + PROBED_MINORS
    return list(range(current.minor, max(last, current.minor) + 1))


def probe_script(repo: NodePackages, minors: list[int]) -> list[str]:
    """sh -c: each minor's repo index fetched into a private dir, then `apt-cache madison kubeadm`.
    A legacy repo holds every minor: its own line is fetched once."""
    labels = [f"1.{m}" for m in minors] if repo.pkgs_minor is not None else ["all"]
    rewrite = (r'sed -E "s#core:/stable:/v1\.[0-9]+/deb#core:/stable:/v$m/deb#"' if repo.pkgs_minor is not None
               else "cat")
    script = (
        'd=$(mktemp -d /var/tmp/kubemaint-probe.XXXXXX) || exit 1; trap \'rm -rf "$d"\' EXIT; '
        f"for m in {' '.join(labels)}; do "
        'mkdir -p "$d/$m/lists/partial"; '
        f'{rewrite} {KUBERNETES_LIST} > "$d/$m/sources.list" || exit 1; '
        f'echo "{_MARK}$m"; '
        'o="-o Dir::Etc::SourceList=$d/$m/sources.list -o Dir::Etc::SourceParts=- -o Dir::State::Lists=$d/$m/lists"; '
        "apt-get $o -qq update >/dev/null 2>&1 && apt-cache $o madison kubeadm; "
        "done; exit 0"
    )
    return ["sh", "-c", script]


def parse_madison(output: str) -> list[str]:
    """The package versions in `apt-cache madison kubeadm` rows (`kubeadm | 1.29.3-1.1 | ...`)."""
    found = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) >= 3 and cells[0] == "kubeadm":
            found.append(cells[1])
    return found


def probe_repo(shell: Any, node: NodeInfo, packages: NodePackages, current: Version, target: Version | None,
               job: Any) -> tuple[Offer | None, str | None]:
    if packages.pkgs_minor is None and packages.repo != "legacy apt.kubernetes.io":
        where = f"names {packages.repo!r}" if packages.repo else "is missing or empty"
        return None, (f"{node.name}'s {KUBERNETES_LIST} {where}: kubemaint reads the Kubernetes versions from "
                      "pkgs.k8s.io or apt.kubernetes.io")
    from bot.nodes import NodeError

    try:
        result = shell.run(node.name, probe_script(packages, probe_minors(current, target)), address=node.address,
                           sudo=True, deadline=PROBE_SECONDS, job=job)
    except NodeError as error:
        return None, f"the package repo could not be read on {node.name}: {error}"
    offer = offer_from(parse_madison(result.stdout))
    if not offer.packages:
        return None, f"the package repo on {node.name} lists no kubeadm version (is it reachable?)"
    return offer, None
