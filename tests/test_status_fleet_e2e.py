"""`status` on a 60-node lab through chat: the summary, the full table attached to the thread as a
file (slack_sdk's files_upload_v2 against the emulator), and `status --all` page by page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chat_driver import ALICE, Chat, Stack

pytestmark = pytest.mark.runs_long(40)

NODES = 60


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # The large scenario's nodes are API objects only (no machines): no ssh, so no reboot column.
    with Stack(scenario=f"large:{NODES}:3", machines=False, time_scale=0.2) as running:
        yield running


@pytest.fixture
def chat(stack: Stack) -> Chat:
    return Chat(stack, timeout=30).reset()


def test_a_fleet_gets_a_summary_with_the_full_table_attached(stack: Stack, chat: Chat) -> None:
    stack.lab.admin("POST", "nodes/node0007/ready", {"ready": False})
    stack.lab.admin("POST", "nodes/node0010/versions", {"kubelet": "v1.15.0", "kubeProxy": "v1.15.0"})
    stack.lab.admin("POST", "patch", {"resource": "nodes", "name": "node0020",
                                      "patch": {"spec": {"unschedulable": True}}})

    asked = chat.ask("status", user=ALICE)
    summary = asked.reply["text"]
    assert summary.startswith(f"*Cluster status*: {NODES} nodes (59 ready, 1 not ready, 1 cordoned)")
    assert "*Kubelet versions*: v1.19.0 on 59, v1.15.0 on 1" in summary
    assert "*Needs attention*: 3 nodes" in summary
    flagged = summary.split("*Needs attention*")[1].split("```")[1].strip().splitlines()[1:]
    assert [row.split()[0] for row in flagged] == ["node0007", "node0010", "node0020"]
    assert "kubelet on node0010 is v1.15.0" in summary  # the skew warning
    assert "node0030" not in summary

    [attached] = chat.wait_for(lambda: chat.client.files(chat.channel, thread_ts=asked.ts), timeout=30,
                               what="the table to be attached to the thread")
    assert attached["name"] == "cluster-status.txt"
    rows = attached["content"].splitlines()[3:]
    assert len(rows) == NODES and rows[0].split()[0] == "controlplane"
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["node0007"][1] == "NO" and by_name["node0020"][2] == "cordoned"
    assert by_name["node0010"][4] == "v1.15.0" and by_name["node0030"] == ["node0030", "yes", "enabled", "-",
                                                                             "v1.19.0", "3"]
    carrier = chat.client.message(chat.channel, attached["message_ts"])
    assert carrier["thread_ts"] == asked.ts  # in the thread, after the summary
    assert float(carrier["ts"]) > float(asked.reply["ts"])


def test_status_all_posts_every_row_in_the_thread(chat: Chat) -> None:
    asked = chat.ask("status --all", user=ALICE)
    first = asked.reply["text"]
    pages = int(first.split(" of ", 1)[1].split(" ", 1)[0])
    replies = chat.wait_for(lambda: (r := asked.replies()) and len(r) >= pages and r, timeout=30,
                            what=f"all {pages} pages")
    rows = [line.split()[0] for page in replies for line in page["text"].split("```")[1].strip().splitlines()[1:]]
    assert len(rows) == NODES and rows == sorted(rows)
    assert chat.client.files(chat.channel, thread_ts=asked.ts) == []  # the rows are in the thread; no file


def test_a_mistyped_flag_says_which_one_status_takes(chat: Chat) -> None:
    reply = chat.ask("status --al", user=ALICE).reply["text"]
    assert '`status` does not know "--al" (it takes --all)' in reply
