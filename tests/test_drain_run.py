"""The drain worker's pure parts: re-checking the approved plan, reading a PDB's 429."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from handlers.drain import DrainOptions, drain_decisions
from handlers.drain.plan import recheck
from handlers.drain.run import EvictionState, eviction_report, pdb_blocker
from lab.api import Target
from lab.resources import BY_NAME
from tests.scenario_snapshots import snapshot_of


def test_recheck_accepts_an_unchanged_plan():
    decisions = drain_decisions(snapshot_of("seeds-os-upgrade"), "node01", DrainOptions(force=True))
    approved = {d.pod.ref: d.pod.uid for d in decisions if d.action == "evict"}
    pods, problem = recheck(approved, decisions)
    assert problem is None and pods == approved


def test_recheck_refuses_a_pod_that_appeared_and_would_be_lost():
    def add_standalone_pod(lab):
        pod = {"metadata": {"name": "payroll"},
               "spec": {"nodeName": "node01", "containers": [{"name": "c", "image": "busybox"}]}}
        lab.api.create(Target(BY_NAME["pods"], "default"), pod, dry_run=False)

    before = drain_decisions(snapshot_of("seeds-os-upgrade"), "node01", DrainOptions(force=True))
    approved = {d.pod.ref: d.pod.uid for d in before if d.action == "evict"}
    after = drain_decisions(snapshot_of("seeds-os-upgrade", add_standalone_pod), "node01", DrainOptions(force=True))
    _, problem = recheck(approved, after)
    assert problem is not None and "default/payroll appeared and would be lost" in problem


def test_recheck_refuses_a_pod_that_now_blocks():
    decisions = drain_decisions(snapshot_of("seeds-os-upgrade"), "node01", DrainOptions(force=False))
    _, problem = recheck({}, decisions)
    assert problem is not None and "default/hr-app now blocks the drain" in problem


def test_pdb_blocker_names_the_budget_from_the_429_body():
    error = ApiException(status=429, reason="Too Many Requests")
    error.body = json.dumps({"kind": "Status", "code": 429, "reason": "TooManyRequests",
                             "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                             "details": {"causes": [{"reason": "DisruptionBudget", "message":
                                         "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]}})
    assert pdb_blocker(error) == "PDB web-pdb: needs 2 healthy pods and has 2"


def test_progress_summary_counts_and_blockers():
    state = EvictionState(pending={"shop/web-1": "u1"}, evicted={"shop/a": "u2", "shop/b": "u3"},
                          blocked={"shop/web-1": "PDB web-pdb: needs 2 healthy pods and has 2"})
    assert state.summary() == "evicted 2/3, waiting on PDB web-pdb: needs 2 healthy pods and has 2"


def test_the_eviction_report_says_what_was_done_not_what_was_planned():
    assert eviction_report("node01", EvictionState(evicted={"a/p": "u1", "a/q": "u2"}), None) == \
        "2 pods evicted from node01"
    mixed = EvictionState(evicted={"a/p": "u1"}, leaving={"a/q": "u2"}, gone={"a/r": "u3", "a/s": "u4"})
    assert eviction_report("node01", mixed, None) == \
        "1 pod evicted from node01; 1 pod already leaving; 2 pods already gone"
    drained = EvictionState(gone={"a/r": "u3"})
    assert eviction_report("node01", drained, "job j-1a2b3c4d at 13:42 UTC") == \
        "nothing left to evict: node01 was already drained by job j-1a2b3c4d at 13:42 UTC (1 pod of the plan gone)"
    assert eviction_report("node01", drained, None) == \
        "nothing left to evict: node01 was already drained (1 pod of the plan gone)"
    assert eviction_report("node01", EvictionState(), None) == "nothing to evict on node01"
