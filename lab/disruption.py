"""PodDisruptionBudget status as the disruption controller computes it (pure)."""

from __future__ import annotations

import math
from collections.abc import Callable

from lab.objects import controller_of, pod_is_ready


def _resolve(value: int | str, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        fraction = int(text[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(text)


def pdb_status(
    pdb: dict, pods: list[dict], scale_of: Callable[[dict, dict], int | None]
) -> dict:
    """`pods` are the pods the PDB's selector matches; `scale_of(pod, controller_ref)` gives
    the replicas of the pod's controller (None when unknown)."""
    spec = pdb["spec"]
    healthy = sum(
        1 for p in pods if pod_is_ready(p) and not p["metadata"].get("deletionTimestamp")
    )
    min_available = spec.get("minAvailable")
    if "maxUnavailable" in spec or isinstance(min_available, str):
        expected = 0
        seen: set[str] = set()
        for pod in pods:
            ref = controller_of(pod)
            if ref is None or ref["uid"] in seen:
                continue
            seen.add(ref["uid"])
            expected += scale_of(pod, ref) or 0
        if "maxUnavailable" in spec:
            desired = max(0, expected - _resolve(spec["maxUnavailable"], expected, True))
        else:
            desired = _resolve(min_available, expected, True)
    else:
        expected = len(pods)
        desired = int(min_available or 0)
    allowed = 0 if expected <= 0 else max(0, healthy - desired)
    generation = pdb["metadata"].get("generation", 1)
    return {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": "True" if allowed > 0 else "False",
            "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": pdb["metadata"].get("creationTimestamp"),
        }],
    }
