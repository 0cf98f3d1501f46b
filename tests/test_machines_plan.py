"""The machines' plan, without starting any: which nodes are machines and what each has
(lab/machines/spec.py, layout.py), their addresses and SSH files, static pod manifests and
their mirror pods, and the checks on bad scenario and fault input."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from lab import scenario
from lab.machines import addresses, layout, manifests, sshfiles
from lab.machines import spec as machine_spec
from lab.machines.faults import MachineFaults
from lab.machines.keys import generate
from lab.machines.kubelet import static_pod_changes
from lab.machines.programs.repos import Repo
from lab.server import Lab


def specs(name: str) -> list[machine_spec.MachineSpec]:
    scn = scenario.load(name)
    return machine_spec.build(scn.machines, scn.nodes, scn.version,
                              {n["name"]: f"127.9.9.{i + 1}" for i, n in enumerate(scn.nodes)})


# -- which nodes are machines ------------------------------------------------------------------------


def test_every_node_of_a_yaml_scenario_is_a_machine_with_the_repo_of_its_era() -> None:
    seeds = specs("seeds-os-upgrade")
    assert [(s.name, s.control_plane, s.repo) for s in seeds] == [
        ("controlplane", True, Repo("legacy")), ("node01", False, Repo("legacy"))]
    assert seeds[1].updates["linux-image-gcp"] == {"version": "5.4.0.1040", "kernel": "5.4.0-1040-gcp",
                                                   "reboot": True}
    assert seeds[1].updates["libc6"] == {"version": "2.27-3ubuntu1.6", "reboot": True}
    assert seeds[1].updates["openssl"] == {"version": "1.1.1-1ubuntu2.1~18.04.23"}
    assert {s.repo for s in specs("three-workers")} == {Repo("pkgs", "1.27")}


def test_large_scenarios_have_machines_only_when_asked() -> None:
    assert specs("large:20:10") == []
    chosen = specs("large:20:10:5")
    assert [s.name for s in chosen] == ["controlplane", "node0001", "node0002", "node0003", "node0004"]
    with pytest.raises(scenario.ScenarioError, match="0 <= MACHINES <= NODES"):
        scenario.load("large:3:1:4")


@pytest.mark.parametrize(("machines", "nodes", "message"), [
    ({"frob": 1}, [{"name": "a"}], "machines: unknown keys frob; known: enabled, osImage"),
    ({}, [{"name": "a", "machine": {"enabled": False}}], r"nodes\[a\].machine: unknown keys enabled"),
    ({"osImage": "Windows"}, [{"name": "a"}], "a: unknown osImage 'Windows'; known: Ubuntu 18.04.5 LTS"),
    ({"packageRepo": "yum"}, [{"name": "a"}], "packageRepo must be legacy"),
    ({"updates": [{"package": "libc6"}]}, [{"name": "a"}], "each update needs package and version"),
    ({"packageRepo": "pkgs"}, [{"name": "a"}], "the pkgs repository offers no v1.19 packages"),
], ids=["unknown-key", "node-enabled", "os-image", "repo-kind", "update-version", "repo-minor"])
def test_bad_machine_settings_are_refused_with_a_clear_message(machines: dict, nodes: list, message: str,
                                                               tmp_path: Path) -> None:
    with pytest.raises(machine_spec.MachineSpecError, match=message):
        machine_spec.build(machines, nodes, "v1.19.0", {"a": "127.9.9.1"})
    scenario_file = tmp_path / "custom.yaml"
    scenario_file.write_text(yaml.safe_dump({"version": "v1.19.0", "machines": machines, "nodes": nodes}))
    with pytest.raises(scenario.ScenarioError, match=message):  # the lab says so even without machines
        Lab(str(scenario_file))


def test_a_node_without_machine_keeps_the_old_address_scheme() -> None:
    lab = Lab("seeds-upgrade")
    addresses_seen = [n["status"]["addresses"][0]["address"] for n in lab.store.items("nodes")]
    assert sorted(addresses_seen) == ["127.0.1.1", "127.0.1.2"]
    lab.cluster.stop()


# -- addresses and ssh files ------------------------------------------------------------------------


def test_two_labs_get_different_address_blocks_and_release_them() -> None:
    first, second = addresses.allocate(3), addresses.allocate(3)
    try:
        assert {first.address(i) for i in range(3)}.isdisjoint({second.address(i) for i in range(3)})
        assert first.address(0).startswith("127.") and first.address(0).endswith(".1")
        assert not first.address(0).startswith("127.0.")
    finally:
        first.release()
        second.release()
    # Exactly these blocks' files: another lab running meanwhile may hold 127.158.90 while this one had 127.158.9.
    assert not any((addresses.LOCK_DIR / lab.address(0).rsplit(".", 1)[0]).exists() for lab in (first, second))


def test_an_address_whose_port_22_is_taken_gets_another_port() -> None:
    block = addresses.allocate(1)
    try:
        address = block.address(0)
        assert addresses.ssh_port(address) == 22
        with socket.socket() as taken:
            taken.bind((address, 22))
            taken.listen()
            assert (address, 22) in addresses.listeners()
            port = addresses.ssh_port(address)
        assert port != 22 and port > 1024
    finally:
        block.release()


def test_known_hosts_and_ssh_config_name_a_port_other_than_22() -> None:
    key = generate("root@node01")
    targets = [sshfiles.Target("node01", "127.9.9.2", 22, key), sshfiles.Target("node02", "127.9.9.3", 40022, key)]
    assert sshfiles.known_hosts(targets) == f"127.9.9.2 {key.key_text()}\n[127.9.9.3]:40022 {key.key_text()}\n"
    config = sshfiles.ssh_config(targets, sshfiles.SshFiles.beside(Path("/lab/kubeconfig")), "demo")
    assert "Host node02\n  HostName 127.9.9.3\n  Port 40022\n" in config
    assert "# Port 22 on 127.9.9.3 is taken" in config
    assert key.fingerprint().startswith("SHA256:") and len(key.fingerprint()) == 50


# -- the machine's files ------------------------------------------------------------------------------


def test_a_machine_has_the_host_system_users_and_kubemaint_with_passwordless_sudo() -> None:
    world = layout.World(python="/usr/bin/python3", source="/src", api_server="https://127.0.0.1:1", token="t",
                         ca_pem=b"", cluster=None, login_key=generate("me"),  # type: ignore[arg-type]
                         host_passwd="root:x:0:0::/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n"
                                     "alice:x:1000:1000::/home/alice:/bin/bash\n",
                         host_group="root:x:0:\nshadow:x:42:\nalice:x:1000:\n")
    files = {e.path: e for e in layout.users(world)}
    assert files["/etc/passwd"].content.decode().splitlines() == [
        "root:x:0:0::/root:/bin/bash", "sshd:x:101:65534::/run/sshd:/usr/sbin/nologin",
        "kubemaint:x:1000:1000:kubemaint:/home/kubemaint:/bin/bash"]
    assert files["/etc/shadow"].gid == 42 and b"kubemaint:*:" in files["/etc/shadow"].content
    assert files["/etc/sudoers.d/kubemaint"].content == b"kubemaint ALL=(ALL) NOPASSWD:ALL\n"
    assert files["/etc/sudoers.d/kubemaint"].mode == 0o440
    assert files["/home/kubemaint/.ssh/authorized_keys"].uid == 1000
    assert files["/etc/sudoers.d"].opaque and files["/home"].opaque


def test_the_sshd_config_listens_on_the_machines_address_and_forces_the_session_wrapper() -> None:
    seeds = specs("seeds-os-upgrade")[1]
    config = layout.sshd_config(seeds, 22)
    assert "ListenAddress 127.9.9.2:22\n" in config
    assert f"ForceCommand {layout.SESSION}\n" in config
    assert "PasswordAuthentication no\n" in config


# -- static pods ------------------------------------------------------------------------------------


def node(name: str = "controlplane", address: str = "127.9.9.1") -> dict:
    from lab import objects as o

    return o.node(name, version="v1.19.0", address=address, control_plane=True)


def test_a_manifest_read_back_from_its_file_has_the_same_hash() -> None:
    for manifest in manifests.static_pod_manifests("controlplane", "127.9.9.1", "v1.19.0").values():
        again = manifests.parse_manifest(manifests.render(manifest))
        assert again == manifest
        assert manifests.config_hash(again, "controlplane") == manifests.config_hash(manifest, "controlplane")


def test_the_kubeadm_manifests_carry_versions_in_their_image_tags() -> None:
    found = manifests.static_pod_manifests("cp", "127.9.9.1", "v1.27.3")
    images = {name: m["spec"]["containers"][0]["image"] for name, m in found.items()}
    assert images == {"etcd.yaml": "registry.k8s.io/etcd:3.5.7-0",
                      "kube-apiserver.yaml": "registry.k8s.io/kube-apiserver:v1.27.3",
                      "kube-controller-manager.yaml": "registry.k8s.io/kube-controller-manager:v1.27.3",
                      "kube-scheduler.yaml": "registry.k8s.io/kube-scheduler:v1.27.3"}
    etcd = found["etcd.yaml"]
    assert {"hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}, "name": "etcd-data"} in \
        etcd["spec"]["volumes"]


def test_static_pod_changes_follow_the_manifests() -> None:
    cp = node()
    wanted = manifests.static_pod_manifests("controlplane", "127.9.9.1", "v1.19.0")
    current = [manifests.mirror_pod(m, cp) for m in wanted.values()]
    assert static_pod_changes(current, wanted, cp) == ([], [])
    changed = {**wanted, "kube-apiserver.yaml": manifests.parse_manifest(
        manifests.render(wanted["kube-apiserver.yaml"]).replace("v1.19.0", "v1.20.0"))}
    delete, create = static_pod_changes(current, changed, cp)
    assert [p["metadata"]["name"] for p in delete] == [p["metadata"]["name"] for p in create] == \
        ["kube-apiserver-controlplane"]
    assert create[0]["spec"]["containers"][0]["image"] == "k8s.gcr.io/kube-apiserver:v1.20.0"
    delete, create = static_pod_changes(current, {}, cp)
    assert len(delete) == 4 and create == []


@pytest.mark.parametrize(("text", "reason"), [
    ("kind: Pod\nmetadata: {name: x}\n", "the pod has no containers"),
    ("kind: Deployment\n", "not a Pod"), ("{", "invalid YAML"), ("kind: Pod\nspec: {}\n", "no metadata.name"),
])
def test_the_kubelet_skips_a_bad_manifest_and_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        manifests.parse_manifest(text)


def test_machine_faults_round_trip_and_default_to_none() -> None:
    faults = MachineFaults.from_dict({"latencyMs": 200, "failures": {"apt-get": {"exitCode": 100}}})
    assert faults.as_dict() == {"sshRefused": False, "dropAfterSeconds": None, "latencyMs": 200.0,
                                "failures": {"apt-get": {"exitCode": 100, "stderr": "", "stdout": ""}},
                                "hostKeyChanged": False}
    assert faults.any and not MachineFaults.from_dict({}).any
