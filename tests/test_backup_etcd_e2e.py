"""`backup etcd` through chat on the seeds' cluster, whose control plane runs a real etcd: the snapshot
is taken on the node with its etcdctl, copied off, checked, stored and catalogued, and the host's own
etcdctl reads the stored file as the same snapshot. A failing etcdctl stops the job with its message and
nothing catalogued; `resume` finishes it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.engine.audit import read_audit
from tests.chat_driver import Chat, Stack, job_id_of, text_of


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-os-upgrade", time_scale=0.2) as running:
        yield running


@pytest.fixture
def chat(stack: Stack) -> Iterator[Chat]:
    yield Chat(stack)
    stack.lab.set_machine_faults("controlplane", {})


def stored_snapshots(stack: Stack) -> list[Path]:
    return sorted((stack.workdir / "backups").rglob("*.db"))


def test_backup_etcd_keeps_a_real_snapshot_and_lists_it(stack: Stack, chat: Chat) -> None:
    before = stored_snapshots(stack)
    thread = chat.ask("backup etcd")
    job_id = job_id_of(thread.reply)
    final = text_of(thread.wait_progress("succeeded", timeout=90, what="the backup to finish"))
    backup_id = re.search(r"backup (b-[0-9a-f]{8}): revision (\d+), (\d+) keys", final)
    assert backup_id, final
    new = [path for path in stored_snapshots(stack) if path not in before]
    assert [path.name for path in new] == [f"{backup_id[1]}.db"]

    # The host's own etcdctl reads the stored file as the snapshot the node measured.
    status = subprocess.run(["etcdctl", "snapshot", "status", str(new[0]), "-w", "json"], capture_output=True,
                            text=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}, timeout=30, check=True)
    measured = json.loads(status.stdout)
    assert (str(measured["revision"]), str(measured["totalKey"])) == (backup_id[2], backup_id[3])
    listing = text_of(chat.ask("backups").reply)
    row = next(line.split() for line in listing.splitlines() if line.startswith(backup_id[1]))
    assert row[1:5] == ["etcd", row[2], backup_id[2], backup_id[3]] and row[-2:] == ["controlplane", "U0ALICE"]
    sha = hashlib.sha256(new[0].read_bytes()).hexdigest()
    assert f"sha256 {sha[:12]}" in final

    leftovers = stack.lab.ssh("controlplane", "sudo ls /var/tmp").stdout
    assert "kubemaint-backup" not in leftovers, "the temporary snapshot was removed from the node"
    audited = [e for e in read_audit(chat.redis, 3600) if e["event"] == "node.command" and e.get("job") == job_id]
    assert any("snapshot save" in e["command"] for e in audited) and all(e["requester"] == "U0ALICE" for e in audited)
    shown = text_of(chat.ask(f"job {job_id}").reply)
    assert "*Node commands* (last 5 of" in shown and "sftp get /var/tmp/kubemaint-backup-" in shown


def test_a_failing_etcdctl_stops_the_backup_and_resume_finishes_it(stack: Stack, chat: Chat) -> None:
    before = stored_snapshots(stack)
    error = "Error: context deadline exceeded\n"
    stack.lab.set_machine_faults("controlplane", {"failures": {"etcdctl": {"exitCode": 1, "stderr": error}}})
    thread = chat.ask("backup etcd")
    job_id = job_id_of(thread.reply)
    failed = text_of(thread.wait_progress("failed", timeout=90, what="the backup to fail"))
    assert "snapshot save" in failed and "exited with 1: Error: context deadline exceeded" in failed
    assert f"resume {job_id}" in failed
    assert stored_snapshots(stack) == before, "nothing was stored"

    stack.lab.set_machine_faults("controlplane", {})
    chat.ask(f"resume {job_id}")
    chat.wait_job(job_id, ("succeeded",), timeout=90)
    assert len(stored_snapshots(stack)) == len(before) + 1


def test_backup_resources_keeps_every_object_as_yaml_without_status(stack: Stack, chat: Chat) -> None:
    final = text_of(chat.ask("backup resources --namespace default").wait_progress("succeeded", timeout=90,
                                                                                   what="the export"))
    found = re.search(r"backup (b-[0-9a-f]{8}): (\d+) objects of default", final)
    assert found, final
    archive = next((stack.workdir / "backups").rglob(f"{found[1]}.tar.gz"))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        blue = yaml.safe_load(tar.extractfile(f"{found[1]}/default/deployments.apps/blue.yaml"))
    assert len(names) == int(found[2]) and f"{found[1]}/_cluster/namespaces.core/default.yaml" in names
    assert not any("/kube-system/" in name for name in names), "one namespace only"
    assert (blue["apiVersion"], blue["kind"], blue["metadata"]["name"]) == ("apps/v1", "Deployment", "blue")
    assert "status" not in blue and "managedFields" not in blue["metadata"]
    listing = text_of(chat.ask("backups").reply)
    assert any(line.startswith(found[1]) and " resources " in line for line in listing.splitlines())
    refused = text_of(chat.ask("backup resources --namespace nosuch").reply)
    assert "namespace nosuch not found" in refused
