"""What the approver reads before a drain, computed from a snapshot (pure: no servers)."""

from __future__ import annotations

import json

import pytest

from bot.chat.grammar import parse
from bot.cluster.snapshot import ClusterSnapshot, snapshot_from_api
from bot.contract.registry import operations
from bot.domain.selectors import LabelSelector
from handlers.drain import DrainOptions, drain_decisions, plan_drain
from lab.api import Target
from lab.resources import BY_NAME
from tests.scenario_snapshots import snapshot_of


def drain(snapshot: ClusterSnapshot, text: str):
    return plan_drain(snapshot, parse(text).options)


def text_of(plan) -> str:
    return "\n".join(plan.lines)


def node_of(snapshot: ClusterSnapshot, prefix: str, namespace: str = "shop") -> str:
    return next(p.node for p in snapshot.pods if p.namespace == namespace and p.name.startswith(prefix))


def add_pods(*manifests: dict):
    """A `snapshot_of` mutation that creates pods through the lab's API (server defaults included)."""

    def mutate(lab) -> None:
        for manifest in manifests:
            namespace = manifest["metadata"].get("namespace", "default")
            lab.api.create(Target(BY_NAME["pods"], namespace), manifest, dry_run=False)

    return mutate


def pod(name: str, node: str = "node01", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}], **spec}}


@pytest.fixture(scope="module")
def seeds() -> ClusterSnapshot:
    return snapshot_of("seeds-os-upgrade")


@pytest.fixture(scope="module")
def workers() -> ClusterSnapshot:
    return snapshot_of("three-workers")


def test_drain_is_a_registered_planner():
    assert operations()["drain"].plan is plan_drain


def test_hr_app_without_a_controller_refuses_the_drain_and_names_force(seeds):
    plan = drain(seeds, "drain node01")
    assert plan.refusal == ("refused: default/hr-app has no controller and would be deleted for good; "
                            "add --force to delete it anyway")
    assert plan.lines[0] == "Drain node01: evict 5 pods, skip 2 (DaemonSet/mirror), 1 blocked"
    assert "Blocked: default/hr-app has no controller and would be deleted for good (add --force to override)." \
        in plan.lines
    assert plan.steps == ()  # nothing can run from a refused plan
    assert plan.next_command == "uncordon node01"


def test_forced_drain_says_hr_app_is_lost_for_good(seeds):
    plan = drain(seeds, "drain node01 --force")
    assert plan.refusal is None
    text = text_of(plan)
    assert plan.lines[0] == "Drain node01: evict 6 pods, skip 2 (DaemonSet/mirror), 0 blocked"
    assert "Lost for good: default/hr-app will be deleted and not recreated: it has no controller." in text
    assert "  default: 2 x Deployment blue" in plan.lines
    assert "  default: hr-app (no controller)" in plan.lines
    assert "Stay: DaemonSet pods (drain never evicts them; their controller ignores cordons):" in plan.lines
    assert "  kube-system: 1 x DaemonSet kube-proxy" in plan.lines
    assert "Room: the 5 pods their controllers re-create fit on controlplane" in text  # hr-app is not re-created
    assert plan.locks == ("node:node01",)
    assert plan.next_command == "uncordon node01"


def test_forced_drain_steps_carry_the_pods_and_options(seeds):
    plan = drain(seeds, "drain node01 --force --grace-period 20 --timeout 5m")
    cordon, evict, wait = plan.steps
    assert (cordon.action, cordon.args) == ("cordon", {"node": "node01"})
    assert evict.action == "drain.evict" and wait.action == "drain.wait_gone"
    on_node = {p.ref: p.uid for p in seeds.pods_on("node01")}
    assert evict.args["pods"] == {ref: uid for ref, uid in on_node.items() if "kube-proxy" not in ref
                                  and "flannel" not in ref}
    options = {"grace_period": 20, "timeout": 300, "pod_selector": None, "force": True, "delete_emptydir_data": False}
    assert evict.args == {"node": "node01", "pods": evict.args["pods"], "options": options}
    assert wait.args == {"node": "node01", "options": options}
    assert len({s.name for s in plan.steps}) == 3  # step names key the checkpoints
    json.dumps([s.to_dict() for s in plan.steps])  # jobs store their steps as JSON


def test_static_pods_stay_and_are_named(seeds):
    plan = drain(seeds, "drain controlplane")
    assert plan.refusal is None
    static = next(line for line in plan.lines if line.startswith("Stay: static pods"))
    assert "kube-system/kube-apiserver-controlplane" in static and "kube-system/etcd-controlplane" in static
    assert plan.lines[0] == "Drain controlplane: evict 3 pods, skip 6 (DaemonSet/mirror), 0 blocked"


def test_payments_pdb_that_allows_no_disruption_is_named_with_its_health(workers):
    node = node_of(workers, "payments-")
    plan = drain(workers, f"drain {node} --delete-emptydir-data")
    payments = next(p.name for p in workers.pods_on(node) if p.name.startswith("payments-"))
    assert (f"PodDisruptionBudget shop/payments-pdb allows no disruption now (2 healthy, 2 desired): eviction of "
            f"{payments} waits until it does, at most 10m.") in plan.lines
    assert not any("web-pdb" in line for line in plan.lines)  # it allows one, and one web pod is here


def test_cache_emptydir_blocks_without_the_flag(workers):
    node = node_of(workers, "cache-")
    cache = next(p for p in workers.pods_on(node) if p.name.startswith("cache-"))
    plan = drain(workers, f"drain {node}")
    assert plan.refusal == (f"refused: shop/{cache.name} (scratch) has emptyDir data that would be lost; "
                            "add --delete-emptydir-data to delete it anyway")
    allowed = drain(workers, f"drain {node} --delete-emptydir-data")
    assert allowed.refusal is None
    assert f"emptyDir data lost: shop/{cache.name} (volume scratch)." in allowed.lines


def test_pods_that_would_go_pending_are_named(workers):
    node = node_of(workers, "payments-")

    def cordon_the_other_workers(lab) -> None:
        for name in ("node01", "node02", "node03"):
            if name != node:
                obj = lab.store.get("nodes", "", name)
                lab.store.put("nodes", {**obj, "spec": {**obj["spec"], "unschedulable": True}})

    plan = drain(snapshot_of("three-workers", cordon_the_other_workers), f"drain {node} --delete-emptydir-data")
    reason = "no other Ready, schedulable node accepts it (taints, nodeSelector)"
    assert f"Would go Pending: shop: 1 x Deployment payments ({reason})." in plan.lines
    assert f"Would go Pending: shop: 1 x Deployment web ({reason})." in plan.lines
    assert not any(line.startswith("Room:") for line in plan.lines)  # the tainted control plane takes nothing


def test_full_nodes_leave_pods_pending_for_lack_of_room(workers):
    node = node_of(workers, "payments-")

    def fill_the_other_workers(lab) -> None:
        for name in ("node01", "node02", "node03"):
            if name != node:
                obj = lab.store.get("nodes", "", name)
                running = len(lab.cluster.pods_on(name))
                status = {**obj["status"], "allocatable": {**obj["status"]["allocatable"], "pods": str(running)}}
                lab.store.put("nodes", {**obj, "status": status})

    plan = drain(snapshot_of("three-workers", fill_the_other_workers), f"drain {node} --delete-emptydir-data")
    assert "Would go Pending: shop: 1 x Deployment payments (no room on the nodes that accept it)." in plan.lines


def test_room_is_found_on_the_remaining_workers(workers):
    plan = drain(workers, "drain node03")
    room = next(line for line in plan.lines if line.startswith("Room:"))
    assert "node03" not in room and "controlplane" not in room  # drained, and tainted
    assert not any(line.startswith("Would go Pending") for line in plan.lines)


def test_pod_selector_limits_the_pods_considered(workers):
    node = node_of(workers, "cache-")
    plan = drain(workers, f"drain {node} --pod-selector app=web")
    web = [p for p in workers.pods_on(node) if p.labels.get("app") == "web"]
    assert plan.lines[0] == f"Drain {node} (pods matching app=web only): evict {len(web)} pod, skip 0 " \
                            "(DaemonSet/mirror), 0 blocked"
    assert plan.refusal is None  # the cache pod is not considered, so its emptyDir does not block
    assert set(plan.steps[1].args["pods"]) == {p.ref for p in web}
    assert plan.steps[1].args["options"]["pod_selector"] == "app=web"
    notin = drain_decisions(workers, node, DrainOptions(pod_selector="app notin (web,cache)"))
    assert {d.pod.labels.get("app") for d in notin} >= {"payments"}
    assert not {d.pod.labels.get("app") for d in notin} & {"web", "cache"}


def test_terminating_pods_are_evicted_and_said_to_be_terminating():
    def delete_hr_app(lab) -> None:
        lab.cluster.delete_pod(lab.store.get("pods", "default", "hr-app"), 3600)

    snapshot = snapshot_of("seeds-os-upgrade", delete_hr_app)
    decision = next(d for d in drain_decisions(snapshot, "node01", DrainOptions()) if d.pod.name == "hr-app")
    # Like kubectl without --skip-wait-for-delete-timeout: still evicted (and waited for), and
    # a terminating pod without a controller still needs --force.
    assert (decision.action, decision.rule, decision.override_flag) == ("block", "no-controller", "--force")
    assert decision.noted("terminating")
    plan = drain(snapshot, "drain node01 --force")
    assert "  (1 already terminating: the drain waits for them to finish)" in plan.lines


def test_orphaned_daemonset_pod_needs_force_and_is_lost_for_good():
    orphan = pod("agent-x")
    orphan["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                              "uid": "0000", "controller": True}]
    snapshot = snapshot_of("seeds-os-upgrade", add_pods(orphan))
    plan = drain(snapshot, "drain node01")
    assert plan.refusal is not None
    assert ("default/agent-x belongs to a DaemonSet that no longer exists (default/agent); add --force to delete "
            "it anyway") in plan.refusal
    forced = drain(snapshot, "drain node01 --force")
    assert forced.refusal is None
    assert ("Lost for good: default/agent-x will be deleted and not recreated: its DaemonSet agent no longer exists."
            in forced.lines)
    # A snapshot read without DaemonSets cannot tell an orphan: it leaves the pod alone.
    unknown = ClusterSnapshot(snapshot.nodes, snapshot.pods, snapshot.pdbs, daemonsets=None)
    decision = next(d for d in drain_decisions(unknown, "node01", DrainOptions()) if d.pod.name == "agent-x")
    assert (decision.action, decision.rule) == ("skip", "daemonset")


def test_finished_pods_are_evicted_whatever_they_are():
    done = pod("report", volumes=[{"name": "tmp", "emptyDir": {}}])

    def finish(lab) -> None:
        add_pods(done)(lab)
        obj = lab.store.get("pods", "default", "report")
        lab.store.put("pods", {**obj, "status": {**obj["status"], "phase": "Succeeded"}})

    snapshot = snapshot_of("seeds-os-upgrade", finish)
    decision = next(d for d in drain_decisions(snapshot, "node01", DrainOptions()) if d.pod.name == "report")
    assert (decision.action, decision.notes) == ("evict", ())
    plan = drain(snapshot, "drain node01 --force --delete-emptydir-data")
    assert not any("report" in line for line in plan.lines if line.startswith(("Lost", "emptyDir")))


def test_several_blocks_name_each_reason_and_flag():
    snapshot = snapshot_of("seeds-os-upgrade", add_pods(pod("scratchpad", volumes=[{"name": "tmp", "emptyDir": {}}])))
    plan = drain(snapshot, "drain node01")
    # scratchpad is stopped by the emptyDir rule first (kubectl's order), hr-app by the controller rule.
    assert plan.refusal == ("refused: default/hr-app has no controller and would be deleted for good; add --force to "
                            "delete it anyway; default/scratchpad (tmp) has emptyDir data that would be lost; add "
                            "--delete-emptydir-data to delete it anyway")
    forced = drain(snapshot, "drain node01 --force")
    assert forced.refusal == ("refused: default/scratchpad (tmp) has emptyDir data that would be lost; add "
                              "--delete-emptydir-data to delete it anyway")


def test_a_pod_under_two_budgets_cannot_be_evicted():
    def second_budget(lab) -> None:
        lab.api.create(Target(BY_NAME["poddisruptionbudgets"], "shop"), {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "all-shop", "namespace": "shop"},
            "spec": {"maxUnavailable": 5, "selector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "db"]}]}},
        }, dry_run=False)

    snapshot = snapshot_of("three-workers", second_budget)
    node = node_of(snapshot, "web-")
    web = next(p for p in snapshot.pods_on(node) if p.name.startswith("web-"))
    plan = drain(snapshot, f"drain {node} --delete-emptydir-data")
    assert (f"Eviction will fail: {web.ref} is covered by 2 PodDisruptionBudgets (web-pdb, all-shop); the API "
            "refuses to evict such a pod.") in plan.lines


def test_dry_run_is_said_and_unknown_nodes_refused(seeds):
    plan = drain(seeds, "drain node01 --force --dry-run")
    assert plan.lines[1] == "Dry run: this is the plan only; nothing will be cordoned or evicted."
    refusal = drain(seeds, "drain node09").refusal
    assert refusal == "node node09 not found; the cluster's nodes are: controlplane, node01"


def test_an_empty_node_is_only_cordoned(seeds):
    # Built by hand: in the lab, controllers would put pods straight back on the node.
    empty = ClusterSnapshot(seeds.nodes, tuple(p for p in seeds.pods if p.node != "node01"), seeds.pdbs,
                            seeds.daemonsets)
    plan = drain(empty, "drain node01")
    assert plan.lines[0] == "Drain node01: evict 0 pods, skip 0 (DaemonSet/mirror), 0 blocked"
    assert "Nothing to evict: node01 will only be cordoned." in plan.lines
    assert [s.action for s in plan.steps] == ["cordon", "drain.evict", "drain.wait_gone"]


# --- the snapshot's new parts --------------------------------------------------------------------


def test_snapshot_reads_pdbs_with_their_status(workers):
    pdbs = {p.name: p for p in workers.pdbs}
    assert (pdbs["payments-pdb"].max_unavailable, pdbs["payments-pdb"].disruptions_allowed) == (0, 0)
    web = pdbs["web-pdb"]
    assert (web.min_available, web.current_healthy, web.desired_healthy, web.expected_pods,
            web.disruptions_allowed) == (2, 3, 2, 3, 1)
    assert workers.daemonsets == frozenset({"kube-system/kube-proxy"})


def test_the_old_two_argument_snapshot_still_works():
    snapshot = snapshot_from_api([], [])
    assert (snapshot.pdbs, snapshot.daemonsets) == ((), None)
    assert snapshot.daemonset_exists("kube-system", "anything")


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("app=web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {}, True),  # != and notin also match pods without the label
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("tier notin (a,b)", {}, True),
        ("tier in (a,b)", {"tier": "b"}, True),
        ("tier in (a,b)", {}, False),
        ("canary", {"canary": ""}, True),
        ("!canary", {"canary": "true"}, False),
        ("!canary,app=web", {"app": "web"}, True),
        ("app=", {"app": ""}, True),
    ],
)
def test_label_selectors_match_like_kubernetes(selector: str, labels: dict, matches: bool):
    assert LabelSelector.parse(selector).matches(labels) is matches


def test_pdb_selectors_match_like_kubernetes():
    selector = LabelSelector.from_api({"matchLabels": {"app": "web"},
                                       "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]})
    assert selector.matches({"app": "web"}) and not selector.matches({"app": "web", "tier": "x"})
    assert LabelSelector.from_api({}).matches({"anything": "at all"})
