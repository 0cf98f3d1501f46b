"""The ClusterRole of deploy/kubernetes (as `kubectl kustomize` renders it) grants exactly enough: every
API request kubemaint made while a user ran status, cordon, drain and uncordon through chat is allowed
by it, and it allows nothing else."""

from __future__ import annotations

from tests.chat_driver import ALICE, BOB, Chat, Stack
from tests.manifests import BASE, EXAMPLE, cluster_role_rules


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
    return any(group in rule["apiGroups"] and resource in rule["resources"] and verbs & set(rule["verbs"])
               for rule in rules)


def test_every_request_of_a_maintenance_session_is_allowed_by_the_cluster_role():
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
        requests = stack.lab.counters()["requests"]

    rules = cluster_role_rules(BASE)
    assert cluster_role_rules(EXAMPLE) == rules  # the overlay installs the same role
    needed = {p for key in requests if (p := needed_permission(*key.split(" ", 1)))}
    assert ("", "pods/eviction", frozenset({"create"})) in needed
    denied = sorted(f"{verbs} {group or 'core'}/{resource}" for group, resource, verbs in needed
                    if not allowed(rules, group, resource, verbs))
    assert denied == [], f"deploy/kubernetes/base/rbac.yaml does not allow: {denied}"
    # Least privilege: no resource kubemaint does not use, and never a plain delete.
    used = {(g, r) for g, r, _ in needed}
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == used
    assert not any("delete" in rule["verbs"] for rule in rules)
