"""`kubemaint check-config` and SSH: the bot's own side always, and with `--nodes` every node of the
cluster (the lab's API gives their InternalIPs) reached once and reported on its own line: one fine,
one with an unknown host key, one refusing the login, one where nothing listens."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bot.engine.audit import read_audit
from tests.sshd_support import KeyPair, PrivateSshd, make_key, write_known_hosts

pytestmark = pytest.mark.runs_long(33)

pytest_plugins = ["tests.redis_fixtures"]


def kubemaint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key(tmp_path_factory.mktemp("ssh-key"), "bot_key")


@pytest.fixture(scope="module")
def machines(key: KeyPair) -> Iterator[dict[str, PrivateSshd]]:
    """Three sshds on one port: one trusting the bot, one whose host key nobody listed, one that does not
    know the bot's key."""
    fine = PrivateSshd()
    fine.authorize("root", key.public_text)
    servers = {"fine": fine, "stranger": PrivateSshd(port=fine.port), "locked": PrivateSshd(port=fine.port)}
    servers["stranger"].authorize("root", key.public_text)
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.close()


@pytest.fixture
def config(tmp_path: Path, workers_lab, redis_server, key: KeyPair, machines: dict[str, PrivateSshd]) -> Path:
    known_hosts = write_known_hosts(tmp_path / "known_hosts", machines["fine"], machines["locked"])
    path = tmp_path / "kubemaint.yaml"
    path.write_text(f"""
slack: {{bot_token: xoxb-1, app_token: xapp-1}}
roles: {{approvers: [U0BOB]}}
redis_url: {redis_server.url}
kubeconfig: {workers_lab.kubeconfig}
ssh:
  user: root
  port: {machines["fine"].port}
  known_hosts: {known_hosts}
  key_file: {key.private}
  connect_timeout_seconds: 5
  addresses:
    controlplane: {machines["fine"].address}
    node01: {machines["stranger"].address}
    node02: {machines["locked"].address}
""")
    return path


def test_every_node_is_reached_and_each_problem_reported_on_its_line(config, machines, workers_lab, key,
                                                                   redis_server):
    fine, stranger, locked = machines["fine"], machines["stranger"], machines["locked"]
    port = fine.port
    node03 = workers_lab.get("/api/v1/nodes/node03")
    internal_ip = next(a["address"] for a in node03["status"]["addresses"] if a["type"] == "InternalIP")
    result = kubemaint("check-config", "--config", str(config), "--nodes")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert f"ssh: user root, port {port}, known_hosts" in result.stdout
    assert lines[-6:] == [
        "nodes over SSH (4):",
        f"  controlplane {fine.address}: OK: host key ssh-ed25519 {fine.host_key_fingerprint}, logged in as root "
        "(root: no sudo needed)",
        f"  node01 {stranger.address}: host key: node01 ({stranger.address}:{port}): unknown host key: the node "
        f"offered ssh-ed25519 {stranger.host_key_fingerprint} and known_hosts {config.parent / 'known_hosts'} has no "
        f"key for [{stranger.address}]:{port}. Nothing was run. If that is the node's key (on the node: ssh-keygen "
        f"-lf /etc/ssh/ssh_host_ed25519_key.pub), add it: ssh-keyscan -p {port} -t ed25519 {stranger.address} >> "
        f"{config.parent / 'known_hosts'}",
        f"  node02 {locked.address}: auth: node02 ({locked.address}:{port}): the node refused the login of user root "
        f"with key {key.private} (ssh-ed25519 {key.fingerprint}): check that the user exists on the node and that "
        "its authorized_keys lists the bot's public key. Nothing was run.",
        f"  node03 {internal_ip}: connect: node03 ({internal_ip}:{port}): connection refused: is sshd running and "
        f"listening on port {port}? Nothing was run.",
        "3 of 4 nodes have problems",
    ]
    audited = [entry for entry in read_audit(Redis.from_url(redis_server.url), 600) if entry["event"] == "node.command"]
    assert {entry["node"] for entry in audited} == {"controlplane", "node01", "node02", "node03"}
    assert {entry["requester"] for entry in audited} == {"check-config"}


def test_named_nodes_only(config, machines):
    result = kubemaint("check-config", "--config", str(config), "--nodes", "controlplane")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "all 1 nodes OK"
    stranger = kubemaint("check-config", "--config", str(config), "--nodes", "controlplane,node09")
    assert stranger.returncode == 1
    assert "  node09 -: address: not a node of the cluster, and ssh.addresses has no entry for it" in stranger.stdout
    bad = kubemaint("check-config", "--config", str(config), "--nodes", "Node01")
    assert bad.returncode == 1 and '--nodes: "Node01" is not a valid node name' in bad.stdout
    assert "Traceback" not in stranger.stderr + bad.stderr


def test_without_nodes_only_the_bots_own_side_is_checked(config, machines, key):
    result = kubemaint("check-config", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"ssh: user root, port {machines['fine'].port}, known_hosts {config.parent / 'known_hosts'} (2 hosts), "
        f"login with key {key.private} (ssh-ed25519 {key.fingerprint})")
    (config.parent / "known_hosts").unlink()
    missing = kubemaint("check-config", "--config", str(config), "--nodes")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stdout.splitlines()[-1] == (f"ssh: ssh.known_hosts {config.parent / 'known_hosts'}: file not found "
                                               "(it lists the nodes' host keys; see docs/configuration.md)")


def test_nodes_without_an_ssh_section(tmp_path):
    config = tmp_path / "kubemaint.yaml"
    config.write_text("slack: {bot_token: xoxb-1, app_token: xapp-1}\nroles: {approvers: [U0BOB]}\n")
    result = kubemaint("check-config", "--config", str(config), "--nodes")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == ("ssh: not configured: add an ssh section to reach the nodes "
                                              "(docs/configuration.md)")
