"""The plan of `reboot` and `os-upgrade`, pure: what the person in chat reads before approving (packages,
holds, why a reboot follows, the drain, the window, the order) and what refuses it, on lab snapshots with
machine facts written out by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.chat.grammar import parse
from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import Plan
from bot.domain.windows import parse_window
from bot.nodes.facts import KUBE_PACKAGES, MachineFacts, Pending
from handlers.os_upgrade.facts import MaintenanceFacts
from handlers.os_upgrade.plan import OsUpgradeAll, RebootNeeded, plan_maintenance
from tests.scenario_snapshots import snapshot_of

UPDATES = (
    Pending("libc6", "2.27-3ubuntu1.4", "2.27-3ubuntu1.6"),
    Pending("linux-image-gcp", "5.4.0.1036", "5.4.0.1040"),
    Pending("openssl", "1.1.1-1ubuntu2.1~18.04.20", "1.1.1-1ubuntu2.1~18.04.23"),
)
# Thursday noon UTC; a window opening at 22:00 UTC is 10 hours ahead.
THURSDAY_NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()


def machine(**changes) -> MachineFacts:
    """A seeds-os-upgrade node as it reads itself over SSH: Kubernetes 1.19.0-00 held, three updates waiting."""
    base = MachineFacts(os_image="Ubuntu 18.04.5 LTS", kernel="5.4.0-1036-gcp", booted="2026-12-01 13:02:11",
                        packages=dict.fromkeys(KUBE_PACKAGES, "1.19.0-00"), held=frozenset(KUBE_PACKAGES),
                        repo="legacy apt.kubernetes.io", pending=UPDATES, reboot_required=False)
    return replace(base, **changes)


UP_TO_DATE = machine(pending=())
ASKS_FOR_REBOOT = machine(reboot_required=True, reboot_packages=("linux-image-5.4.0-1040-gcp",))


def facts_of(snapshot: ClusterSnapshot, machines: dict[str, MachineFacts] | None = None, **fields) -> MaintenanceFacts:
    every = {name: machine() for name in snapshot.nodes}
    return MaintenanceFacts(snapshot, {**every, **(machines or {})}, **fields)


def plan(facts: MaintenanceFacts, text_or_options) -> Plan:
    options = parse(text_or_options).options if isinstance(text_or_options, str) else text_or_options
    return plan_maintenance(facts, options)


def text(result: Plan) -> str:
    return "\n".join(result.lines)


def refused(result: Plan) -> str:
    assert result.refusal is not None, text(result)
    assert not result.steps and not result.locks
    return result.refusal


def planned(result: Plan) -> str:
    assert result.refusal is None, result.refusal
    return text(result)


@pytest.fixture(scope="module")
def seeds() -> ClusterSnapshot:
    return snapshot_of("seeds-os-upgrade")


@pytest.fixture(scope="module")
def fleet() -> ClusterSnapshot:
    return snapshot_of("os-fleet")  # controlplane (tainted) and node01..node03


# -- one node ---------------------------------------------------------------------------------------------


def test_os_upgrade_refuses_what_the_drain_refuses_until_forced(seeds):
    assert refused(plan(facts_of(seeds), "os-upgrade node01")) == (
        "refused: the drain would be blocked: node01: default/hr-app has no controller and would be deleted for "
        "good; add --force to delete it anyway")

    forced = plan(facts_of(seeds), "os-upgrade node01 --force")
    card = planned(forced)
    assert [(s.name, s.action) for s in forced.steps] == [("os-upgrade node01", "maintain.nodes")]
    args = forced.steps[0].args
    assert (args["kind"], args["reboot"]) == ("os-upgrade", "auto")
    assert args["nodes"] == [{"node": "node01", "address": seeds.nodes["node01"].address, "role": "worker"}]
    assert args["options"]["force"] is True
    assert forced.locks == ("cluster", "node:node01")
    assert forced.start_at is None
    assert ("  3 packages change: libc6 2.27-3ubuntu1.4 → 2.27-3ubuntu1.6, linux-image-gcp 5.4.0.1036 → "
            "5.4.0.1040, openssl 1.1.1-1ubuntu2.1~18.04.20 → 1.1.1-1ubuntu2.1~18.04.23") in forced.lines
    assert "  held, not upgraded: kubeadm, kubectl, kubelet" in forced.lines
    assert "  a reboot follows: new kernel (linux-image-gcp); libc6 asks for one" in forced.lines
    assert "Lost for good: default/hr-app will be deleted" in card
    assert "No maintenance window is configured: it may run at any time." in forced.lines


def test_reboot_never_says_what_asked_for_one(seeds):
    result = plan(facts_of(seeds), "os-upgrade node01 --force --reboot never")
    planned(result)
    assert "  no reboot (--reboot never), though new kernel (linux-image-gcp); libc6 asks for one" in result.lines
    assert result.steps[0].args["reboot"] == "never"


def test_an_up_to_date_machine_is_refused_unless_a_reboot_is_asked_for(seeds):
    facts = facts_of(seeds, {"node01": UP_TO_DATE})
    assert refused(plan(facts, "os-upgrade node01 --force")) == (
        "node01 is up to date: no pending updates and no reboot required (`os-upgrade node01 --reboot always` "
        "reboots it anyway)")
    always = plan(facts, "os-upgrade node01 --force --reboot always")
    planned(always)
    assert "  no package changes" in always.lines
    assert "  then a reboot (--reboot always)" in always.lines
    assert always.steps[0].args["reboot"] == "always"


def test_kubernetes_packages_not_held_are_held_first(seeds):
    loose = machine(held=frozenset({"kubeadm", "kubectl"}),
                    pending=(*UPDATES, Pending("kubelet", "1.19.0-00", "1.19.16-00")))
    result = plan(facts_of(seeds, {"node01": loose}), "os-upgrade node01 --force")
    planned(result)
    assert "  kubelet not held: held first, so the OS upgrade leaves Kubernetes alone" in result.lines
    assert "  held, not upgraded: kubeadm, kubectl" in result.lines
    assert "  3 packages change:" in text(result) and "kubelet 1.19.0-00" not in text(result)


def test_unknown_notready_and_unreadable_nodes_are_refused(seeds):
    assert refused(plan(facts_of(seeds), "os-upgrade node07")) == (
        "node node07 not found; the cluster's nodes are: controlplane, node01")

    down = replace(seeds, nodes={**seeds.nodes, "node01": replace(seeds.nodes["node01"], ready=False)})
    assert refused(plan(facts_of(down), "reboot node01 --force")).startswith(
        "node01 is NotReady: maintenance starts on healthy nodes only")

    unread = MaintenanceFacts(seeds, {"controlplane": machine()}, {"node01": "connection refused"})
    assert refused(plan(unread, "os-upgrade node01 --force")) == (
        "node01 could not be read over SSH (node01: connection refused); an OS upgrade needs the machine")
    assert "a reboot needs the machine" in refused(plan(unread, "reboot node01 --force"))


def test_without_a_node_or_the_rollout_flag_it_asks_which_node(seeds):
    assert refused(plan(facts_of(seeds), RebootNeeded())) == (
        "say which node: `reboot NODE`, or `reboot --needed` for every node that needs a reboot")
    assert refused(plan(facts_of(seeds), OsUpgradeAll())) == (
        "say which node: `os-upgrade NODE`, or `os-upgrade --all` for every node that has pending updates or "
        "needs a reboot")


# -- rollouts ---------------------------------------------------------------------------------------------


def test_reboot_needed_takes_only_the_machines_that_ask(seeds):
    result = plan(facts_of(seeds, {"node01": ASKS_FOR_REBOOT}), "reboot --needed --force")
    planned(result)
    assert [s.name for s in result.steps] == ["reboot node01"]
    assert result.locks == ("cluster", "node:node01")
    assert "  reboot: it already asks for one (linux-image-5.4.0-1040-gcp)" in result.lines

    assert refused(plan(facts_of(seeds), "reboot --needed --force")) == (
        "nothing to do on the 2 nodes: /var/run/reboot-required is on none of them")


def test_control_planes_go_alone_first_then_workers_in_waves(fleet):
    facts = facts_of(fleet, dict.fromkeys(fleet.nodes, ASKS_FOR_REBOOT))
    result = plan(facts, "reboot --needed --max-unavailable 2")
    card = planned(result)
    assert [[t["node"] for t in s.args["nodes"]] for s in result.steps] == [
        ["controlplane"], ["node01", "node02"], ["node03"]]
    assert result.steps[0].name == "reboot controlplane (control plane)"
    assert result.steps[0].args["nodes"][0]["role"] == "control-plane"
    assert {t["role"] for s in result.steps[1:] for t in s.args["nodes"]} == {"worker"}
    assert result.steps[-1].name == "reboot node03"
    assert result.locks == ("cluster", "node:controlplane", "node:node01", "node:node02", "node:node03")
    assert ("Order: controlplane → [node01, node02] → node03 (control planes one at a time, then workers in waves "
            "of at most 2)") in card
    assert "Reboot 4 nodes: drain, reboot" in result.lines[0]
    assert any(line.startswith("  drain: 3 pods to evict (shop/") for line in result.lines)


def test_waves_are_numbered_among_the_workers_waves(fleet):
    facts = facts_of(fleet, dict.fromkeys(fleet.nodes, ASKS_FOR_REBOOT))
    result = plan(facts, "reboot --needed --max-unavailable 2")
    assert [s.name for s in result.steps] == [
        "reboot controlplane (control plane)", "reboot wave 1/2: node01, node02", "reboot node03"]


# -- what holds it back -----------------------------------------------------------------------------------


def test_a_busy_cluster_is_refused_naming_the_holder(seeds):
    holder = "job j-7 (upgrade to v1.20.0) since 13:02 UTC"
    assert refused(plan(facts_of(seeds, cluster_holder=holder), "os-upgrade node01 --force")).startswith(
        f"the cluster is busy: {holder} holds it, and maintenance runs one at a time per cluster")


def test_a_blocker_pod_on_the_node_refuses_before_the_drain_does(seeds):
    facts = facts_of(seeds, blocker_selector="app=hr-app")
    assert refused(plan(facts, "os-upgrade node01")) == (
        "blocked: pods matching app=hr-app (maintenance.blockers) run on node01: default/hr-app. Try again when "
        "they have finished")
    # controlplane runs no such pod: planned, and the check is named for every node.
    result = plan(facts, "reboot controlplane")
    assert ("Before each node and after it: no pod matching app=hr-app on the node; every node Ready; the moved "
            "workloads available again.") in planned(result)


# -- maintenance windows ----------------------------------------------------------------------------------


def daily(start: str, end: str, zone: str = "UTC"):
    return (parse_window({"days": "daily", "start": start, "end": end, "time_zone": zone}),)


def test_outside_the_window_refused_with_the_next_opening_or_queued_for_it(seeds):
    facts = facts_of(seeds, windows=daily("22:00", "23:00"), now=THURSDAY_NOON)
    assert refused(plan(facts, "os-upgrade node01 --force")) == (
        "outside the maintenance window: the next one opens Thu 2026-12-03 22:00 UTC (in 10h). Add `--at-window` "
        "to queue it to start then")
    queued = plan(facts, "os-upgrade node01 --force --at-window")
    planned(queued)
    assert queued.start_at == datetime(2026, 12, 3, 22, 0, tzinfo=UTC).timestamp()
    assert ("Starts at Thu 2026-12-03 22:00 UTC (in 10h), when the next maintenance window opens (--at-window); "
            "`jobs` shows it scheduled.") in queued.lines


def test_inside_the_window_it_starts_now_and_says_until_when(seeds):
    inside = datetime(2026, 12, 3, 22, 15, tzinfo=UTC).timestamp()
    result = plan(facts_of(seeds, windows=daily("22:00", "23:00"), now=inside), "os-upgrade node01 --force")
    assert "Maintenance window open until 23:00 UTC: a rollout still running then finishes its current nodes" \
           in planned(result)
    assert result.start_at is None


def test_a_window_in_another_zone_shows_the_utc_time_too(seeds):
    facts = facts_of(seeds, windows=daily("22:00", "04:00", "Europe/Berlin"), now=THURSDAY_NOON)
    assert "the next one opens Thu 2026-12-03 22:00 Europe/Berlin (21:00 UTC, in 9h)" in refused(
        plan(facts, "os-upgrade node01 --force"))


# -- what else the approver is told ------------------------------------------------------------------------


def test_a_node_cordoned_before_stays_cordoned():
    def cordon_node01(lab) -> None:
        node = lab.store.get("nodes", "", "node01")
        lab.store.put("nodes", {**node, "spec": {**node["spec"], "unschedulable": True}})

    snapshot = snapshot_of("seeds-os-upgrade", cordon_node01)
    result = plan(facts_of(snapshot), "os-upgrade node01 --force")
    assert ("node01: Ubuntu 18.04.5 LTS, kernel 5.4.0-1036-gcp, cordoned before this job: it stays cordoned "
            "afterwards") in planned(result)


def test_rebooting_the_only_control_plane_warns_the_api_goes_down(seeds):
    warning = "⚠️ controlplane is the only control plane: the cluster's API is down while it reboots."
    reboot = plan(facts_of(seeds), "reboot controlplane")
    assert warning in planned(reboot).splitlines()
    assert reboot.steps[0].name == "reboot controlplane (control plane)"
    assert "⚠️" not in planned(plan(facts_of(seeds), "os-upgrade controlplane --reboot never"))
    assert "⚠️" not in planned(plan(facts_of(seeds), "os-upgrade node01 --force"))
