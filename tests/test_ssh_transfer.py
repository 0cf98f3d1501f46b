"""Files to and from a node over SFTP (bot/nodes/transfer.py): the bytes and their sha256 arrive whole,
a failure leaves no partial file on our side, and every copy is audited and kept with its job."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bot.nodes import BadCommand, JobRef, TransferFailed

pytest_plugins = ["tests.ssh_fixtures"]


def test_a_file_goes_to_the_node_and_comes_back_whole(make_shell, sshd, audit, tmp_path: Path) -> None:
    shell = make_shell()
    original = tmp_path / "snapshot.db"
    original.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks and a ragged end
    expected = hashlib.sha256(original.read_bytes()).hexdigest()
    remote = str(tmp_path / "on-node" / "snapshot.db")
    Path(remote).parent.mkdir()
    job = JobRef("j-0000abcd", "U0ALICE")

    sent = shell.send("node01", original, remote, address=sshd.address, job=job)
    assert (sent.size, sent.sha256) == (original.stat().st_size, expected)
    assert oct(Path(remote).stat().st_mode & 0o777) == "0o600", "a snapshot holds the cluster's secrets"
    on_node = shell.run("node01", ["sha256sum", remote], address=sshd.address, job=job).stdout.split()[0]
    assert on_node == expected

    back = tmp_path / "back.db"
    fetched = shell.fetch("node01", remote, back, address=sshd.address, job=job)
    assert (fetched.size, fetched.sha256) == (sent.size, expected)
    assert back.read_bytes() == original.read_bytes()
    copies = [r for r in audit.records if r["command"].startswith("sftp")]
    assert [(r["command"].split()[1], r["outcome"], r["bytes"]) for r in copies] == [
        ("put", "ok", sent.size), ("get", "ok", sent.size)]
    assert {r["job"] for r in copies} == {"j-0000abcd"}


def test_a_missing_file_or_a_bad_path_fails_clearly_and_leaves_nothing(make_shell, sshd, tmp_path: Path) -> None:
    shell = make_shell()
    local = tmp_path / "copies" / "got.db"
    local.parent.mkdir()
    with pytest.raises(TransferFailed, match=r"node01: `sftp get /nonexistent/snap.db -> .*` failed: No such file"):
        shell.fetch("node01", "/nonexistent/snap.db", local, address=sshd.address)
    assert list(local.parent.iterdir()) == [], "no partial file"
    with pytest.raises(BadCommand, match="not an absolute path"):
        shell.fetch("node01", "relative/snap.db", local, address=sshd.address)


def test_a_copy_past_its_deadline_is_stopped_and_removed(make_shell, sshd, tmp_path: Path) -> None:
    shell = make_shell()
    big = tmp_path / "big.db"
    with big.open("wb") as out:
        out.truncate(2 * 1024 * 1024 * 1024)  # 2 GiB of sparse file: far more than a millisecond's worth
    local = tmp_path / "copy.db"
    with pytest.raises(TransferFailed, match=r"not done within its deadline of 0\.001s; the partial copy was removed"):
        shell.fetch("node01", str(big), local, address=sshd.address, deadline=0.001)
    assert not local.exists() and not local.with_name("copy.db.partial").exists()
