"""sudo for a bot that logs in as an ordinary user: real local users created for the module (one with
passwordless sudo, one without), removed afterwards."""

from __future__ import annotations

import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.nodes import CommandDeadline, SudoRefused
from bot.nodes.check import check_nodes, report
from tests.sshd_support import LocalUser, PrivateSshd, wait_until

pytest_plugins = ["tests.ssh_fixtures"]


@pytest.fixture(scope="module")
def sudoer(ssh_dir: Path, sshd: PrivateSshd, client_key) -> Iterator[LocalUser]:
    with LocalUser(sudo=True) as user:
        sshd.authorize(user.name, client_key.public_text)
        yield user


@pytest.fixture(scope="module")
def plain_user(ssh_dir: Path, sshd: PrivateSshd, client_key) -> Iterator[LocalUser]:
    with LocalUser(sudo=False) as user:
        sshd.authorize(user.name, client_key.public_text)
        yield user


def test_sudo_runs_as_root_and_only_when_asked(make_shell, sshd, sudoer, audit):
    shell = make_shell(user=sudoer.name)
    uid = pwd.getpwnam(sudoer.name).pw_uid
    assert shell.run("node01", ["id", "-u"], address=sshd.address).stdout == f"{uid}\n"
    assert shell.run("node01", ["id", "-u"], address=sshd.address, sudo=True).stdout == "0\n"
    assert [r["command"] for r in audit.records] == ["id -u", "sudo -n id -u"]


def test_root_needs_no_sudo(make_shell, sshd, audit):
    assert make_shell().run("node01", ["id", "-u"], address=sshd.address, sudo=True).stdout == "0\n"
    assert audit.records[-1]["command"] == "id -u"


def test_a_user_without_sudo_rights_is_told_what_to_fix(make_shell, sshd, plain_user, tmp_path, audit):
    marker = tmp_path / "ran"
    with pytest.raises(SudoRefused) as caught:
        make_shell(user=plain_user.name).run("node01", ["touch", str(marker)], address=sshd.address, sudo=True)
    message = str(caught.value)
    assert message.startswith(f"node01: sudo refused to run `sudo -n touch {marker}` for {plain_user.name}: sudo: ")
    assert message.endswith(f"The bot runs `sudo -n` (it cannot type a password): give {plain_user.name} "
                            "passwordless sudo (NOPASSWD) for this command on the node.")
    assert not marker.exists()
    assert audit.records[-1]["outcome"] == "failed"


def test_the_deadline_stops_a_program_run_with_sudo(make_shell, sshd, sudoer):
    started = time.monotonic()
    with pytest.raises(CommandDeadline, match="the node stopped it"):
        make_shell(user=sudoer.name).run("node01", ["sleep", "618.25"], address=sshd.address, sudo=True, deadline=1.5)
    assert time.monotonic() - started < 4

    def sleeping() -> bool:
        return any(b"618.25" in path.read_bytes() for path in Path("/proc").glob("[0-9]*/cmdline")
                   if _readable(path))

    wait_until(lambda: not sleeping(), 10, "the root-owned sleep to be stopped through sudo")


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def test_node_checks_report_each_stage(make_shell, sshd, sudoer, plain_user, new_sshd, known_hosts):
    untrusted = new_sshd(trusted=False, port=sshd.port)  # the shell has one port for all nodes
    fine = make_shell(user=sudoer.name, addresses={"node01": sshd.address, "node02": untrusted.address})
    checks = {check.node: check for check in check_nodes(fine, {"node01": None, "node02": None, "node03": None})}
    assert checks["node01"].ok
    assert checks["node01"].summary == (f"host key ssh-ed25519 {sshd.host_key_fingerprint}, logged in as "
                                        f"{sudoer.name}, sudo -n works")
    assert checks["node02"].stage == "host key" and "unknown host key" in checks["node02"].problem
    assert checks["node03"].stage == "address"
    lines = report(list(checks.values()))
    assert lines[0] == f"  node01 {sshd.address}: OK: {checks['node01'].summary}"
    assert lines[1].startswith(f"  node02 {untrusted.address}: host key: node02 ({untrusted.address}:")
    assert lines[2].startswith("  node03 -: address: node03: no address to reach it at")

    no_sudo = make_shell(user=plain_user.name, addresses={"node01": sshd.address})
    [check] = check_nodes(no_sudo, {"node01": None})
    assert check.stage == "sudo" and check.problem.startswith("node01: sudo refused to run `sudo -n true`")
    nobody = make_shell(user="nosuchuser", addresses={"node01": sshd.address})
    [check] = check_nodes(nobody, {"node01": None})
    assert check.stage == "auth" and "refused the login of user nosuchuser" in check.problem
