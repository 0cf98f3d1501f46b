"""`status` on a fleet: above 50 nodes a summary (counts, the nodes that need attention, skew warnings)
with the full table attached, and `status --all` page by page. Pure: views and lab snapshots in-process."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.contract import Answer
from bot.domain.skew import SkewWarning
from bot.domain.text import MAX_MESSAGE_CHARS
from handlers.status import (
    SUMMARY_ABOVE,
    TABLE_FILENAME,
    ComponentView,
    NodeView,
    RebootNeeds,
    every_node_pages,
    status_answer,
    status_report,
    summary_text,
    table_file,
)
from tests.scenario_snapshots import snapshot_of

COMPONENTS = [ComponentView("kube-apiserver", "controlplane", "v1.21.0")]


def fleet(count: int, **odd: dict) -> list[NodeView]:
    """`count` healthy workers; `odd` replaces some: {"node0007": {"ready": False}}."""
    nodes = []
    for i in range(count):
        name = f"node{i:04d}"
        fields = {"ready": True, "schedulable": True, "kubelet": "v1.21.0", "reboot": "", **odd.get(name, {})}
        nodes.append(NodeView(name, fields["ready"], fields["schedulable"], ("worker",), fields["kubelet"], 10,
                              fields["reboot"]))
    return nodes


def test_the_summary_counts_states_and_kubelet_versions_and_lists_only_the_nodes_that_need_attention() -> None:
    nodes = fleet(200, node0003={"ready": False}, node0050={"schedulable": False},
                  node0100={"kubelet": "v1.17.0"}, node0150={"reboot": "yes"},
                  **{f"node{i:04d}": {"reboot": "no"} for i in range(151, 200)})
    warnings = [SkewWarning("kubelet", "node0100", "kubelet on node0100 is v1.17.0, 4 minors older than "
                                                   "kube-apiserver v1.21.0")]
    text = summary_text(nodes, COMPONENTS, warnings)
    assert text.startswith("*Cluster status*: 200 nodes (199 ready, 1 not ready, 1 cordoned, 1 needs a reboot), "
                           "2000 pods")
    assert "*Kubelet versions*: v1.21.0 on 199, v1.17.0 on 1" in text
    assert "*Needs attention*: 4 nodes" in text
    attention = text.split("*Needs attention*")[1].split("```")[1]
    rows = {line.split()[0]: line for line in attention.strip().splitlines()[1:]}
    assert set(rows) == {"node0003", "node0050", "node0100", "node0150"}
    assert rows["node0003"].endswith("not ready") and rows["node0050"].endswith("cordoned")
    assert rows["node0100"].endswith("version skew") and rows["node0150"].endswith("reboot required")
    assert "4 minors older" in text  # the warning itself
    assert f"`{TABLE_FILENAME}`" in text and "`status --all`" in text
    assert "node0001" not in text  # a healthy node is only in the file


def test_the_attention_list_stops_at_its_limit_and_says_how_many_more() -> None:
    nodes = fleet(300, **{f"node{i:04d}": {"schedulable": False} for i in range(0, 300, 3)})  # 100 cordoned
    text = summary_text(nodes, COMPONENTS, [], limit=20)
    attention = text.split("*Needs attention*")[1]
    assert attention.startswith(": 100 nodes")
    assert len(attention.split("```")[1].strip().splitlines()) == 1 + 20  # header and 20 rows
    assert "… and 80 more: see the attached table or `status --all`" in text
    assert len(text) <= MAX_MESSAGE_CHARS


def test_a_version_the_whole_fleet_shares_is_a_warning_but_marks_no_node() -> None:
    nodes = fleet(100, **{f"node{i:04d}": {"kubelet": "v1.17.0"} for i in range(100)})
    shared = SkewWarning("kubelet", ", ".join(n.name for n in nodes), "v1.17.0 is outside the supported minors")
    text = summary_text(nodes, COMPONENTS, [shared])
    assert "*Needs attention*: none" in text and "outside the supported minors" in text


def test_a_healthy_fleet_needs_no_attention_and_the_reboot_count_shows_only_when_asked() -> None:
    text = summary_text(fleet(80), COMPONENTS, [])
    assert "(80 ready, 0 not ready, 0 cordoned), 800 pods" in text
    assert "*Needs attention*: none" in text and "No version-skew warnings." in text


def test_the_attached_file_holds_every_node_and_the_reply_fits_a_message() -> None:
    snapshot = snapshot_of("large:400:3")
    answer = status_answer(snapshot, 21, reboots=RebootNeeds({}, {}, "Reboot required: not read"))
    assert isinstance(answer, Answer) and len(answer.text) <= MAX_MESSAGE_CHARS
    assert answer.text.startswith("*Cluster status*: 400 nodes (400 ready, 0 not ready, 0 cordoned), ")
    [attached] = answer.files
    assert attached.filename == TABLE_FILENAME
    lines = attached.content.splitlines()
    assert lines[0] == "400 nodes: 400 ready, 0 not ready, 0 cordoned"
    assert lines[2].split() == ["NODE", "READY", "SCHEDULING", "ROLES", "KUBELET", "PODS"]
    rows = lines[3:]
    assert [row.split()[0] for row in rows] == sorted(snapshot.nodes)
    assert next(row for row in rows if row.startswith("node0042")).split() == \
        ["node0042", "yes", "enabled", "-", "v1.19.0", "3"]


@pytest.mark.parametrize("count", [3, SUMMARY_ABOVE])
def test_up_to_fifty_nodes_the_answer_is_the_table_it_always_was(count: int) -> None:
    snapshot = snapshot_of(f"large:{count}:2")
    assert status_answer(snapshot, 21) == status_report(snapshot, 21)
    assert "NODE" in status_report(snapshot, 21)


def test_status_all_pages_every_row_within_the_message_limit() -> None:
    nodes = fleet(500)
    answer = every_node_pages(nodes)
    pages = [answer.text, *answer.more]
    assert len(pages) > 1 and all(len(page) <= MAX_MESSAGE_CHARS for page in pages)
    assert pages[0].startswith("*Cluster status*: 500 nodes")
    assert f"page 1 of {len(pages)} (nodes 1 to " in pages[0]
    rows = [line.split()[0] for page in pages for line in page.split("```")[1].strip().splitlines()[1:]]
    assert rows == [node.name for node in nodes]
    assert all(page.split("```")[1].strip().startswith("NODE") for page in pages)  # each page has the header
    assert file_rows(table_file(nodes)) == rows


def file_rows(content: str) -> list[str]:
    return [line.split()[0] for line in content.splitlines()[3:]]


def test_status_reads_the_same_counts_and_versions_without_listing_every_pod(workers_lab, monkeypatch) -> None:
    """`status` counts pods from the API's pod Table (no pod objects), page by page, and reads only
    kube-system's pods in full; the answer is the one the full snapshot gives, and a pod not yet
    scheduled counts nowhere."""
    from bot.cluster import kube

    monkeypatch.setattr(kube, "TABLE_PAGE", 4)  # several pages of the table

    workers_lab.request("POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unscheduled"},
        "spec": {"nodeSelector": {"nowhere": "true"}, "containers": [{"name": "c", "image": "nginx"}]}})
    client = kube.connect(workers_lab.kubeconfig)
    try:
        full = kube.read_snapshot(client, budgets=False)
        snapshot, pods = kube.read_status(client)
    finally:
        client.close()
    assert snapshot.nodes == full.nodes and {p.namespace for p in snapshot.pods} == {"kube-system"}
    assert pods == Counter(p.node for p in full.pods if p.node) and sum(pods.values()) < len(full.pods)
    assert status_answer(snapshot, 21, pods_per_node=pods) == status_report(full, 21)
