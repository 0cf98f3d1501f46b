"""Rolling reboots through chat, on `os-fleet` (a tainted control plane and three workers, Ubuntu 20.04
machines with a new kernel waiting) with the blockers and gates configured: `reboot --needed
--max-unavailable 1` one worker at a time, the control plane left alone; a pod matching the blocker
selector refused in the plan and, when it appears mid-rollout, holding its node back; a firing alert
(a small Prometheus) stopping the rollout before a node; `pause` mid-rollout and `resume`.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator

import pytest

from lab.prometheus import FakePrometheus
from lab.testing import wait_until
from tests.chat_driver import Chat, Stack, text_of

pytestmark = pytest.mark.runs_long(90)

TERMINAL = ("succeeded", "failed", "halted", "cancelled")
WORKERS = ("node01", "node02", "node03")
ALERTS = 'ALERTS{alertstate="firing",severity="critical"}'
BATCH_POD = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "batch-report", "namespace": "default", "labels": {"app": "batch-report"}},
             "spec": {"nodeName": "node02", "containers": [{"name": "report", "image": "report:1.0"}]}}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[FakePrometheus]:
    with FakePrometheus() as prom:
        yield prom


@pytest.fixture(scope="module")
def stack(prometheus: FakePrometheus) -> Iterator[Stack]:
    maintenance = {
        "blockers": {"pod_selector": "app=batch-report"},
        "gates": {"http": [{"url": prometheus.health_url, "timeout_seconds": 2}],
                  "prometheus": {"url": prometheus.url, "timeout_seconds": 2, "queries": [ALERTS]}},
    }
    with Stack(scenario="os-fleet", time_scale=0.05, workers=2, maintenance=maintenance) as running:
        yield running


@pytest.fixture
def chat(stack: Stack, prometheus: FakePrometheus) -> Iterator[Chat]:
    yield Chat(stack, timeout=60)
    prometheus.clear()


def kubectl(stack: Stack, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60, input=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def nodes(stack: Stack) -> dict[str, dict]:
    return {n["metadata"]["name"]: n for n in json.loads(kubectl(stack, "get", "nodes", "-o", "json"))["items"]}


def pod_exists(stack: Stack, name: str) -> bool:
    """Asked of the lab's API directly: a poll through kubectl costs a process start each time."""
    return any(p["metadata"]["name"] == name for p in stack.lab.get("/api/v1/namespaces/default/pods")["items"])


def cordoned(stack: Stack) -> set[str]:
    return {name for name, n in nodes(stack).items() if n["spec"].get("unschedulable")}


def cordoned_in_the_api(stack: Stack) -> set[str]:
    """`cordoned` asked of the lab's API directly: a watch that polls through kubectl starts a process
    each time (a core's worth of CPU for the whole rollout, and fewer samples)."""
    return {n["metadata"]["name"] for n in stack.lab.get("/api/v1/nodes")["items"] if n["spec"].get("unschedulable")}


def boots(stack: Stack) -> dict[str, int]:
    return {name: machine["boots"] for name, machine in stack.lab.machines().items()}


def ask_for_a_reboot(stack: Stack, *names: str) -> None:
    """What unattended-upgrades leaves behind after installing a kernel."""
    for name in names:
        done = stack.lab.ssh(name, "sudo touch /var/run/reboot-required")
        assert done.returncode == 0, done.stderr


def test_reboot_needed_reboots_the_workers_that_ask_one_at_a_time(stack: Stack, chat: Chat) -> None:
    for name in WORKERS:
        done = stack.lab.ssh(name, "sudo apt-get update -qq && sudo apt-get -y -q upgrade")
        assert done.returncode == 0, done.stderr
    before = boots(stack)
    thread = chat.ask("reboot --needed --max-unavailable 1", timeout=90)
    plan = text_of(thread.card())
    assert "Reboot 3 nodes" in plan and "Order: node01 → node02 → node03" in plan, plan
    assert "reboot: it already asks for one (libc6, linux-image-gcp)" in plan
    assert "controlplane" not in plan  # it does not ask for a reboot
    seen: list[set[str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            seen.append(cordoned_in_the_api(stack))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        record = chat.wait_job(thread.approve(), TERMINAL, timeout=180)
    finally:
        done.set()
        watcher.join()
    assert record.state == "succeeded", [(s.name, s.detail) for s in record.steps]
    assert [s.name for s in record.steps] == ["reboot node01", "reboot node02", "reboot node03"]
    assert max(len(c) for c in seen) == 1, "one worker out of service at a time"
    assert {n for c in seen for n in c} == set(WORKERS)
    after = boots(stack)
    assert {n: after[n] - before[n] for n in after} == {"controlplane": 0, "node01": 1, "node02": 1, "node03": 1}
    kernels = {name: n["status"]["nodeInfo"]["kernelVersion"] for name, n in nodes(stack).items()}
    assert kernels == {"controlplane": "5.15.0-1045-gcp", **dict.fromkeys(WORKERS, "5.15.0-1051-gcp")}
    assert cordoned(stack) == set()
    assert kubectl(stack, "get", "deployment", "web", "-n", "shop", "-o", "jsonpath={.status.availableReplicas}") \
        == "6"
    progress = text_of(thread.wait_progress("succeeded", timeout=30))
    assert all(f"reboot {name}" in progress for name in WORKERS), progress


def test_a_blocking_pod_is_refused_in_the_plan_and_holds_its_node_back_mid_rollout(stack: Stack, chat: Chat) -> None:
    ask_for_a_reboot(stack, "node01", "node02")
    kubectl(stack, "create", "--validate=false", "-f", "-", stdin=json.dumps(BATCH_POD))
    refused = text_of(chat.ask("reboot --needed --timeout 5s", timeout=90).reply)
    assert "blocked: pods matching app=batch-report (maintenance.blockers) run on node02: default/batch-report" \
        in refused, refused
    kubectl(stack, "delete", "pod", "batch-report", "--wait=false")
    wait_until(lambda: not pod_exists(stack, "batch-report"), timeout=30, message="batch-report gone")
    thread = chat.ask("reboot --needed --timeout 5s", timeout=90)
    job = thread.approve()
    chat.wait_job(job, lambda r: r.steps[0].state == "running" or r.state in TERMINAL, timeout=60)
    kubectl(stack, "create", "--validate=false", "-f", "-", stdin=json.dumps(BATCH_POD))
    record = chat.wait_job(job, TERMINAL, timeout=120)
    assert record.state == "failed"
    assert record.steps[0].state == "done"
    reason = record.steps[1].detail
    assert "node02 failed during its reboot (done on it: nothing): held back for 5s, nothing was done on it: " \
           "pods matching app=batch-report (maintenance.blockers) run on node02: default/batch-report" in reason, reason
    assert "node02" not in cordoned(stack)
    kubectl(stack, "delete", "pod", "batch-report", "--wait=false")
    wait_until(lambda: not pod_exists(stack, "batch-report"), timeout=30, message="batch-report gone")
    chat.ask(f"resume {job}")
    assert chat.wait_job(job, TERMINAL, timeout=120).state == "succeeded"
    assert cordoned(stack) == set()


def test_a_firing_alert_stops_the_rollout_before_the_next_node(stack: Stack, chat: Chat,
                                                               prometheus: FakePrometheus) -> None:
    ask_for_a_reboot(stack, "node03")
    prometheus.set_series(ALERTS, [{"__name__": "ALERTS", "alertname": "KubeNodeNotReady", "severity": "critical",
                                    "alertstate": "firing"}])
    before = boots(stack)["node03"]
    thread = chat.ask("reboot --needed --timeout 3s", timeout=90)
    assert f"Prometheus: {ALERTS}" in text_of(thread.card())
    job = thread.approve()
    record = chat.wait_job(job, TERMINAL, timeout=60)
    assert record.state == "failed"
    reason = record.steps[0].detail
    assert "node03 failed during its reboot (done on it: nothing): held back for 3s, nothing was done on it: " \
           f"'{ALERTS}' returned 1 series: ALERTS{{alertname=\"KubeNodeNotReady\"" in reason, reason
    assert boots(stack)["node03"] == before and cordoned(stack) == set()
    prometheus.clear()
    chat.ask(f"resume {job}")
    assert chat.wait_job(job, TERMINAL, timeout=120).state == "succeeded"
    assert boots(stack)["node03"] == before + 1


def test_pause_lets_the_current_node_finish_and_resume_goes_on(stack: Stack, chat: Chat) -> None:
    ask_for_a_reboot(stack, *WORKERS)
    before = boots(stack)
    thread = chat.ask("reboot --needed", timeout=90)
    job = thread.approve()
    chat.wait_job(job, lambda r: r.steps[0].state == "running" or r.state in TERMINAL, timeout=60)
    reply = text_of(chat.ask(f"pause {job}").reply)
    assert job in reply, reply
    paused = chat.wait_job(job, ("paused", *TERMINAL), timeout=120)
    assert paused.state == "paused", [(s.name, s.state, s.detail) for s in paused.steps]
    assert [s.state for s in paused.steps] == ["done", "pending", "pending"]
    assert boots(stack)["node02"] == before["node02"] and cordoned(stack) == set()
    shown = text_of(thread.wait_progress(f"resume {job}", timeout=30))
    assert "Paused by" in shown, shown
    chat.ask(f"resume {job}")
    assert chat.wait_job(job, TERMINAL, timeout=120).state == "succeeded"
    after = boots(stack)
    assert all(after[n] == before[n] + 1 for n in WORKERS)
