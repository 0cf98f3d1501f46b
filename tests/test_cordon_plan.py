"""What the approver reads before a cordon or uncordon, computed from a snapshot."""

from __future__ import annotations

from types import SimpleNamespace

from handlers.cordon import plan_cordon, plan_uncordon
from tests.scenario_snapshots import snapshot_of


def cmd(verb: str, node: str) -> SimpleNamespace:
    return SimpleNamespace(verb=verb, node=node, text=f"{verb} {node}")


def test_cordon_plan_says_what_keeps_running_grouped_by_workload():
    plan = plan_cordon(snapshot_of("seeds-os-upgrade"), cmd("cordon", "node01"))
    assert plan.refusal is None
    text = "\n".join(plan.lines)
    assert "Cordon node01: no new pods will be scheduled there." in text
    assert "default: hr-app (no controller)" in text
    assert "default: 2 x Deployment blue" in text
    assert "kube-system: 1 x DaemonSet kube-proxy" in text
    assert [s.action for s in plan.steps] == ["cordon"] and plan.steps[0].args == {"node": "node01"}
    assert plan.locks == ("node:node01",)
    assert plan.next_command == "uncordon node01"


def test_cordon_of_an_already_cordoned_node_says_nothing_changes():
    def cordon(lab):
        node = lab.store.get("nodes", "", "node01")
        lab.store.put("nodes", {**node, "spec": {**node["spec"], "unschedulable": True}})

    plan = plan_cordon(snapshot_of("seeds-os-upgrade", cordon), cmd("cordon", "node01"))
    assert plan.lines[0] == "node01 is already cordoned: nothing will change."


def test_unknown_node_is_refused_naming_the_real_nodes():
    plan = plan_cordon(snapshot_of("seeds-os-upgrade"), cmd("cordon", "node09"))
    assert plan.refusal == "node node09 not found; the cluster's nodes are: controlplane, node01"
    assert plan.steps == ()
    assert plan_uncordon(snapshot_of("seeds-os-upgrade"), cmd("uncordon", "node09")).refusal


def test_uncordon_plan_warns_pods_do_not_move_back():
    plan = plan_uncordon(snapshot_of("seeds-os-upgrade"), cmd("uncordon", "node01"))
    assert plan.lines == ("node01 is already schedulable: nothing will change.",)

    def cordon(lab):
        node = lab.store.get("nodes", "", "node01")
        lab.store.put("nodes", {**node, "spec": {**node["spec"], "unschedulable": True}})

    plan = plan_uncordon(snapshot_of("seeds-os-upgrade", cordon), cmd("uncordon", "node01"))
    assert "existing pods do not move back by themselves" in plan.lines[0]


def test_snapshot_reads_component_versions_from_static_pods():
    versions = snapshot_of("seeds-os-upgrade").component_versions()
    assert versions["kube-apiserver"] == [("controlplane", "v1.19.0")]
    assert versions["etcd"] == [("controlplane", "3.4.13-0")]


def test_cordon_reads_only_the_pods_of_its_node_and_plans_the_same(workers_lab):
    """Planning a cordon lists the node's pods (a field selector), not the whole cluster's, and
    the plan is the one the full snapshot gives."""
    from bot.chat.grammar import parse
    from bot.cluster import kube

    client = kube.connect(workers_lab.kubeconfig)
    try:
        full = kube.read_snapshot(client, budgets=False)
        scoped = kube.read_snapshot(client, budgets=False, node="node02")
    finally:
        client.close()
    assert scoped.nodes == full.nodes
    assert {p.node for p in scoped.pods} == {"node02"}
    assert sorted(p.name for p in scoped.pods) == sorted(p.name for p in full.pods_on("node02"))
    assert len(full.pods) > len(scoped.pods)
    for verb in ("cordon", "uncordon"):
        command = parse(f"{verb} node02")
        planner = plan_cordon if verb == "cordon" else plan_uncordon
        assert planner(scoped, command.options) == planner(full, command.options)
