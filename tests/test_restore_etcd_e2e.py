"""The seeds' backup and restore story through chat, on a lab whose API keeps its objects in the control
plane's real etcd: `backup etcd`, delete Deployment blue with kubectl, `restore etcd from ID` approved by two
approvers, and kubectl sees blue again. And the refusals: one approval is not enough, the requester cannot
approve, an unknown id, a snapshot corrupted in the store (nothing on the control plane touched)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from bot.backups import Catalog
from tests.chat_driver import ALICE, BOB, CAROL, Chat, Stack, buttons, text_of

pytestmark = pytest.mark.runs_long(29)

API_ASIDE = "/etc/kubernetes/kube-apiserver.yaml.kubemaint-restore"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(scenario="seeds-os-upgrade", time_scale=0.2) as running:
        yield running


def kubectl(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", str(stack.lab.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60)


ETCDCTL = ("sudo etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key")


def backup(chat: Chat) -> str:
    final = text_of(chat.ask("backup etcd").wait_progress("succeeded", timeout=90, what="the backup"))
    return re.search(r"backup (b-[0-9a-f]{8})", final)[1]


def test_restore_brings_back_what_was_deleted_after_the_snapshot(stack: Stack) -> None:
    chat = Chat(stack)
    backup_id = backup(chat)
    entry = Catalog(chat.redis).get(backup_id)
    listed = stack.lab.ssh("controlplane", f"{ETCDCTL} get /registry --prefix --keys-only --rev={entry.revision} "
                                           "| grep -c ^/registry").stdout
    assert entry.objects == int(listed) > 0, "the backup counts the API's objects at its revision"
    assert kubectl(stack, "delete", "deployment", "blue").returncode == 0
    assert "NotFound" in kubectl(stack, "get", "deployment", "blue").stderr

    thread = chat.ask(f"restore etcd from {backup_id}", user=ALICE)
    card = text_of(thread.reply)
    assert f"Restore etcd on controlplane from {backup_id}" in card
    assert "everything written after the snapshot is lost" in card and "The API is down during the restore" in card
    assert re.search(r"The cluster has moved [\d,]+ revisions since", card)

    thread.click("approve", ALICE)  # the requester cannot approve their own restore
    thread.click("approve", BOB)
    chat.wait_for(lambda: "1 of 2" in text_of(thread.card()), timeout=20, what="the card to count one approval")
    assert buttons(thread.card()) == ["approve", "deny"], "one approval is not enough"
    assert kubectl(stack, "get", "nodes").returncode == 0, "nothing ran yet"

    job_id = thread.approve(CAROL)
    final = text_of(thread.wait_progress("succeeded", timeout=180, what="the restore to finish"))
    assert f"etcd restored from {backup_id}: {entry.objects} objects at revision {entry.revision}, as in the " \
           "snapshot" in final
    assert kubectl(stack, "get", "deployment", "blue").returncode == 0, "blue is back"
    nodes = kubectl(stack, "get", "nodes", "--no-headers").stdout
    assert {line.split()[0] for line in nodes.splitlines()} == {"controlplane", "node01"}
    manifest = stack.lab.ssh("controlplane", "sudo cat /etc/kubernetes/manifests/etcd.yaml").stdout
    assert f"/var/lib/etcd-from-backup-{backup_id}" in manifest
    kept = stack.lab.ssh("controlplane", f"sudo test -e /etc/kubernetes/etcd.yaml.before-{backup_id} && "
                                         "sudo test -d /var/lib/etcd")
    assert kept.returncode == 0, "the old manifest and data dir are kept for a rollback"
    assert chat.job(job_id).state == "succeeded"


def test_an_unknown_or_corrupted_backup_is_refused_before_the_control_plane_is_touched(stack: Stack) -> None:
    chat = Chat(stack)
    refused = text_of(chat.ask("restore etcd from b-0badbad0").reply)
    assert "b-0badbad0" in refused and not buttons(chat.ask("restore etcd from b-0badbad0").reply)

    backup_id = backup(chat)
    stored = next((stack.workdir / "backups").rglob(f"{backup_id}.db"))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte somewhere in the store
    stored.write_bytes(bytes(data))

    thread = chat.ask(f"restore etcd from {backup_id}")
    thread.click("approve", BOB)
    job_id = thread.approve(CAROL)
    failed = text_of(thread.wait_progress("failed", timeout=90, what="the restore to fail"))
    assert "sha256" in failed.lower()
    record = chat.job(job_id)
    assert [s.state for s in record.steps][:2] == ["failed", "pending"], "it stopped at the first step"
    assert stack.lab.ssh("controlplane", f"sudo test -e {API_ASIDE}").returncode == 1, "the API was never stopped"
    assert kubectl(stack, "get", "nodes").returncode == 0
