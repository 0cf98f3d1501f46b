"""The drain planner against the real kubectl: for randomly generated pods on a lab node, our
filter chain must evict exactly the pods `kubectl drain --dry-run=client --ignore-daemonsets`
evicts, and block exactly the pods kubectl refuses, for the same reason.

Each case is a fixed seed, so a failure names a reproducible set of pods. The pods' owners are
mostly objects the lab does not reconcile (a ReplicaSet or Job that does not exist): kubectl
treats any controller reference other than a DaemonSet as a controller without looking it up,
and the lab's controllers leave such pods alone.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field

import pytest

from bot.chat.grammar import parse
from bot.cluster import kube
from handlers.drain import drain_decisions
from lab.testing import LabProcess
from tests.test_kubectl import no_controller_error

pytestmark = pytest.mark.runs_long(43)

NAMESPACE = "drift"
NODE = "node01"
LIVE_DAEMONSET = "here-ds"
GONE_DAEMONSET = "gone-ds"
SEEDS = range(8)
FLAG_SETS = [(), ("--force",), ("--delete-emptydir-data",), ("--force", "--delete-emptydir-data")]
SELECTORS = ["tier=a", "tier notin (b),!canary", "canary"]
OWNERS = ["none", "ReplicaSet", "StatefulSet", "Job", "ReplicationController", "DaemonSet", "DaemonSet-gone", "Node"]
PHASES = ["Running", "Running", "Running", "Succeeded", "Failed", "Pending"]
EVICTING = re.compile(r"evicting pod (\S+) \(dry run\)")
# kubectl's error messages, in every minor we run, to the planner's rule names.
RULES = [("Pods with local storage", "emptydir"), ("declare no controller", "no-controller"),
         ('daemonsets.apps "', "daemonset-missing"), ("DaemonSet-managed", "daemonset")]


@dataclass
class KubectlVerdict:
    code: int
    evicted: set[str]
    blocked: dict[str, set[str]]
    warnings: dict[str, set[str]] = field(default_factory=dict)
    text: str = ""


def _pod(rng: random.Random, index: int, daemonset_uid: str) -> tuple[dict, str, bool]:
    """A pod manifest bound to NODE, the phase to give it, and whether to start deleting it."""
    owner = OWNERS[index % len(OWNERS)] if index < len(OWNERS) else rng.choice(OWNERS)
    name = f"p{index}-{owner.lower()}"
    labels = {"tier": rng.choice(["a", "b"])}
    if rng.random() < 0.2:
        labels["canary"] = "true"
    meta: dict = {"name": name, "namespace": NAMESPACE, "labels": labels}
    if owner != "none":
        kind, owner_name, uid = owner, f"{owner.lower()}-owner", str(uuid.uuid4())
        if owner == "DaemonSet":
            owner_name, uid = LIVE_DAEMONSET, daemonset_uid
        elif owner == "DaemonSet-gone":
            kind, owner_name = "DaemonSet", GONE_DAEMONSET
        elif owner == "Node":
            owner_name = NODE
        meta["ownerReferences"] = [{"apiVersion": "v1" if kind == "Node" else "apps/v1", "kind": kind,
                                    "name": owner_name, "uid": uid, "controller": True}]
    if owner == "Node" or rng.random() < 0.1:
        meta["annotations"] = {"kubernetes.io/config.mirror": uuid.uuid4().hex}
    spec: dict = {"nodeName": NODE, "terminationGracePeriodSeconds": 3600,
                  "containers": [{"name": "app", "image": "nginx"}]}
    if rng.random() < 0.35:
        spec["volumes"] = [{"name": f"scratch{n}", "emptyDir": {}} for n in range(rng.choice([1, 1, 2]))]
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    return manifest, rng.choice(PHASES), rng.random() < 0.2


def populate(lab: LabProcess, seed: int) -> list[str]:
    """Create the case's pods on NODE (next to the scenario's own); returns their refs."""
    rng = random.Random(seed)
    lab.admin("POST", "objects", {"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        # A DaemonSet that places no pod itself (its nodeSelector matches no node), so the
        # lab's controller leaves the pods we give it alone.
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": LIVE_DAEMONSET, "namespace": NAMESPACE},
         "spec": {"selector": {"matchLabels": {"ds": LIVE_DAEMONSET}},
                  "template": {"metadata": {"labels": {"ds": LIVE_DAEMONSET}},
                               "spec": {"nodeSelector": {"kubemaint.test/nowhere": "true"},
                                        "containers": [{"name": "agent", "image": "agent"}]}}}},
    ]})
    daemonset_uid = lab.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{LIVE_DAEMONSET}")["metadata"]["uid"]
    pods = [_pod(rng, index, daemonset_uid) for index in range(rng.randint(9, 13))]
    lab.admin("POST", "objects", {"objects": [manifest for manifest, _, _ in pods]})
    for manifest, phase, terminating in pods:
        name = manifest["metadata"]["name"]
        if terminating:  # before the phase: the API deletes a finished pod at once
            code, body = lab.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
            assert code == 200, body
        if phase != "Running":
            lab.admin("POST", "patch", {"resource": "pods", "namespace": NAMESPACE, "name": name,
                                        "patch": {"status": {"phase": phase}}})
    return [f"{NAMESPACE}/{manifest['metadata']['name']}" for manifest, _, _ in pods]


def _split_pods(text: str) -> set[str]:
    return {ref.strip() for ref in text.split(",") if ref.strip()}


def _rule(message: str) -> str:
    return next((rule for fragment, rule in RULES if fragment in message), f"unknown: {message}")


def run_kubectl(kubectl, lab: LabProcess, flags: tuple[str, ...]) -> KubectlVerdict:
    result = kubectl.run(lab, "drain", NODE, "--dry-run=client", "--ignore-daemonsets", *flags)
    evicted = set(EVICTING.findall(result.stdout))
    blocked: dict[str, set[str]] = {}
    warnings: dict[str, set[str]] = {}
    for line in result.stderr.splitlines():
        # After "There are pending nodes to be drained:" kubectl prints each error on its own
        # line, "cannot delete <why>: ns/a, ns/b" (the one-line aggregate above it is the same).
        if line.startswith("cannot delete "):
            message, _, pods = line.rpartition(": ")
            blocked.setdefault(_rule(message), set()).update(_split_pods(pods))
        elif line.startswith(("Warning: ", "WARNING: ")):
            for part in line.split(": ", 1)[1].split("; "):
                message, _, pods = part.rpartition(": ")
                warnings.setdefault(message, set()).update(_split_pods(pods))
    return KubectlVerdict(result.returncode, evicted, blocked, warnings, result.stdout + result.stderr)


def ours(lab: LabProcess, flags: tuple[str, ...]) -> tuple[set[str], dict[str, set[str]], list]:
    command = parse(" ".join(["drain", NODE, *flags]))
    client = kube.connect(lab.kubeconfig)
    try:
        snapshot = kube.read_snapshot(client)
    finally:
        client.close()
    decisions = drain_decisions(snapshot, NODE, command.options)
    blocked: dict[str, set[str]] = {}
    for decision in decisions:
        if decision.action == "block":
            blocked.setdefault(decision.rule or "", set()).add(decision.pod.ref)
    return {d.pod.ref for d in decisions if d.action == "evict"}, blocked, decisions


def compare(kubectl, lab: LabProcess, flags: tuple[str, ...], minor: int, case: str) -> None:
    theirs = run_kubectl(kubectl, lab, flags)
    evicted, blocked, decisions = ours(lab, flags)
    where = f"{case}, flags {' '.join(flags) or '(none)'}:\n{theirs.text}"
    assert blocked == theirs.blocked, where
    assert theirs.code == (1 if blocked else 0), where
    if "no-controller" in blocked:
        assert no_controller_error(minor, "") in theirs.text, where
    if blocked:
        assert not theirs.evicted, where  # kubectl evicts nothing when any pod is refused
        return
    assert evicted == theirs.evicted, where
    skipped_daemons = {d.pod.ref for d in decisions if d.rule == "daemonset"}
    assert skipped_daemons == theirs.warnings.get("ignoring DaemonSet-managed Pods", set()), where
    # kubectl keeps only the last filter's warning; the no-controller filter is the last one.
    forced = {d.pod.ref for d in decisions if d.action == "evict" and d.noted("no-controller")}
    assert forced == theirs.warnings.get("deleting Pods that declare no controller", set()), where


@pytest.mark.parametrize("seed", SEEDS)
def test_planner_matches_kubectl(kubectl, workers_lab, seed):
    refs = populate(workers_lab, seed)
    minor = kubectl.minor(workers_lab)
    case = f"seed {seed} (kubectl 1.{minor}), pods {', '.join(refs)}"
    for flags in FLAG_SETS:
        compare(kubectl, workers_lab, flags, minor, case)
    # --pod-selector narrows what both consider; the selector is passed to kubectl in the form
    # our grammar normalises it to, so kubectl also vouches for that form.
    selector = parse(f"drain {NODE} --pod-selector {SELECTORS[seed % len(SELECTORS)]}").options.pod_selector
    compare(kubectl, workers_lab, ("--pod-selector", str(selector), *FLAG_SETS[seed % len(FLAG_SETS)]), minor, case)


def test_the_cases_cover_every_kind_of_pod():
    """The seeds above exercise every rule: each kind of owner, mirror pods, emptyDir, finished
    and terminating pods (a guard against a seed change quietly weakening the test)."""
    seen: set[str] = set()
    for seed in SEEDS:
        rng = random.Random(seed)
        for index in range(rng.randint(9, 13)):
            manifest, phase, terminating = _pod(rng, index, "uid")
            meta = manifest["metadata"]
            refs = meta.get("ownerReferences") or [{"kind": "none", "name": ""}]
            seen.add(f"owner:{refs[0]['kind']}:{refs[0]['name']}")
            seen.add(f"phase:{phase}")
            seen.update({"mirror"} if "annotations" in meta else set())
            seen.update({"emptydir"} if "volumes" in manifest["spec"] else set())
            seen.update({"terminating"} if terminating else set())
            seen.update({"terminating-finished"} if terminating and phase in ("Succeeded", "Failed") else set())
    expected = {"mirror", "emptydir", "terminating", "terminating-finished",
                *(f"phase:{p}" for p in PHASES), f"owner:DaemonSet:{LIVE_DAEMONSET}",
                f"owner:DaemonSet:{GONE_DAEMONSET}", "owner:none:", "owner:Node:node01"}
    assert expected <= seen, expected - seen
