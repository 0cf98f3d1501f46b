"""What a reboot or an OS upgrade is planned on: the cluster (nodes, pods, PDBs), what every machine says
about itself over SSH (kernel, pending updates, held packages, whether a reboot is required), the
maintenance settings (windows, blockers), the time, and which job holds the cluster, if any."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.cluster import kube
from bot.cluster.snapshot import ClusterSnapshot
from bot.domain.windows import Window
from bot.nodes.facts import MachineFacts
from handlers.common import node_shell

READ_SECONDS = 30.0  # every machine is asked at once; one that has not answered by then is named


@dataclass(frozen=True)
class MaintenanceFacts:
    snapshot: ClusterSnapshot
    machines: Mapping[str, MachineFacts] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)  # node -> why it was not read
    windows: tuple[Window, ...] = ()
    blocker_selector: str | None = None
    gates: tuple[str, ...] = ()  # the configured health gates, as the plan names them
    now: float = 0.0
    cluster_holder: str | None = None  # "job j-… (upgrade to v1.29.15) since 13:02 UTC" holding the cluster


def read_maintenance_facts(resources: Mapping[str, Any]) -> MaintenanceFacts:
    snapshot = kube.read_snapshot(resources["kube"], budgets=True)
    settings = _maintenance_settings(resources)
    common: dict[str, Any] = {
        "windows": tuple(settings.parsed_windows()) if settings is not None else (),
        "blocker_selector": _blocker_selector(settings),
        "gates": _gate_names(settings),
        "now": time.time(),
        "cluster_holder": _cluster_holder(resources),
    }
    shell, reason = node_shell(resources)
    if shell is None:
        return MaintenanceFacts(snapshot, unreadable=dict.fromkeys(snapshot.nodes, reason or "not read"), **common)
    from bot.nodes import JobRef
    from bot.nodes.facts import facts_script, parse_facts
    from bot.nodes.survey import ask_nodes

    answers = ask_nodes(shell, {n.name: n.address for n in snapshot.nodes.values()}, facts_script(), parse_facts,
                        cap_seconds=READ_SECONDS, job=JobRef(job_id=None, requester=None))
    machines = {node: a.value for node, a in answers.items() if a.value is not None}
    unreadable = {node: a.problem or "no answer" for node, a in answers.items() if a.value is None}
    return MaintenanceFacts(snapshot, machines, unreadable, **common)


def _maintenance_settings(resources: Mapping[str, Any]) -> Any:
    try:
        return resources["maintenance"]
    except KeyError:  # a process that declares no maintenance settings (a benchmark's): no windows, no gates
        return None


def _blocker_selector(settings: Any) -> str | None:
    blockers = getattr(settings, "blockers", None)
    return getattr(blockers, "pod_selector", None)


def _gate_names(settings: Any) -> tuple[str, ...]:
    gates = getattr(settings, "gates", None)
    if gates is None:
        return ()
    names = [f"HTTP {gate.url}" for gate in getattr(gates, "http", ()) or ()]
    prometheus = getattr(gates, "prometheus", None)
    if prometheus is not None and getattr(prometheus, "url", None):
        names += [f"Prometheus: {query}" for query in prometheus.queries]
    return tuple(names)


def _cluster_holder(resources: Mapping[str, Any]) -> str | None:
    from bot.engine import read_locks
    from bot.engine.locks import format_since, holder_alive, qualify

    try:
        redis, cluster = resources["redis"], resources["cluster"]
    except KeyError:
        return None
    target = qualify("cluster", cluster)
    holder = read_locks(redis, [target]).get(target)
    if holder is None or not holder_alive(redis, holder):
        return None  # free, or held by a dead run whose lock expires on its own
    return f"job {holder.job} ({holder.command}) since {format_since(holder.since)}"
