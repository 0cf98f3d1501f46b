"""The ClusterRole of deploy/kubernetes (as `kubectl kustomize` renders it) grants exactly enough: every
API request kubemaint made while a user ran every operation that reads or changes the cluster through chat
(status, cordon, drain, uncordon, status NODE, both backups, the upgrade, a reboot, an OS upgrade and a restore)
is allowed by it, and it allows nothing else."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.chat_driver import ALICE, BOB, CAROL, Chat, Stack, text_of
from tests.manifests import BASE, EXAMPLE, KUSTOMIZE, cluster_role_rules, overlay_on, render

pytestmark = pytest.mark.runs_long(49)


def needed_permission(method: str, path: str) -> tuple[str, str, frozenset[str]] | None:
    """(apiGroup, resource, acceptable verbs) for a request path, as the apiserver authorizes it."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, rest = parts[1], parts[3:]
    else:
        return None  # discovery and /version: allowed to every authenticated user
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verbs = {"GET": {"get"} if named else {"list", "watch"}, "PATCH": {"patch"}, "PUT": {"update"},
             "POST": {"create"}, "DELETE": {"delete"}}[method]
    return group, resource, frozenset(verbs)


def allowed(rules: list[dict], group: str, resource: str, verbs: frozenset[str]) -> bool:
    return any({group, "*"} & set(rule["apiGroups"]) and {resource, "*"} & set(rule["resources"])
               and verbs & set(rule["verbs"]) for rule in rules)


def needed(requests: dict) -> set[tuple[str, str, frozenset[str]]]:
    return {p for key in requests if (p := needed_permission(*key.split(" ", 1)))}


def denied(rules: list[dict], permissions: set[tuple[str, str, frozenset[str]]]) -> list[str]:
    return sorted(f"{sorted(verbs)} {group or 'core'}/{resource}" for group, resource, verbs in permissions
                  if not allowed(rules, group, resource, verbs))


# Granted though the session does not exercise it: the health gate reads a drained StatefulSet's readiness,
# and the seeds run no StatefulSet.
NOT_EXERCISED = {("apps", "statefulsets")}


def test_every_request_of_a_maintenance_session_is_allowed_by_the_cluster_role(tmp_path: Path):
    with Stack(time_scale=0.05) as stack:
        chat = Chat(stack)
        stack.lab.admin("POST", "counters/reset")
        chat.ask("status", user=ALICE)
        cordon = chat.ask("cordon node01", user=ALICE)
        cordon.approve(user=BOB)
        cordon.wait("succeeded", timeout=60)
        drain = chat.ask("drain node01 --force", user=ALICE)
        drain.approve(user=BOB)
        drain.wait("succeeded", timeout=60)
        chat.ask("uncordon node01", user=ALICE).wait("succeeded", timeout=60)
        chat.ask("status node01", user=ALICE)
        backup = text_of(chat.ask("backup etcd", user=ALICE).wait_progress("succeeded", timeout=90))
        backup_id = re.search(r"backup (b-[0-9a-f]{8})", backup)[1]
        chat.ask("upgrade plan", user=ALICE)
        for command in ("upgrade to v1.20.0", "os-upgrade node01", "reboot node01"):
            thread = chat.ask(command, user=ALICE, timeout=60)
            thread.approve(user=BOB)
            thread.wait_progress("succeeded", timeout=180, what=command)
        restore = chat.ask(f"restore etcd from {backup_id}", user=ALICE)
        restore.click("approve", BOB)
        restore.approve(user=CAROL)
        restore.wait_progress("succeeded", timeout=120, what="the restore")
        # The bot's requests (its User-Agent), not those of the lab's kubeadm and kubelets on the machines.
        requests = stack.lab.counters()["by_agent"]["kubemaint"]
        stack.lab.admin("POST", "counters/reset")
        chat.ask("backup resources", user=ALICE).wait_progress("succeeded", timeout=90)
        exporting = stack.lab.counters()["by_agent"]["kubemaint"]

    rules = cluster_role_rules(BASE)
    assert cluster_role_rules(EXAMPLE) == rules  # the overlay installs the same role
    used = needed(requests)
    assert ("", "pods/eviction", frozenset({"create"})) in used
    assert denied(rules, used) == [], "deploy/kubernetes/base/rbac.yaml does not allow these"
    # Least privilege: no resource kubemaint does not use, and never a plain delete.
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {(g, r) for g, r, _ in used} | NOT_EXERCISED
    assert not any("delete" in rule["verbs"] for rule in rules)

    # `backup resources` lists every type: the base refuses it, the opt-in component allows it, read-only.
    exports = needed(exporting)
    assert ("", "secrets", frozenset({"list", "watch"})) in exports
    assert denied(rules, exports) != []
    component = os.path.relpath(KUSTOMIZE / "components" / "resource-backups", tmp_path)
    with_backups = overlay_on(BASE, tmp_path, f"components: [{component}]\n")
    backups = next(o for o in render(with_backups) if o["kind"] == "ClusterRole"
                   and o["metadata"]["name"] == "kubemaint-resource-backups")["rules"]
    assert denied(rules + backups, exports) == []
    assert {verb for rule in backups for verb in rule["verbs"]} == {"get", "list"}
