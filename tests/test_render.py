"""What people see: approval cards, progress checklists, status and job lists."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import Block

from bot.chat.approvals import ApprovalRequest, decide
from bot.chat.render import approval_card, approval_fallback_text, decided_card
from bot.contract.reports import JobView, StepView, jobs_text, progress_text
from bot.domain.skew import NodeVersions, SkewWarning, check_skew
from bot.domain.text import MAX_MESSAGE_CHARS, duration
from handlers.status import ComponentView, NodeView, status_text

T0 = 1_700_000_000.0  # 22:13 UTC
APPROVER = frozenset({"approver"})
PLAN = ["mark node01 unschedulable", "3 pods keep running: default: 3 x Deployment web"]


def request(needed: int = 1) -> ApprovalRequest:
    return ApprovalRequest("a-0000beef", "cordon node01", "UREQ", "C0OPS", T0, 1800, needed)


def texts(blocks: list[dict]) -> str:
    """Everything a person can read on a card, buttons and confirm dialog included."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(blocks)
    return "\n".join(found)


def actions(blocks: list[dict]) -> list[dict]:
    return [element for block in blocks if block["type"] == "actions" for element in block["elements"]]


def assert_valid_blocks(blocks: list[dict]) -> None:
    # Parsing back through slack_sdk runs its Block Kit validations (lengths, required fields).
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.to_dict()
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000


# --- approval cards ----------------------------------------------------------------------------------

def test_approval_card_shows_who_what_plan_and_deadline() -> None:
    blocks = approval_card(request(needed=2), PLAN)
    assert_valid_blocks(blocks)
    shown = texts(blocks)
    assert "<@UREQ> asks to run `cordon node01`" in shown
    assert "• mark node01 unschedulable" in shown
    assert "• 3 pods keep running: default: 3 x Deployment web" in shown
    assert "Needs 2 approvals, expires at 22:43 UTC" in shown
    assert "a-0000beef" in shown


def test_approval_card_buttons() -> None:
    approve, deny = actions(approval_card(request(), PLAN))
    assert (approve["action_id"], approve["value"], approve["style"]) == ("approve", "a-0000beef", "primary")
    assert approve["text"]["text"] == "Approve"
    assert approve["confirm"]["title"]["text"] == "Approve this command?"
    assert "`cordon node01`" in approve["confirm"]["text"]["text"]
    assert approve["confirm"]["confirm"]["text"] == "Approve"
    assert (deny["action_id"], deny["value"], deny["text"]["text"]) == ("deny", "a-0000beef", "Deny")


def test_approval_card_says_one_approval_in_the_singular() -> None:
    assert "Needs 1 approval, expires at 22:43 UTC" in texts(approval_card(request(), PLAN))


def test_partly_approved_card_shows_progress() -> None:
    partly = decide(request(needed=2), "UA", APPROVER, "approve", T0 + 60).request
    assert "1 of 2 so far: <@UA>" in texts(approval_card(partly, PLAN))


def test_plan_text_is_escaped() -> None:
    shown = texts(approval_card(request(), ["evict <!channel> & friends"]))
    assert "<!channel>" not in shown
    assert "evict &lt;!channel&gt; &amp; friends" in shown


def test_a_huge_plan_is_truncated_and_still_valid() -> None:
    plan = [f"evict pod default/web-{i:04d} (Deployment web)" for i in range(500)]
    blocks = approval_card(request(), plan)
    assert_valid_blocks(blocks)
    shown = texts(blocks)
    assert "web-0000" in shown
    assert "more steps" in shown and "… and " in shown
    assert len(json.dumps(blocks)) < 6000
    assert len(shown) < MAX_MESSAGE_CHARS


def test_empty_plan() -> None:
    assert "Nothing to do." in texts(approval_card(request(), []))


def test_fallback_text() -> None:
    assert approval_fallback_text(request()) == "<@UREQ> asks to run `cordon node01`: approval needed"


def test_decided_card_approved() -> None:
    approved = decide(request(needed=2), "UA", APPROVER, "approve", T0 + 60).request
    approved = decide(approved, "UB", APPROVER, "approve", T0 + 120).request
    blocks = decided_card(approved, PLAN, T0 + 130)
    assert_valid_blocks(blocks)
    assert actions(blocks) == []
    shown = texts(blocks)
    assert "✅ Approved by <@UA> and <@UB> at 22:15 UTC" in shown
    assert "<@UREQ> asked to run `cordon node01`" in shown
    assert "• mark node01 unschedulable" in shown


def test_decided_card_denied_withdrawn_expired() -> None:
    denied = decide(request(), "UB", APPROVER, "deny", T0 + 300).request
    assert "❌ Denied by <@UB> at 22:18 UTC" in texts(decided_card(denied, PLAN, T0 + 301))
    withdrawn = decide(request(), "UREQ", frozenset(), "deny", T0 + 300).request
    assert "↩️ Withdrawn by <@UREQ> at 22:18 UTC" in texts(decided_card(withdrawn, PLAN, T0 + 301))
    expired = decided_card(request(), PLAN, T0 + 1800)
    assert "⌛ *Expired* at 22:43 UTC without a decision" in texts(expired)
    assert actions(expired) == []


# --- progress -------------------------------------------------------------------------------------------

def test_progress_checklist_while_running() -> None:
    job = JobView("j-1a2b3c4d", "cordon node01", "running", (
        StepView("check node01 is schedulable", "done", 0.21),
        StepView("cordon node01", "running", 1.5, "patching"),
        StepView("verify", "pending"),
    ), elapsed_seconds=12.4)
    assert progress_text(job).splitlines() == [
        "⏳ Job `j-1a2b3c4d` · `cordon node01` · running",
        "✅ check node01 is schedulable (0.2s)",
        "⏳ cordon node01 (1.5s) — patching",
        "▫️ verify",
        "Running for 12s",
    ]


def test_progress_final_lines() -> None:
    job = JobView("j-1a2b3c4d", "cordon node01", "succeeded", [("cordon node01", "done", 0.4, "")], 75,
                  result="node01 cordoned; 3 pods keep running", next_command="uncordon node01")
    lines = progress_text(job).splitlines()
    assert lines[0].startswith("✅ Job `j-1a2b3c4d`")
    assert lines[-2:] == ["*Succeeded* in 1m 15s: node01 cordoned; 3 pods keep running", "Next: `uncordon node01`"]


def test_failed_and_halted_jobs_say_why_and_how_to_go_on() -> None:
    failed = JobView("j-1a2b3c4d", "cordon node01", "failed",
                     [("cordon node01", "failed", 2.0, "API said <403> forbidden"), ("verify", "skipped")], 2.5,
                     result="node01 was not cordoned", next_command="job j-1a2b3c4d")
    text = progress_text(failed)
    assert "❌ cordon node01 (2.0s) — API said &lt;403&gt; forbidden" in text
    assert "⏭️ verify" in text
    assert "*Failed* after 2.5s: node01 was not cordoned" in text
    halted = JobView("j-1a2b3c4d", "cordon node01", "halted", [], 7200, result="worker lost", next_command="x")
    assert "⏸️ Job" in progress_text(halted)
    assert "*Halted* after 2h 00m: worker lost" in progress_text(halted)
    cancelled = JobView("j-1a2b3c4d", "cordon node01", "cancelled", [], 3)
    assert progress_text(cancelled).endswith("*Cancelled* after 3.0s")
    assert progress_text(JobView("j-1a2b3c4d", "status", "queued")).endswith("Queued, waiting for a worker")


def test_a_long_job_stays_under_the_limit_and_shows_the_current_step() -> None:
    steps = [(f"upgrade kubelet on node{i:03d}", "done", 42.0, "v1.20.0 -> v1.21.0") for i in range(200)]
    steps += [("upgrade kubelet on node200", "running", 3.0, "apt-get install")]
    steps += [(f"upgrade kubelet on node{i:03d}", "pending", None, "") for i in range(201, 400)]
    text = progress_text(JobView("j-1a2b3c4d", "upgrade", "running", steps, 9000, next_command="cancel j-1a2b3c4d"))
    assert len(text) <= MAX_MESSAGE_CHARS
    assert "earlier steps finished" in text
    assert "⏳ upgrade kubelet on node200 (3.0s) — apt-get install" in text
    assert "more steps" in text
    assert text.endswith("Running for 2h 30m\nNext: `cancel j-1a2b3c4d`")


def test_a_runaway_detail_is_clipped() -> None:
    text = progress_text(JobView("j-1a2b3c4d", "x", "failed", [("s", "failed", 1.0, "x" * 10_000)], 1))
    assert len(text) < 1000
    assert "…" in text


def test_durations() -> None:
    assert [duration(s) for s in (0.04, 9.94, 9.96, 12.7, 65, 3599, 3600, 7325)] == [
        "0.0s", "9.9s", "10s", "13s", "1m 05s", "59m 59s", "1h 00m", "2h 02m",
    ]


def test_jobs_list() -> None:
    assert jobs_text([]) == "No jobs yet."
    text = jobs_text([JobView("j-1a2b3c4d", "cordon node01", "succeeded", elapsed_seconds=1.2),
                      JobView("j-00000001", "uncordon node01", "running", elapsed_seconds=30)])
    assert text.splitlines() == [
        "*Jobs*",
        "✅ `j-1a2b3c4d` `cordon node01` · succeeded · 1.2s",
        "⏳ `j-00000001` `uncordon node01` · running · 30s",
    ]
    many = jobs_text([JobView(f"j-{i:08x}", "cordon node01", "succeeded", elapsed_seconds=1) for i in range(500)])
    assert len(many) <= MAX_MESSAGE_CHARS and "more jobs" in many


# --- status ---------------------------------------------------------------------------------------------

NODES = [
    NodeView("controlplane", True, True, ("control-plane",), "v1.21.0", 9),
    NodeView("node01", True, False, (), "v1.21.0", 3),
    NodeView("node02", False, True, ("worker", "gpu"), "v1.20.4", 0),
]
COMPONENTS = [
    ComponentView("kube-apiserver", "controlplane", "v1.21.0"),
    ComponentView("kube-scheduler", "controlplane", "v1.21.0"),
]


def test_status_table() -> None:
    text = status_text(NODES, COMPONENTS, [])
    lines = text.splitlines()
    assert lines[0] == "*Cluster status*: 3 nodes (2 ready, 1 cordoned), 12 pods"
    assert "NODE          READY  SCHEDULING  ROLES          KUBELET  PODS" in lines
    assert "controlplane  yes    enabled     control-plane  v1.21.0  9" in lines
    assert "node01        yes    cordoned    -              v1.21.0  3" in lines
    assert "node02        NO     enabled     worker,gpu     v1.20.4  0" in lines
    assert "• kube-apiserver v1.21.0 on controlplane" in lines
    assert lines[-1] == "No version-skew warnings."


def test_status_shows_skew_warnings() -> None:
    warnings = check_skew({"controlplane": "v1.21.0"}, [NodeVersions("node01", "v1.22.0")], [], [], 22)
    text = status_text(NODES, COMPONENTS, warnings)
    assert "*Warnings*" in text
    assert ("⚠️ kubelet on node01 is v1.22.0, newer than kube-apiserver v1.21.0: kubelets must never be newer "
            "than the API server") in text


def test_status_escapes_cluster_text() -> None:
    node = NodeView("node01", True, True, ("<!channel>",), "v1.21.0", 1)
    text = status_text([node], [], [SkewWarning("kubelet", "node01", "odd <version> & more")])
    assert "<!channel>" not in text and "<version>" not in text
    assert "&lt;!channel&gt;" in text and "odd &lt;version&gt; &amp; more" in text


def test_a_big_cluster_fits_in_one_message() -> None:
    nodes = [NodeView(f"worker-{i:04d}", True, True, ("worker",), "v1.21.0", 30) for i in range(1000)]
    warnings = [SkewWarning("kubelet", f"worker-{i:04d}", f"kubelet on worker-{i:04d} is too old " * 3)
                for i in range(300)]
    text = status_text(nodes, COMPONENTS, warnings)
    assert len(text) <= MAX_MESSAGE_CHARS
    assert "1000 nodes (1000 ready, 0 cordoned), 30000 pods" in text
    assert "more nodes" in text and "more warnings" in text
    assert text.count("```") == 2  # the table's code block is still closed
    assert "• kube-apiserver v1.21.0 on controlplane" in text


def test_no_nodes() -> None:
    assert "No nodes found." in status_text([], [], [])


def test_indented_plan_lines_show_under_their_bullet() -> None:
    """A plan line that starts with spaces belongs to the line above: the card shows it as a
    sub-line of that bullet, not as a bullet of its own."""
    shown = texts(approval_card(request(), ["Evict:", "  default: 2 x Deployment blue", "  default: hr-app",
                                            "Stay: DaemonSet pods"]))
    lines = shown.split("\n")
    evict = lines.index("• Evict:")
    assert lines[evict + 1] == "\u2003◦ default: 2 x Deployment blue"
    assert lines[evict + 2] == "\u2003◦ default: hr-app"
    assert lines[evict + 3] == "• Stay: DaemonSet pods"
    assert "•   default" not in shown


def test_job_shows_its_last_node_commands_and_what_they_said() -> None:
    from bot.contract.reports import node_commands_text

    entries = [{"node": f"node{i:02d}", "command": "apt-mark showhold", "exit_code": 0, "duration_s": 0.2,
                "stdout_tail": "kubeadm\nkubelet"} for i in range(6)]
    entries.append({"node": "node09", "command": "sudo -n apt-get install -y kubeadm=1.20.0-00", "exit_code": 100,
                    "duration_s": 1.25, "stderr_tail": "Reading package lists...\nE: Held packages were changed <x>"})
    entries.append({"node": "node10", "command": "true", "outcome": "dropped", "duration_s": 3.0})
    lines = node_commands_text(entries).splitlines()
    assert lines[0] == "*Node commands* (last 5 of 8):"
    assert lines[1:3] == ["• node03 `apt-mark showhold` → exit 0 in 0.2s", "    kubelet"]
    assert lines[-3:] == [
        "• node09 `sudo -n apt-get install -y kubeadm=1.20.0-00` → exit 100 in 1.2s",
        "    E: Held packages were changed &lt;x&gt;",
        "• node10 `true` → dropped in 3.0s",
    ]
