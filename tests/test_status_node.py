"""What `status NODE` and the cluster `status` say from the API's and the machines' answers (pure), and how
the nodes are asked at once under one time cap (real sshd: tests/ssh_fixtures.py)."""

from __future__ import annotations

import time

import pytest

from bot.cluster.snapshot import NodeInfo, Owner, PodInfo, Taint
from bot.nodes import JobRef
from bot.nodes.facts import MachineFacts, Pending
from bot.nodes.redact import Redactor
from bot.nodes.survey import NodeAnswer, RebootNeed, ask_nodes, parse_reboot_need
from handlers.status import ComponentView, NodeView, RebootNeeds, status_text
from handlers.status_node import node_status_text

pytest_plugins = ["tests.ssh_fixtures"]

NODE = NodeInfo("node01", ready=True, schedulable=False, roles=(), kubelet="v1.19.0", kube_proxy="v1.19.0",
                taints=(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),), pod_capacity=110,
                address="10.0.0.2")
FACTS = MachineFacts(
    os_image="Ubuntu 18.04.5 LTS", kernel="5.4.0-1036-gcp", booted="2026-12-01 09:00:00",
    packages={"kubeadm": "1.19.0-00", "kubelet": "1.19.16-00", "kubectl": "1.19.0-00"},
    held=frozenset({"kubeadm", "kubectl"}), repo="legacy apt.kubernetes.io",
    pending=tuple(Pending(f"pkg{i}", "1.0", "1.1") for i in range(12)), kept_back=("kubeadm",),
    reboot_required=True, reboot_packages=("linux-image-gcp",))


def pod(name: str, owner: Owner | None, **labels: str) -> PodInfo:
    return PodInfo("default", name, f"uid-{name}", "node01", "Running", True, owner, False, False, (), 30,
                   labels=labels)


def test_a_node_shows_the_api_view_then_the_machine() -> None:
    pods = [pod("web-abc-1", Owner("ReplicaSet", "web-abc", "u1"), **{"pod-template-hash": "abc"}),
            pod("web-abc-2", Owner("ReplicaSet", "web-abc", "u1"), **{"pod-template-hash": "abc"}),
            pod("hr-app", None)]
    lines = node_status_text(NODE, pods, FACTS, None).splitlines()
    assert lines[:5] == [
        "*node01* (worker): Ready, *cordoned*, kubelet v1.19.0, InternalIP 10.0.0.2",
        "Taints: node.kubernetes.io/unschedulable:NoSchedule",
        "*Pods* (3):",
        "• default: 2 x Deployment web",
        "• default: hr-app (no controller)",
    ]
    assert lines[5:] == [
        "*Machine* (over SSH):",
        "• Ubuntu 18.04.5 LTS, kernel 5.4.0-1036-gcp, booted 2026-12-01 09:00:00 (node's local time)",
        "• kubeadm 1.19.0-00 (held), kubectl 1.19.0-00 (held), kubelet 1.19.16-00 (not held)",
        "• Package repo: legacy apt.kubernetes.io",
        "• ⚠️ kubelet package 1.19.16-00 is installed but the node reports v1.19.0: the kubelet runs the new "
        "version after `systemctl restart kubelet`",
        "• Pending updates (12): " + ", ".join(f"pkg{i} 1.0 → 1.1" for i in range(10)) + ", and 2 more",
        "• Kept back (held): kubeadm",
        "• *Reboot required* by linux-image-gcp",
    ]


def test_a_machine_not_reached_still_shows_the_api_view_and_why() -> None:
    text = node_status_text(NODE, [], None, "not reached over SSH: node01 (10.0.0.2:22): connection refused <x>")
    assert "No pods run there." in text
    assert text.endswith("*Machine*: not reached over SSH: node01 (10.0.0.2:22): connection refused &lt;x&gt;")


def test_node_text_is_escaped_and_redacted() -> None:
    facts = MachineFacts(os_image="<!channel> OS", kernel="5.4", booted="", repo="deb https://u:hunter22@m.example/ x")
    text = node_status_text(NODE, [], facts, None, redact=Redactor())
    assert "<!channel>" not in text and "&lt;!channel&gt; OS" in text
    assert "hunter22" not in text and "https://u:[redacted]@m.example/" in text


def test_the_reboot_column_and_why_a_node_shows_a_question_mark() -> None:
    nodes = [NodeView("cp", True, True, ("control-plane",), "v1.30.1", 9, "no"),
             NodeView("node01", True, True, (), "v1.30.1", 3, "yes"),
             NodeView("node02", True, True, (), "v1.30.1", 3, "?")]
    needs = RebootNeeds({"cp": False, "node01": True}, {"node02": "node02: no answer within 3s"})
    text = status_text(nodes, [ComponentView("kube-apiserver", "cp", "v1.30.1")], [], needs.notes())
    lines = text.splitlines()
    assert "NODE    READY  SCHEDULING  ROLES          KUBELET  PODS  REBOOT" in lines
    assert "node01  yes    enabled     -              v1.30.1  3     yes" in lines
    assert "node02  yes    enabled     -              v1.30.1  3     ?" in lines
    assert "REBOOT ? node02: no answer within 3s" in lines
    assert [needs.marker(n) for n in ("cp", "node01", "node02", "other")] == ["no", "yes", "?", ""]


def test_without_ssh_the_column_is_left_out_and_the_reason_given() -> None:
    needs = RebootNeeds({}, {}, "Reboot required: not read: the configuration has no `ssh` section")
    text = status_text([NodeView("cp", True, True, (), "v1.30.1", 1)], [], [], needs.notes())
    assert "REBOOT" not in text.split("```")[1]
    assert "Reboot required: not read: the configuration has no `ssh` section" in text


def test_the_reboot_answer_is_parsed_and_nonsense_refused() -> None:
    assert parse_reboot_need("yes\nlinux-image-gcp\nlibc6\n") == RebootNeed(True, ("linux-image-gcp", "libc6"))
    assert parse_reboot_need("no\n") == RebootNeed(False)
    with pytest.raises(ValueError, match="unexpected answer"):
        parse_reboot_need("sh: 1: [: missing ]\n")


def test_nodes_are_asked_at_once_and_a_slow_one_costs_only_the_cap(sshd, new_sshd, make_shell) -> None:
    other = new_sshd(port=sshd.port)  # a second machine on its own address
    shell = make_shell()
    # The machine at the other address takes far longer than the cap.
    script = ["sh", "-c", f'case "$SSH_CONNECTION" in *" {other.address} "*) sleep 20;; esac; echo no']
    nodes = {**{f"node{i}": sshd.address for i in range(5)}, "slow": other.address}
    started = time.monotonic()
    answers = ask_nodes(shell, nodes, script, parse_reboot_need, cap_seconds=3, job=JobRef(None, "U1"))
    waited = time.monotonic() - started
    assert {node: answer.value for node, answer in answers.items() if answer.value} == {
        f"node{i}": RebootNeed(False) for i in range(5)}
    assert answers["slow"] == NodeAnswer("slow", problem="slow: no answer within 3s")
    assert waited < 15, "the cap bounds the wait, not the slowest node"
