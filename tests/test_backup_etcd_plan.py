"""Which node `backup etcd` snapshots, and when it refuses (pure)."""

from __future__ import annotations

from bot.cluster.snapshot import ClusterSnapshot, NodeInfo
from bot.contract import NoOptions
from handlers.backup_etcd import plan_backup


def node(name: str, roles: tuple[str, ...], ready: bool = True) -> NodeInfo:
    return NodeInfo(name, ready, True, roles, "v1.30.1", "v1.30.1", (), 110, address=f"10.0.0.{len(name)}")


def plan(*nodes: NodeInfo):
    return plan_backup(ClusterSnapshot(nodes={n.name: n for n in nodes}, pods=()), NoOptions())


def test_the_first_ready_control_plane_is_snapshotted_and_nothing_else_changes() -> None:
    result = plan(node("cp-b", ("control-plane",)), node("cp-a", ("control-plane",), ready=False),
                  node("worker", ()))
    assert result.refusal is None
    assert [step.name for step in result.steps] == ["snapshot etcd on cp-b", "copy the snapshot off cp-b",
                                                    "remove the temporary file on cp-b"]
    assert result.lines[-1] == "Nothing in the cluster changes." and result.locks == ("etcd",)
    assert plan(node("master", ("master",))).steps[0].args == {"node": "master", "address": "10.0.0.6"}


def test_no_control_plane_or_none_ready_is_refused_before_anything_runs() -> None:
    assert "no control-plane node found" in plan(node("worker", ())).refusal
    refused = plan(node("cp", ("control-plane",), ready=False))
    assert refused.refusal.startswith("no control-plane node is Ready (cp)") and not refused.steps
