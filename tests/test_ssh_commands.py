"""The SSH layer's commands against a real OpenSSH sshd: quoting, exit codes and stderr tails, big output
on both streams, the overall deadline (and the program stopped on the node), a session dropped
mid-command, one connection for many commands, and a new one after sshd restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bot.nodes import (
    BadCommand,
    CommandDeadline,
    CommandFailed,
    NoAddress,
    OutputTooLarge,
    SessionDropped,
    Unreachable,
)
from tests.sshd_support import wait_until

pytestmark = pytest.mark.runs_long(26)

pytest_plugins = ["tests.ssh_fixtures"]


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains `marker` (a number no other process uses)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and "pytest" not in cmdline:
                found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_output_exit_code_and_the_audit(make_shell, sshd, audit):
    shell = make_shell()
    result = shell.run("node01", ["sh", "-c", "echo out; echo err >&2"], address=sshd.address,
                       job=type("Ctx", (), {"job_id": "j-1234", "requester": "U0ALICE"})())
    assert (result.exit_code, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert result.ok and result.stdout_tail == "out" and result.stderr_tail == "err"
    [record] = audit.records
    assert record["event"] == "node.command"
    assert record["job"] == "j-1234" and record["requester"] == "U0ALICE"
    assert record["node"] == "node01" and record["address"] == sshd.address
    assert record["command"] == "sh -c 'echo out; echo err >&2'"
    assert record["exit_code"] == 0 and record["outcome"] == "ok"
    assert 0 < record["duration_s"] < 10


def test_arguments_arrive_literally_and_nothing_in_them_is_shell(make_shell, sshd, tmp_path):
    marker = tmp_path / "should-not-exist"
    tricky = [f"$(touch {marker})", f"; touch {marker}", "`id`", "'single' \"double\"", "*", "a\nb", "", "--x"]
    result = make_shell().run("node01", ["printf", "[%s]\n", *tricky], address=sshd.address)
    assert result.stdout == "".join(f"[{arg}]\n" for arg in tricky)
    assert not marker.exists()


@pytest.mark.parametrize(("argv", "problem"), [
    ("touch /tmp/x", "not a string"),
    ([], "at least the program"),
    (["touch", 5], "argument 1 of a node command is a int"),
    (["touch", "a\0b"], "NUL byte"),
    (["-rf"], "plain name"),
])
def test_bad_commands_are_refused_before_anything_is_sent(make_shell, sshd, audit, argv, problem):
    before = sshd.accepted_logins()
    shell = make_shell()
    with pytest.raises(BadCommand, match=problem):
        shell.run("node01", argv, address=sshd.address)
    with pytest.raises(BadCommand, match="deadline"):
        shell.run("node01", ["true"], address=sshd.address, deadline=0)
    with pytest.raises(BadCommand, match="not a node name"):
        shell.run("node01; reboot", ["true"], address=sshd.address)
    assert audit.records == [] and sshd.accepted_logins() == before


def test_a_failing_command_raises_with_its_last_stderr_lines(make_shell, sshd, audit):
    shell = make_shell()
    script = "for i in $(seq 1 50); do echo line$i >&2; done; exit 7"
    with pytest.raises(CommandFailed) as caught:
        shell.run("node01", ["sh", "-c", script], address=sshd.address)
    assert str(caught.value) == f"node01: `sh -c '{script}'` exited with 7: line48 | line49 | line50"
    assert caught.value.result.exit_code == 7
    assert caught.value.stderr_tail == "\n".join(f"line{i}" for i in range(31, 51))
    assert audit.records[-1]["outcome"] == "failed" and audit.records[-1]["exit_code"] == 7
    # When the exit code is the answer, the caller gets it without an exception.
    answer = shell.run("node01", ["test", "-e", "/nonexistent"], address=sshd.address, check=False)
    assert answer.exit_code == 1 and not answer.ok and audit.records[-1]["outcome"] == "exit 1"


def test_megabytes_on_both_streams_at_once_do_not_deadlock(make_shell, sshd):
    size = 8 * 1024 * 1024
    # Both writers run at the same time: a reader that drained one stream only would stall the other.
    script = (f"head -c {size} /dev/zero | tr '\\0' o & head -c {size} /dev/zero | tr '\\0' e >&2; wait; "
              "echo; echo END1; echo >&2; echo END2 >&2")
    started = time.monotonic()
    result = make_shell().run("node01", ["sh", "-c", script], address=sshd.address, deadline=60)
    assert time.monotonic() - started < 30
    assert result.stdout.count("o") == size and result.stderr.count("e") == size
    assert result.stdout_tail.endswith("END1") and result.stderr_tail.endswith("END2")
    assert len(result.stdout_tail) <= 2000


def test_a_runaway_output_is_stopped(make_shell, sshd):
    shell = make_shell()
    shell.max_output_bytes = 1024 * 1024
    with pytest.raises(OutputTooLarge, match="printed more output than the bot keeps"):
        shell.run("node01", ["sh", "-c", "exec yes 555731"], address=sshd.address)
    wait_until(lambda: not processes_with("yes 555731"), 10, "the runaway `yes` to be stopped")


def test_the_deadline_bounds_the_whole_command_and_the_node_stops_it(make_shell, sshd, audit):
    shell = make_shell()
    started = time.monotonic()
    with pytest.raises(CommandDeadline) as caught:
        shell.run("node01", ["sleep", "617.25"], address=sshd.address, deadline=1.5)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4
    assert str(caught.value) == ("node01: `sleep 617.25` did not finish within its deadline of 1.5s: the node "
                                 "stopped it (timeout exited with 124).")
    assert audit.records[-1]["outcome"] == "deadline"
    wait_until(lambda: not processes_with("sleep 617.25"), 10, "the sleep to be gone from the node")
    # The connection is still good for the next command.
    assert shell.run("node01", ["echo", "after"], address=sshd.address).stdout == "after\n"


def test_a_command_that_keeps_talking_still_hits_its_deadline(make_shell, sshd):
    """Each read returns quickly, so a per-read timeout would never fire: the deadline is for the whole."""
    started = time.monotonic()
    with pytest.raises(CommandDeadline) as caught:
        make_shell().run("node01", ["sh", "-c", "while :; do echo tick 617.5 >&2; sleep 0.1; done"],
                         address=sshd.address, deadline=1.5)
    assert time.monotonic() - started < 4
    assert "Last stderr: tick 617.5 | tick 617.5 | tick 617.5" in str(caught.value)
    wait_until(lambda: not processes_with("tick 617.5"), 10, "the loop to be gone from the node")


def test_one_connection_serves_many_commands_even_at_once(make_shell, new_sshd):
    server = new_sshd()
    shell = make_shell(port=server.port)
    ports = {shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=server.address).stdout.split()[1]
             for _ in range(5)}
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        shell.run("node01", ["sh", "-c", "sleep 0.3; echo $SSH_CONNECTION"], address=server.address).stdout))
        for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    ports |= {out.split()[1] for out in results}
    assert len(results) == 8 and len(ports) == 1  # one client port: one TCP connection
    assert server.accepted_logins() == 1


def test_a_new_connection_after_sshd_restarts(make_shell, new_sshd, audit):
    """As after a reboot: every session and the listener gone, then back with the same host key."""
    server = new_sshd()
    shell = make_shell(port=server.port)
    first = shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=server.address).stdout.split()[1]
    server.restart()
    second = shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=server.address).stdout.split()[1]
    assert first != second and server.accepted_logins() == 2
    assert [r["outcome"] for r in audit.records] == ["ok", "ok"]


def test_while_sshd_is_down_the_command_fails_without_running(make_shell, new_sshd, audit):
    server = new_sshd()
    shell = make_shell(port=server.port)
    shell.run("node01", ["true"], address=server.address)
    server.stop()
    with pytest.raises(Unreachable) as caught:
        shell.run("node01", ["true"], address=server.address)
    assert str(caught.value) == (f"node01 ({server.address}:{server.port}): connection refused: is sshd running and "
                                 f"listening on port {server.port}? Nothing was run.")
    assert audit.records[-1]["outcome"] == "not run (connect)"
    server.start()
    assert shell.run("node01", ["echo", "back"], address=server.address).stdout == "back\n"


def test_a_session_dropped_mid_command(make_shell, new_sshd, tmp_path, audit):
    server = new_sshd()
    shell = make_shell(port=server.port)
    pid_file = tmp_path / "pid"
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            shell.run("node01", ["sh", "-c", f"echo $$ > {pid_file}; echo working >&2; sleep 617.75"],
                      address=server.address, deadline=60)
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    command_pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "the command"))
    try:
        # The connection's own sshd processes (between the listener and the command), not the command.
        session = [pid for pid in server.session_pids()]
        assert session, "no sshd session process found"
        for pid in session:
            os.kill(pid, signal.SIGKILL)
        runner.join(timeout=10)
        assert not runner.is_alive()
    finally:
        kill_all(processes_with("sleep 617.75"))
        kill_all([command_pid])
    [error] = outcome
    assert isinstance(error, SessionDropped)
    assert str(error).startswith(f"node01 ({server.address}:{server.port}): the connection dropped while "
                                 f"`sh -c 'echo $$ > {pid_file}; echo working >&2; sleep 617.75'` was running (")
    assert str(error).endswith("s in): it may or may not have finished on the node; check before running it again "
                               "(the next command connects again). Last stderr: working")
    assert audit.records[-1]["outcome"] == "dropped"
    assert shell.run("node01", ["echo", "again"], address=server.address).stdout == "again\n"


def test_addresses_from_the_config_win_over_the_internal_ip(make_shell, sshd, audit):
    shell = make_shell(addresses={"node07": sshd.address})
    assert shell.run("node07", ["echo", "here"], address="127.0.0.254").stdout == "here\n"
    assert audit.records[-1]["address"] == sshd.address
    with pytest.raises(NoAddress) as caught:
        shell.run("node08", ["true"])
    assert str(caught.value) == ("node08: no address to reach it at: the node has no InternalIP and ssh.addresses "
                                 "has no entry for it. Nothing was run.")
    assert audit.records[-1]["outcome"] == "not run (address)"


def test_connect_timeout_when_the_port_answers_but_no_ssh_does(make_shell, sshd):
    import socket

    with socket.socket() as silent:
        silent.bind((sshd.address, 0))
        silent.listen(1)  # the kernel accepts the connection; nobody ever says the SSH banner
        started = time.monotonic()
        with pytest.raises(Unreachable, match="the SSH handshake failed"):
            make_shell(port=silent.getsockname()[1], connect_timeout_seconds=1).run(
                "node01", ["true"], address=sshd.address)
        assert time.monotonic() - started < 5


def test_keepalives_go_out_on_an_idle_connection(make_shell, new_sshd):
    server = new_sshd()
    shell = make_shell(port=server.port, keepalive_seconds=1)
    shell.run("node01", ["true"], address=server.address)
    # paramiko's keepalive is a global request sshd logs at DEBUG1.
    wait_until(lambda: "keepalive@lag.net" in server.log.read_text(errors="replace"), 10, "a keepalive")


def test_a_connection_that_stopped_answering_is_replaced_before_the_command_starts(make_shell, new_sshd, tmp_path):
    """Like a node that rebooted without closing our TCP connection: the old one never answers again."""
    server = new_sshd()
    shell = make_shell(port=server.port, connect_timeout_seconds=1)
    first = shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=server.address).stdout.split()[1]
    frozen = server.session_pids()
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        second = shell.run("node01", ["sh", "-c", "echo $SSH_CONNECTION"], address=server.address).stdout.split()[1]
        assert second != first and time.monotonic() - started < 5
    finally:
        kill_all(frozen)
