"""Whom the SSH layer trusts and how it logs in, against a real sshd: unknown and changed host keys are
refused before any command (and the advice in the message works), wrong users and keys are refused
clearly, encrypted keys open with the passphrase from the environment, the agent's keys work, and
a jump host forwards the connection."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.nodes import AuthFailed, ChangedHostKey, JumpHost, SshSetupError, UnknownHostKey
from tests.sshd_support import make_key, ssh_keygen_fingerprint, wait_until, write_known_hosts

pytest_plugins = ["tests.ssh_fixtures"]


def advice(message: str) -> str:
    """The shell command a refusal tells the operator to run (after "add it: " or "replace the entry: ")."""
    for lead in ("add it: ", "replace the entry: "):
        if lead in message:
            return message.split(lead, 1)[1]
    raise AssertionError(f"no advice in: {message}")


def test_an_unknown_host_key_is_refused_before_any_command(make_shell, sshd, known_hosts, tmp_path, audit):
    known_hosts.write_text("")
    marker = tmp_path / "ran"
    logins = sshd.accepted_logins()
    shell = make_shell()
    with pytest.raises(UnknownHostKey) as caught:
        shell.run("node01", ["touch", str(marker)], address=sshd.address)
    fingerprint = ssh_keygen_fingerprint(Path(f"{sshd.host_key}.pub"))
    assert str(caught.value) == (
        f"node01 ({sshd.address}:{sshd.port}): unknown host key: the node offered ssh-ed25519 {fingerprint} and "
        f"known_hosts {known_hosts} has no key for [{sshd.address}]:{sshd.port}. Nothing was run. If that is the "
        "node's key (on the node: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), add it: "
        f"ssh-keyscan -p {sshd.port} -t ed25519 {sshd.address} >> {known_hosts}")
    assert caught.value.fingerprint == fingerprint and caught.value.key_type == "ssh-ed25519"
    assert not marker.exists()
    assert sshd.accepted_logins() == logins  # not even a login: the key is checked before authentication
    assert known_hosts.read_text() == ""  # never added by the bot
    assert audit.records[-1]["outcome"] == "not run (host key)"
    assert audit.records[-1]["command"] == f"touch {marker}"
    # The advice works as given, and the file is read again at the next connection: no restart.
    subprocess.run(["sh", "-c", advice(str(caught.value))], check=True, capture_output=True, timeout=30)
    shell.run("node01", ["touch", str(marker)], address=sshd.address)
    assert marker.exists()


def test_a_changed_host_key_is_refused_naming_both_fingerprints(make_shell, new_sshd, known_hosts, tmp_path):
    server = new_sshd()
    shell = make_shell(port=server.port)
    shell.run("node01", ["true"], address=server.address)
    old = server.host_key_fingerprint
    server.new_host_key()  # reinstalled, or someone else answering at its address
    server.restart()
    new = server.host_key_fingerprint
    marker = tmp_path / "ran"
    with pytest.raises(ChangedHostKey) as caught:
        shell.run("node01", ["touch", str(marker)], address=server.address)
    where = f"[{server.address}]:{server.port}"
    assert str(caught.value) == (
        f"node01 ({server.address}:{server.port}): HOST KEY CHANGED: the node offered ssh-ed25519 {new} but "
        f"known_hosts {known_hosts} has ssh-ed25519 {old} for {where}. Nothing was run. Someone may be intercepting "
        "the connection, or the node was reinstalled: check the key on the node (ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub); only if it is the node's, replace the entry: "
        f"ssh-keygen -R '{where}' -f {known_hosts} && ssh-keyscan -p {server.port} -t ed25519 {server.address} "
        f">> {known_hosts}")
    assert (caught.value.fingerprint, caught.value.expected_fingerprint) == (new, old)
    assert not marker.exists()
    assert server.accepted_logins() == 1  # the first run's, before the change
    subprocess.run(["sh", "-c", advice(str(caught.value))], check=True, capture_output=True, timeout=30)
    shell.run("node01", ["touch", str(marker)], address=server.address)
    assert marker.exists()


def test_hashed_known_hosts_entries_are_understood(make_shell, sshd, known_hosts):
    scanned = subprocess.run(["ssh-keyscan", "-H", "-p", str(sshd.port), "-t", "ed25519", sshd.address],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    assert scanned.startswith("|1|")
    known_hosts.write_text(scanned)
    assert make_shell().run("node01", ["echo", "ok"], address=sshd.address).stdout == "ok\n"


def test_a_key_for_another_port_or_address_is_not_this_nodes_key(make_shell, sshd, known_hosts):
    line = sshd.known_hosts_line()
    known_hosts.write_text(line.replace(f"[{sshd.address}]:{sshd.port}", f"[{sshd.address}]:{sshd.port + 1}")
                           + line.replace(f"[{sshd.address}]:{sshd.port}", sshd.address))
    with pytest.raises(UnknownHostKey):
        make_shell().run("node01", ["true"], address=sshd.address)


def test_an_unreadable_known_hosts_says_which_file(make_shell, sshd, known_hosts, audit):
    known_hosts.write_text("node01 ssh-ed25519 not-base64!!\n")
    with pytest.raises(SshSetupError, match=f"ssh.known_hosts {known_hosts}: a line is not a host key entry"):
        make_shell().run("node01", ["true"], address=sshd.address)
    known_hosts.unlink()
    with pytest.raises(SshSetupError) as caught:
        make_shell().run("node01", ["true"], address=sshd.address)
    assert str(caught.value).startswith(f"ssh.known_hosts {known_hosts}: file not found")
    assert audit.records[-1]["outcome"] == "not run (setup)"


def test_a_wrong_user_or_key_is_refused_clearly(make_shell, sshd, tmp_path, client_key, audit):
    marker = tmp_path / "ran"
    with pytest.raises(AuthFailed) as caught:
        make_shell(user="nosuchuser").run("node01", ["touch", str(marker)], address=sshd.address)
    assert str(caught.value) == (
        f"node01 ({sshd.address}:{sshd.port}): the node refused the login of user nosuchuser with key "
        f"{client_key.private} (ssh-ed25519 {client_key.fingerprint}): check that the user exists on the node and "
        "that its authorized_keys lists the bot's public key. Nothing was run.")
    assert audit.records[-1]["outcome"] == "not run (auth)"
    stranger = make_key(tmp_path, "stranger")
    with pytest.raises(AuthFailed, match=f"the node refused the login of user root with key {stranger.private} "):
        make_shell(key_file=stranger.private).run("node01", ["touch", str(marker)], address=sshd.address)
    assert not marker.exists()


def test_an_encrypted_key_opens_with_the_passphrase_from_the_environment(make_shell, sshd, tmp_path):
    key = make_key(tmp_path, "locked", passphrase="correct horse battery")
    sshd.authorize("root", key.public_text)
    shell = make_shell(key_file=key.private, passphrase_env="KM_TEST_PASSPHRASE",
                       environ={"KM_TEST_PASSPHRASE": "correct horse battery"})
    assert shell.run("node01", ["echo", "in"], address=sshd.address).stdout == "in\n"
    assert shell.preflight().endswith(f"login with key {key.private} (ssh-ed25519 {key.fingerprint})")

    with pytest.raises(SshSetupError) as caught:
        make_shell(key_file=key.private, passphrase_env="KM_TEST_PASSPHRASE",
                   environ={"KM_TEST_PASSPHRASE": "wrong staple"}).run("node01", ["true"], address=sshd.address)
    assert str(caught.value) == f"ssh.key_file {key.private}: the passphrase in $KM_TEST_PASSPHRASE does not open it"
    with pytest.raises(SshSetupError) as caught:
        make_shell(key_file=key.private, passphrase_env="KM_TEST_PASSPHRASE").run(
            "node01", ["true"], address=sshd.address)
    assert str(caught.value) == ("ssh.passphrase_env: the environment variable KM_TEST_PASSPHRASE is not set (it "
                                 f"holds the passphrase of ssh.key_file {key.private})")
    with pytest.raises(SshSetupError) as caught:
        make_shell(key_file=key.private).run("node01", ["true"], address=sshd.address)
    assert "the key is encrypted: name the environment variable that holds its passphrase in ssh.passphrase_env" \
        in str(caught.value)
    with pytest.raises(SshSetupError, match="not a private key paramiko can read"):
        make_shell(key_file=Path(f"{key.private}.pub")).run("node01", ["true"], address=sshd.address)


def test_the_agents_keys(make_shell, sshd, tmp_path, monkeypatch):
    key = make_key(tmp_path, "in_agent", passphrase="agent-only")
    sshd.authorize("root", key.public_text)
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until(socket_path.exists, 10, "ssh-agent's socket")
        add = subprocess.run(["ssh-add", str(key.private)], env={"SSH_AUTH_SOCK": str(socket_path),
                             "SSH_ASKPASS": str(_askpass(tmp_path, "agent-only")), "SSH_ASKPASS_REQUIRE": "force",
                             "DISPLAY": "none"}, capture_output=True, text=True, timeout=30)
        assert add.returncode == 0, add.stderr
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        shell = make_shell(key_file=None, agent=True)
        assert shell.run("node01", ["echo", "via agent"], address=sshd.address).stdout == "via agent\n"
        monkeypatch.delenv("SSH_AUTH_SOCK")
        with pytest.raises(AuthFailed, match="no key to log in with: the SSH agent offered none"):
            make_shell(key_file=None, agent=True).run("node01", ["true"], address=sshd.address)
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def _askpass(directory: Path, passphrase: str) -> Path:
    script = directory / "askpass"
    script.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    script.chmod(0o700)
    return script


def test_through_a_jump_host(make_shell, new_sshd, known_hosts, client_key, audit):
    jump = new_sshd()
    node = new_sshd()
    shell = make_shell(port=node.port, jump_host=JumpHost(jump.address, jump.port, "root"))
    first = shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=node.address).stdout
    second = shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=node.address).stdout
    assert first == second  # one forwarded connection for both
    # The jump host's sshd opened the node's connection for us, once.
    forwarded = f"server_request_direct_tcpip: originator 127.0.0.1 port 0, target {node.address} port {node.port}"
    assert jump.log.read_text().count(forwarded) == 1
    assert jump.accepted_logins() == 1 and node.accepted_logins() == 1
    # The jump host's key is checked like a node's: unknown, the refusal names it.
    write_known_hosts(known_hosts, node)
    with pytest.raises(UnknownHostKey, match=rf"^jump host {jump.address} \({jump.address}:{jump.port}\): unknown "):
        make_shell(port=node.port, jump_host=JumpHost(jump.address, jump.port, "root")).run(
            "node01", ["true"], address=node.address)


def test_a_jump_host_that_cannot_reach_the_node(make_shell, new_sshd):
    jump = new_sshd()
    shell = make_shell(port=1, jump_host=JumpHost(jump.address, jump.port, "root"))
    with pytest.raises(Exception) as caught:
        shell.run("node01", ["true"], address="127.0.0.1")
    assert str(caught.value).startswith(f"jump host {jump.address} ({jump.address}:{jump.port}) could not connect to "
                                        "127.0.0.1:1: ")
    assert str(caught.value).endswith("Nothing was run.")
