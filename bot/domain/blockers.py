"""Blockers: pods whose presence on a node stops that node's maintenance (`maintenance.blockers`). Pure.

    blocking_pods("app=critical-batch", snapshot.pods_on("node01"))   # ["batch/nightly-7f2c"]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from bot.domain.selectors import LabelSelector

# A pod that has run to its end holds no work a reboot could cut short.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


class Pod(Protocol):
    """What a blocker reads of a pod (bot/cluster/snapshot.py's PodInfo has it)."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


def blocking_pods(selector: LabelSelector | str | None, pods: Iterable[Pod]) -> list[str]:
    """The pods (`namespace/name`, sorted) that match `selector` and have not finished; none without a selector.

    `selector` is the configured `maintenance.blockers.pod_selector` (checked when the configuration was loaded)
    or its parsed form; `pods` are the pods on the node about to be drained. Pending, running, unknown and
    terminating pods block: each may still be doing the work the selector protects."""
    if not selector:
        return []
    if isinstance(selector, str):
        selector = LabelSelector.parse(selector)
    return sorted(f"{pod.namespace}/{pod.name}" for pod in pods
                  if pod.phase not in FINISHED_PHASES and selector.matches(pod.labels))
