"""Every node of a scenario is a machine (lab/machines): the system's own ssh client reaches it
with the lab's ssh_config, it has its own files and programs, and the API shows what happens
on it (kubelet version and state, reboots, static pods). Each fault of /_lab/machines is here.

The lab is the session's seeds-os-upgrade lab (tests/conftest.py), reset before each test:
a machine that anything happened to is built and booted afresh.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from lab.testing import LabError, LabProcess

pytestmark = pytest.mark.runs_long(48)

GRACE = 40 * 0.05  # the node monitor grace period at the pool's time scale


@pytest.fixture
def lab(seeds_lab: LabProcess) -> LabProcess:
    return seeds_lab


def ok(lab: LabProcess, node: str, command: str, **kwargs) -> str:
    result = lab.ssh(node, command, **kwargs)
    assert result.returncode == 0, f"{node}$ {command} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def node(lab: LabProcess, name: str) -> dict:
    return lab.get(f"/api/v1/nodes/{name}")


def ready(lab: LabProcess, name: str) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node(lab, name)["status"]["conditions"])


def boot_id(lab: LabProcess, name: str) -> str:
    return node(lab, name)["status"]["nodeInfo"]["bootID"]


# -- reaching a machine ------------------------------------------------------------------------


def test_the_system_ssh_client_reaches_a_machine_and_sudo_needs_no_password(lab: LabProcess) -> None:
    assert ok(lab, "node01", "id -un; hostname; sudo -n id -un") == "kubemaint\nnode01\nroot\n"
    assert ok(lab, "node01", "sudo apt-mark showhold") == "kubeadm\nkubectl\nkubelet\n"
    manifest = ok(lab, "controlplane", "sudo cat /etc/kubernetes/manifests/kube-apiserver.yaml")
    address, _ = lab.address("controlplane")
    assert "image: k8s.gcr.io/kube-apiserver:v1.19.0" in manifest
    assert f"- --advertise-address={address}" in manifest


def test_two_machines_see_different_files(lab: LabProcess) -> None:
    ok(lab, "node01", "echo only-here > /tmp/mark && sudo touch /etc/kubernetes/node01-was-here")
    assert ok(lab, "node01", "cat /tmp/mark; ls /etc/kubernetes") == \
        "only-here\nkubelet.conf\nmanifests\nnode01-was-here\npki\n"
    assert lab.ssh("controlplane", "cat /tmp/mark").returncode == 1
    assert ok(lab, "controlplane", "ls /etc/kubernetes/manifests") == \
        "etcd.yaml\nkube-apiserver.yaml\nkube-controller-manager.yaml\nkube-scheduler.yaml\n"
    assert ok(lab, "node01", "ls /etc/kubernetes/manifests") == ""
    assert ok(lab, "node01", "cat /proc/sys/kernel/random/boot_id").strip() == boot_id(lab, "node01")
    assert ok(lab, "controlplane", "cat /proc/sys/kernel/random/boot_id").strip() == boot_id(lab, "controlplane")
    assert boot_id(lab, "node01") != boot_id(lab, "controlplane")


def test_machines_are_the_nodes_internal_ips_and_the_ssh_files_name_them(lab: LabProcess) -> None:
    machines = lab.machines()
    assert set(machines) == {"controlplane", "node01"}
    known_hosts = lab.known_hosts.read_text().splitlines()
    config = lab.ssh_config.read_text()
    for name, machine in machines.items():
        address = machine["address"]
        assert re.fullmatch(r"127\.\d+\.\d+\.\d+", address) and not address.startswith("127.0.")
        internal = [a["address"] for a in node(lab, name)["status"]["addresses"] if a["type"] == "InternalIP"]
        assert internal == [address]
        assert machine["port"] == 22
        assert f"{address} {machine['hostKey']['public']}" in known_hosts
        entry = f"Host {name}\n  HostName {address}\n  Port 22\n  User kubemaint\n  IdentityFile {lab.ssh_key}\n"
        assert entry in config
    assert "  StrictHostKeyChecking yes\n" in config and f"  UserKnownHostsFile {lab.known_hosts}\n" in config
    assert lab.ssh_key.stat().st_mode & 0o777 == 0o600
    info = node(lab, "node01")["status"]["nodeInfo"]
    assert (info["osImage"], info["kernelVersion"]) == ("Ubuntu 18.04.5 LTS", "5.4.0-1036-gcp")


def test_the_machine_fingerprint_is_the_one_ssh_keyscan_sees(lab: LabProcess) -> None:
    address, _ = lab.address("node01")
    scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", address], capture_output=True, text=True, timeout=30)
    assert lab.machine("node01")["hostKey"]["public"] in scanned.stdout


# -- the kubelet as the API sees it -----------------------------------------------------------------


def test_the_kubelet_version_changes_only_after_the_package_and_a_restart(lab: LabProcess) -> None:
    held = lab.ssh("node01", "sudo apt-get install -y kubelet=1.20.0-00")
    assert held.returncode == 100
    assert "E: Held packages were changed and -y was used without --allow-change-held-packages." in held.stderr
    ok(lab, "node01", "sudo apt-mark unhold kubelet && sudo apt-get install -y kubelet=1.20.0-00 && "
                      "sudo apt-mark hold kubelet")
    assert ok(lab, "node01", "kubelet --version") == "Kubernetes v1.20.0\n"
    time.sleep(0.3)  # a few of the lab's watch ticks: nothing may change yet
    assert node(lab, "node01")["status"]["nodeInfo"]["kubeletVersion"] == "v1.19.0"
    ok(lab, "node01", "sudo systemctl daemon-reload && sudo systemctl restart kubelet")
    lab.wait_for(lambda: node(lab, "node01")["status"]["nodeInfo"]["kubeletVersion"] == "v1.20.0", timeout=10,
                 message="kubeletVersion v1.20.0 after the restart")
    assert node(lab, "node01")["status"]["nodeInfo"]["kubeProxyVersion"] == "v1.20.0"


def test_a_stopped_kubelet_makes_the_node_not_ready_after_the_grace_period(lab: LabProcess) -> None:
    stopped_at = time.monotonic()
    ok(lab, "node01", "sudo systemctl stop kubelet")
    assert ok(lab, "node01", "systemctl is-active kubelet || true") == "inactive\n"
    assert ready(lab, "node01"), "the node monitor waits out its grace period"
    lab.wait_for(lambda: not ready(lab, "node01"), timeout=GRACE + 10, message="node01 NotReady")
    assert time.monotonic() - stopped_at >= GRACE * 0.9
    reason = next(c for c in node(lab, "node01")["status"]["conditions"] if c["type"] == "Ready")
    assert (reason["status"], reason["message"]) == ("Unknown", "Kubelet stopped posting node status.")
    ok(lab, "node01", "sudo systemctl start kubelet")
    lab.wait_for(lambda: ready(lab, "node01"), timeout=10, message="node01 Ready again")


def test_a_changed_static_pod_manifest_changes_its_mirror_pod(lab: LabProcess) -> None:
    path = "/api/v1/namespaces/kube-system/pods/kube-apiserver-controlplane"
    before = lab.get(path)
    ok(lab, "controlplane", "sudo sed -i 's|kube-apiserver:v1.19.0|kube-apiserver:v1.19.16|' "
                            "/etc/kubernetes/manifests/kube-apiserver.yaml")
    after = lab.wait_for(lambda: (p := lab.get(path))["spec"]["containers"][0]["image"].endswith(":v1.19.16") and p,
                         timeout=10, message="the mirror pod's new image")
    assert after["metadata"]["uid"] != before["metadata"]["uid"], "the kubelet recreates an outdated mirror pod"
    hashes = [p["metadata"]["annotations"]["kubernetes.io/config.hash"] for p in (before, after)]
    assert hashes[0] != hashes[1]
    assert lab.get("/version")["gitVersion"] == "v1.19.16"
    ok(lab, "controlplane", "sudo mv /etc/kubernetes/manifests/kube-scheduler.yaml /root/")
    lab.wait_for(lambda: lab.request("GET", path.replace("apiserver", "scheduler"))[0] == 404, timeout=10,
                 message="the scheduler's mirror pod gone")
    ok(lab, "controlplane", "sudo mv /root/kube-scheduler.yaml /etc/kubernetes/manifests/")
    lab.wait_for(lambda: lab.request("GET", path.replace("apiserver", "scheduler"))[0] == 200, timeout=10,
                 message="the scheduler's mirror pod back")


# -- reboots and power ----------------------------------------------------------------------------


def test_a_reboot_ends_every_session_and_boots_the_new_kernel(lab: LabProcess) -> None:
    upgraded = ok(lab, "node01", "sudo apt-get update && sudo apt-get upgrade -y")
    assert "The following packages have been kept back:\n  kubeadm kubectl kubelet\n" in upgraded
    assert ok(lab, "node01", "cat /var/run/reboot-required.pkgs") == "libc6\nlinux-image-gcp\n"
    assert ok(lab, "node01", "uname -r") == "5.4.0-1036-gcp\n", "the new kernel runs after a reboot"
    old_boot = boot_id(lab, "node01")
    session = subprocess.Popen(["ssh", "-F", str(lab.ssh_config), "node01", "sleep 60; echo survived"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lab.wait_for(lambda: "sleep 60" in ok(lab, "node01", "ps -eo args"), timeout=10, message="the session's sleep")
    ok(lab, "node01", "sudo systemctl reboot")
    out, err = session.communicate(timeout=15)
    assert (session.returncode, out) == (255, ""), err
    lab.wait_for(lambda: boot_id(lab, "node01") != old_boot, timeout=15, message="node01's new boot")
    lab.wait_for(lambda: lab.machine("node01")["sshd"] == "listening", timeout=15, message="sshd after the boot")
    assert ok(lab, "node01", "uname -r; cat /proc/sys/kernel/random/boot_id; ls /var/run/ | grep reboot || true") == \
        f"5.4.0-1040-gcp\n{boot_id(lab, 'node01')}\n"
    assert node(lab, "node01")["status"]["nodeInfo"]["kernelVersion"] == "5.4.0-1040-gcp"
    assert ok(lab, "node01", "systemctl is-active kubelet") == "active\n"
    assert lab.machine("node01")["boots"] == 2
    assert ready(lab, "node01")


def test_a_reboot_longer_than_the_grace_period_shows_not_ready_then_ready(lab: LabProcess) -> None:
    old_boot = boot_id(lab, "node01")
    down = lab.reboot("node01", boot_seconds=80)  # 4 s at this time scale: longer than the 2 s grace
    assert down["power"] == "rebooting"
    refused = lab.ssh("node01", "true")
    assert refused.returncode == 255 and "Connection refused" in refused.stderr
    lab.wait_for(lambda: not ready(lab, "node01"), timeout=10, message="node01 NotReady while it reboots")
    lab.wait_for(lambda: ready(lab, "node01"), timeout=15, message="node01 Ready after its boot")
    assert boot_id(lab, "node01") != old_boot
    assert ok(lab, "node01", "hostname") == "node01\n", "same host key: StrictHostKeyChecking lets us in"


def test_a_machine_powered_off_stays_off_until_powered_on(lab: LabProcess) -> None:
    old_boot = boot_id(lab, "node01")
    assert lab.power("node01", False)["power"] == "off"
    refused = lab.ssh("node01", "true")
    assert refused.returncode == 255 and "Connection refused" in refused.stderr
    lab.wait_for(lambda: not ready(lab, "node01"), timeout=GRACE + 10, message="node01 NotReady")
    assert lab.power("node01", True)["power"] == "on"
    lab.wait_for(lambda: ready(lab, "node01"), timeout=10, message="node01 Ready")
    assert boot_id(lab, "node01") != old_boot
    assert ok(lab, "node01", "hostname") == "node01\n"


def test_poweroff_from_inside_turns_the_machine_off(lab: LabProcess) -> None:
    ok(lab, "node01", "sudo poweroff")
    lab.wait_for(lambda: lab.machine("node01")["power"] == "off", timeout=10, message="node01 off")
    assert lab.ssh("node01", "true").returncode == 255


# -- faults ----------------------------------------------------------------------------------------


def test_ssh_refused(lab: LabProcess) -> None:
    lab.set_machine_faults("node01", {"sshRefused": True})
    refused = lab.ssh("node01", "true")
    assert refused.returncode == 255 and "Connection refused" in refused.stderr
    assert ready(lab, "node01"), "only sshd is down"
    lab.set_machine_faults("node01", {})
    assert ok(lab, "node01", "hostname") == "node01\n"


def test_sessions_dropped_after_n_seconds(lab: LabProcess) -> None:
    lab.set_machine_faults("node01", {"dropAfterSeconds": 1})
    assert ok(lab, "node01", "echo quick") == "quick\n"
    started = time.monotonic()
    dropped = lab.ssh("node01", "sleep 20; echo finished", timeout=15)
    assert dropped.returncode == 255 and "finished" not in dropped.stdout
    assert 1 <= time.monotonic() - started < 8
    lab.set_machine_faults("node01", {})
    assert ok(lab, "node01", "sleep 1.5; echo finished") == "finished\n"


def test_command_latency(lab: LabProcess) -> None:
    started = time.monotonic()
    ok(lab, "node01", "true")
    baseline = time.monotonic() - started
    lab.set_machine_faults("node01", {"latencyMs": 1500})
    started = time.monotonic()
    assert ok(lab, "node01", "echo late") == "late\n"
    assert time.monotonic() - started >= 1.5
    assert lab.machine("node01")["faults"]["latencyMs"] == 1500
    lab.set_machine_faults("node01", {})
    started = time.monotonic()
    ok(lab, "node01", "true")
    assert time.monotonic() - started < baseline + 1.0


def test_a_program_fails_with_the_exit_code_and_stderr_given(lab: LabProcess) -> None:
    lock = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n"
    lab.set_machine_faults("node01", {"failures": {"apt-get": {"exitCode": 100, "stderr": lock},
                                                   "sha256sum": {"exitCode": 2, "stderr": "sha256sum: boom\n"}}})
    failed = lab.ssh("node01", "sudo apt-get update")
    assert (failed.returncode, failed.stderr) == (100, lock)
    failed = lab.ssh("node01", "sha256sum /etc/hostname")
    assert (failed.returncode, failed.stderr) == (2, "sha256sum: boom\n")
    assert lab.ssh("controlplane", "sudo apt-get update -qq").returncode == 0, "other machines are fine"
    lab.set_machine_faults("node01", {})
    assert ok(lab, "node01", "sha256sum /etc/hostname").endswith("  /etc/hostname\n")
    assert lab.ssh("node01", "sudo apt-get update -qq").returncode == 0


def test_a_changed_host_key_stops_the_client_before_any_command(lab: LabProcess) -> None:
    machine = lab.set_machine_faults("node01", {"hostKeyChanged": True})
    assert machine["hostKeyChanged"] is True
    described = lab.machine("node01")
    assert described["presentedHostKey"]["fingerprint"] != described["hostKey"]["fingerprint"]
    refused = lab.ssh("node01", "touch /tmp/ran")
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    assert described["presentedHostKey"]["fingerprint"] in refused.stderr
    lab.set_machine_faults("node01", {})
    assert lab.ssh("node01", "test -e /tmp/ran").returncode == 1, "the refused command never ran"


@pytest.mark.parametrize(("faults", "message"), [
    ({"sshRefused": "yes"}, "sshRefused must be true or false"),
    ({"dropAfterSeconds": -1}, "dropAfterSeconds must be a number of seconds >= 0, or null"),
    ({"latencyMs": "slow"}, "latencyMs must be a number >= 0"),
    ({"failures": {"apt-get": {"exitCode": 0}}}, "failures.apt-get.exitCode must be between 1 and 255"),
    ({"failures": {"../bin/sh": {}}}, "failures: '../bin/sh' is not a program name"),
    ({"frob": 1}, "unknown machine faults frob; known: sshRefused, dropAfterSeconds, latencyMs, failures, "
                  "hostKeyChanged, kubeletFails, bootFails"),
], ids=["refused-not-bool", "negative-drop", "latency-text", "exit-zero", "path-as-program", "unknown"])
def test_bad_fault_input_is_rejected_with_a_clear_message(lab: LabProcess, faults: dict, message: str) -> None:
    code, body = lab.request("PUT", "/_lab/machines/node01/faults", faults)
    assert (code, body["message"]) == (400, message)
    assert lab.machine("node01")["faults"]["sshRefused"] is False


def test_unknown_machines_are_404(lab: LabProcess) -> None:
    code, body = lab.request("POST", "/_lab/machines/node99/power", {"on": False})
    assert (code, body["message"]) == (404, 'machines "node99" not found')
    with pytest.raises(LabError, match="400"):
        lab.power("node01", "off")  # type: ignore[arg-type]


# -- reset -----------------------------------------------------------------------------------------


def test_a_reset_gives_back_the_scenarios_machines(lab: LabProcess) -> None:
    ok(lab, "node01", "sudo apt-mark unhold kubeadm && sudo touch /etc/kubernetes/extra")
    lab.set_machine_faults("controlplane", {"latencyMs": 10})
    untouched = lab.machine("controlplane")["bootId"]
    lab.reset()
    assert ok(lab, "node01", "apt-mark showhold; ls /etc/kubernetes") == \
        "kubeadm\nkubectl\nkubelet\nkubelet.conf\nmanifests\npki\n"
    assert lab.machine("controlplane")["faults"]["latencyMs"] == 0
    assert lab.machine("controlplane")["bootId"] != untouched
    assert node(lab, "node01")["status"]["nodeInfo"]["bootID"] == lab.machine("node01")["bootId"]
