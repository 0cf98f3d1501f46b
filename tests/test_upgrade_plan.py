"""The upgrade's path and plan, pure: hops, refusals, what each node needs, waves, steps."""

from __future__ import annotations

import pytest

from bot.chat.grammar import GrammarError, parse
from bot.cluster.snapshot import ClusterSnapshot
from bot.domain.upgrade_path import (
    PathError,
    Version,
    default_target,
    hops,
    offer_from,
    package_kube_version,
    too_old_kubelets,
    waves,
)
from handlers.upgrade.facts import NodePackages, UpgradeFacts, parse_madison, probe_minors, probe_script
from handlers.upgrade.plan import plan_upgrade
from tests.scenario_snapshots import snapshot_of
from tests.test_drain_plan import add_pods, pod

LEGACY = offer_from(f"1.{minor}.{patch}-00" for minor, latest in ((19, 16), (20, 15), (21, 14), (22, 17))
                    for patch in range(latest + 1))


def v(text: str) -> Version:
    return Version(*(int(part) for part in text.lstrip("v").split(".")))


def facts_for(snapshot: ClusterSnapshot, offer=LEGACY, repo: str = "legacy apt.kubernetes.io") -> UpgradeFacts:
    machines = {name: NodePackages({"kubeadm": "1.19.0-00", "kubelet": "1.19.0-00", "kubectl": "1.19.0-00"},
                                   frozenset({"kubeadm", "kubelet", "kubectl"}), repo) for name in snapshot.nodes}
    return UpgradeFacts(snapshot, machines, {}, offer, None, "controlplane")


def plan_of(facts: UpgradeFacts, text: str):
    return plan_upgrade(facts, parse(text).options)


@pytest.fixture(scope="module")
def seeds() -> ClusterSnapshot:
    return snapshot_of("seeds-upgrade")


# -- the path ---------------------------------------------------------------------------------------------


def test_package_versions_of_both_repo_layouts_read_as_kubernetes_versions():
    assert package_kube_version("1.20.0-00") == v("v1.20.0")
    assert package_kube_version("1.29.3-1.1") == v("v1.29.3")
    assert package_kube_version("0.8.7-00") is None
    assert package_kube_version("garbage") is None


def test_one_minor_per_hop_through_the_newest_patch_of_each_minor():
    assert hops(v("v1.19.0"), v("v1.20.0"), LEGACY) == [v("v1.20.0")]
    assert hops(v("v1.20.0"), v("v1.22.0"), LEGACY) == [v("v1.21.14"), v("v1.22.0")]
    assert hops(v("v1.19.0"), v("v1.19.16"), LEGACY) == [v("v1.19.16")]  # a patch upgrade is one hop


def test_downgrades_and_versions_not_in_the_repo_are_refused_with_what_is_there():
    with pytest.raises(PathError, match=r"older than the cluster's v1.20.0: kubemaint does not downgrade"):
        hops(v("v1.20.0"), v("v1.19.0"), LEGACY)
    with pytest.raises(PathError, match=r"v1.20.99 is not in the package repo: the v1.20 patches there are "
                                        r"v1.20.0 to v1.20.15"):
        hops(v("v1.19.0"), v("v1.20.99"), LEGACY)
    with pytest.raises(PathError, match=r"it has no v1.25 packages"):
        hops(v("v1.19.0"), v("v1.25.0"), LEGACY)


def test_a_missing_minor_on_the_way_is_named():
    gappy = offer_from(["1.19.0-00", "1.21.0-00"])
    with pytest.raises(PathError, match=r"no v1.20 packages, and kubeadm cannot skip a minor"):
        hops(v("v1.19.0"), v("v1.21.0"), gappy)


def test_without_a_version_the_plan_aims_at_the_next_minors_newest_patch():
    assert default_target(v("v1.19.0"), LEGACY) == v("v1.20.15")
    assert default_target(v("v1.22.3"), LEGACY) == v("v1.22.17")  # no next minor: the newest patch
    assert default_target(v("v1.22.17"), LEGACY) is None


def test_kubeadm_refuses_kubelets_more_than_one_minor_behind_until_1_29_then_three():
    kubelets = {"old": v("v1.27.0"), "ok": v("v1.28.0")}
    assert too_old_kubelets(v("v1.29.0"), kubelets) == []
    assert too_old_kubelets(v("v1.28.0"), {"old": v("v1.26.0")}) == ["old"]
    assert too_old_kubelets(v("v1.31.0"), kubelets) == ["old"]


def test_waves_of_max_unavailable_in_order():
    assert waves(["a", "b", "c", "d", "e"], 2) == [("a", "b"), ("c", "d"), ("e",)]
    with pytest.raises(PathError):
        waves(["a"], 0)


def test_madison_rows_and_the_probe_script():
    rows = ("   kubeadm | 1.29.3-1.1 | https://pkgs.k8s.io/core:/stable:/v1.29/deb  Packages\n"
            "   kubeadm | 1.29.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.29/deb  Packages\n")
    assert parse_madison(rows) == ["1.29.3-1.1", "1.29.2-1.1"]
    assert probe_minors(v("v1.28.15"), None) == [28, 29, 30, 31]
    assert probe_minors(v("v1.28.15"), v("v1.29.3")) == [28, 29]
    pkgs = NodePackages({}, frozenset(), "v1.28")
    script = probe_script(pkgs, [28, 29])[2]
    assert "for m in 1.28 1.29;" in script and "Dir::State::Lists" in script and "madison kubeadm" in script
    legacy = probe_script(NodePackages({}, frozenset(), "legacy apt.kubernetes.io"), [19, 20])[2]
    assert "for m in all;" in legacy


# -- the plan ---------------------------------------------------------------------------------------------


def test_the_seeds_upgrade_plan_shows_the_path_each_node_and_the_steps(seeds):
    plan = plan_of(facts_for(seeds), "upgrade to v1.20.0")
    text = "\n".join(plan.lines)
    assert plan.refusal is None, plan.refusal
    assert "from v1.19.0 to v1.20.0: 1 hop (v1.20.0), 1 control plane and 1 worker" in text
    assert "First: an etcd snapshot on controlplane" in text
    assert ("controlplane (control plane): kubeadm 1.19.0-00 → 1.20.0-00, `kubeadm upgrade plan` check, "
            "`kubeadm upgrade apply v1.20.0 -y`, drain (default: 2 x Deployment blue") in text
    assert "node01: kubeadm 1.19.0-00 → 1.20.0-00, `kubeadm upgrade node`, drain (default: 3 x Deployment blue" in text
    assert "Skew: within the policy at every hop" in text
    assert "Order on each hop: controlplane → node01" in text
    names = [s.name for s in plan.steps]
    assert names[0] == "preflight"
    assert names[1:4] == ["snapshot etcd on controlplane", "copy the snapshot off controlplane",
                          "remove the temporary file on controlplane"]
    assert names[4:] == ["v1.20.0 · controlplane (kubeadm upgrade apply)", "v1.20.0 · node01", "final check"]
    assert plan.steps[4].args["package"] == "1.20.0-00"
    assert "cluster" in plan.locks and "etcd" in plan.locks and "node:node01" in plan.locks


def test_two_minors_are_two_hops_and_every_node_goes_through_each(seeds):
    facts = facts_for(seeds)
    facts = UpgradeFacts(snapshot_of("seeds-upgrade", _at("v1.20.0")), facts.machines, {}, LEGACY, None,
                         "controlplane")
    plan = plan_of(facts, "upgrade to v1.22.0")
    assert plan.refusal is None, plan.refusal
    assert "2 hops (v1.21.14 → v1.22.0)" in plan.lines[0]
    names = [s.name for s in plan.steps if s.action == "upgrade.nodes"]
    assert names == ["v1.21.14 · controlplane (kubeadm upgrade apply)", "v1.21.14 · node01",
                     "v1.22.0 · controlplane (kubeadm upgrade apply)", "v1.22.0 · node01"]


def _at(version: str):
    def mutate(lab) -> None:
        for pod_obj in lab.store.items("pods"):
            for container in pod_obj["spec"]["containers"]:
                if pod_obj["metadata"]["namespace"] == "kube-system" and "etcd" not in container["image"]:
                    container["image"] = container["image"].rsplit(":", 1)[0] + ":" + version
        for node in lab.store.items("nodes"):
            node["status"]["nodeInfo"]["kubeletVersion"] = version
    return mutate


@pytest.mark.parametrize(("text", "refusal"), [
    ("upgrade to v1.18.0", "older than the cluster's v1.19.0: kubemaint does not downgrade"),
    ("upgrade to v1.20.99", "v1.20.99 is not in the package repo"),
    ("upgrade to v1.19.0", "already at v1.19.0: nothing to upgrade"),
    ("upgrade to v1.20.0 --nodes node07", "no node named node07; the cluster's nodes are: controlplane, node01"),
])
def test_refusals_name_why(seeds, text, refusal):
    plan = plan_of(facts_for(seeds), text)
    assert plan.refusal is not None and refusal in plan.refusal
    assert not plan.steps


@pytest.mark.parametrize("text", ["upgrade to 1.20.0", "upgrade to v1.20", "upgrade to v1.20.0;reboot",
                                  "upgrade to latest", "upgrade to"])
def test_bad_version_strings_are_refused_by_the_grammar(text):
    with pytest.raises(GrammarError):
        parse(text)


def test_plan_with_and_without_a_version_are_two_phrases():
    assert parse("upgrade plan").operation.name == "upgrade-plan"
    assert parse("upgrade plan v1.20.0").operation.name == "upgrade-plan-to"
    assert parse("upgrade to v1.20.0 --max-unavailable 5").options.max_unavailable == 5


def test_a_drain_that_would_be_blocked_refuses_the_upgrade_naming_pod_and_flag():
    snapshot = snapshot_of("seeds-upgrade", add_pods(pod("lonely", node="node01")))
    plan = plan_of(facts_for(snapshot), "upgrade to v1.20.0")
    assert plan.refusal is not None
    assert "node01: default/lonely has no controller and would be deleted for good; add --force" in plan.refusal
    assert plan_of(facts_for(snapshot), "upgrade to v1.20.0 --force").refusal is None


def test_unreadable_machines_and_notready_nodes_refuse(seeds):
    facts = facts_for(seeds)
    unread = UpgradeFacts(seeds, {"controlplane": facts.machines["controlplane"]}, {"node01": "node01: refused"},
                          LEGACY, None, "controlplane")
    assert "could not be read over SSH (node01: refused)" in plan_of(unread, "upgrade to v1.20.0").refusal
    no_repo = UpgradeFacts(seeds, facts.machines, {}, None, "the package repo on controlplane lists nothing",
                           "controlplane")
    assert plan_of(no_repo, "upgrade to v1.20.0").refusal == "the package repo on controlplane lists nothing"


def test_skip_snapshot_is_shown_to_the_approver_and_drops_the_backup_steps(seeds):
    plan = plan_of(facts_for(seeds), "upgrade to v1.20.0 --skip-snapshot")
    assert any("No etcd snapshot first (--skip-snapshot)" in line for line in plan.lines)
    assert not any(s.action.startswith("backup_etcd") for s in plan.steps)


def test_a_node_already_at_the_hop_is_left_alone():
    def cp_only(lab) -> None:
        _at("v1.20.0")(lab)
        lab.store.get("nodes", "", "node01")["status"]["nodeInfo"]["kubeletVersion"] = "v1.19.0"

    snapshot = snapshot_of("seeds-upgrade", cp_only)
    base = facts_for(snapshot)
    machines = {**base.machines, "controlplane": NodePackages(
        {"kubeadm": "1.20.0-00", "kubelet": "1.20.0-00", "kubectl": "1.20.0-00"}, frozenset(), base.machines[
            "controlplane"].repo)}
    plan = plan_of(UpgradeFacts(snapshot, machines, {}, LEGACY, None, "controlplane"), "upgrade to v1.20.0")
    assert plan.refusal is None, plan.refusal
    assert [s.name for s in plan.steps if s.action == "upgrade.nodes"] == ["v1.20.0 · node01"]
    assert "  controlplane (control plane): already at v1.20.0" in plan.lines


def test_a_drain_whose_pods_have_nowhere_to_go_is_shown_on_the_card():
    def cordon_node01(lab) -> None:
        lab.store.get("nodes", "", "node01")["spec"]["unschedulable"] = True

    plan = plan_of(facts_for(snapshot_of("seeds-upgrade", cordon_node01)), "upgrade to v1.20.0")
    text = "\n".join(plan.lines)
    assert "While controlplane drains, default: 2 x Deployment blue" in text, text
    assert "wait Pending until it is back: no other Ready, schedulable node accepts it" in text
    assert "While node01 drains" not in text, "with node01 cordoned, controlplane takes node01's pods"


def test_without_an_ssh_section_the_plan_says_the_machines_are_needed(seeds, monkeypatch):
    from bot.contract import NotConfigured
    from handlers.upgrade import facts as facts_module

    class NoSsh(dict):
        def __getitem__(self, name: str):
            if name == "ssh":
                raise NotConfigured("the configuration has no `ssh` section")
            return None

    monkeypatch.setattr(facts_module.kube, "read_snapshot", lambda client, budgets: seeds)
    facts = facts_module.read_upgrade_facts(NoSsh(), None)
    refusal = plan_of(facts, "upgrade to v1.20.0").refusal
    assert refusal == ("an upgrade needs the machines, and they were not read: the configuration has no `ssh` "
                       "section (docs/configuration.md)")
