"""Cluster snapshots built from lab scenarios in-process, for pure planner tests."""

from __future__ import annotations

import asyncio

from bot.cluster.snapshot import ClusterSnapshot, snapshot_from_api
from lab.server import Lab


def snapshot_of(scenario: str, mutate=None) -> ClusterSnapshot:
    """The scenario's cluster once its controllers settled; `mutate(lab)` may change it first."""

    async def build() -> ClusterSnapshot:
        lab = Lab(scenario)
        if mutate is not None:
            mutate(lab)
            lab.cluster.reconcile()
        snap = snapshot_from_api(list(lab.store.items("nodes")), list(lab.store.items("pods")),
                                 list(lab.store.items("poddisruptionbudgets")), list(lab.store.items("daemonsets")))
        lab.cluster.stop()
        return snap

    return asyncio.run(build())
