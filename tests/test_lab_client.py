"""The lab seen through the official `kubernetes` Python client, the library the worker uses.

Each test does what kubemaint does against a real cluster (paginated lists, selectors, watches,
evictions, PDB status) and checks what a real kube-apiserver would answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client import ApiClient, ApiException

from lab.testing import LabProcess

PAYMENTS_PDB_BODY = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Cannot evict pod as it would violate the pod's disruption budget.",
    "reason": "TooManyRequests",
    "details": {"causes": [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget payments-pdb needs 2 healthy pods and has 2 currently",
    }]},
    "code": 429,
}
MULTI_PDB_BODY = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
               "not support.",
    "code": 500,
}
EVICTED_BODY = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


@contextlib.contextmanager
def _client(lab: LabProcess) -> Iterator[ApiClient]:
    api = config.new_client_from_config(config_file=str(lab.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def large_lab() -> Iterator[LabProcess]:
    """19 workers x 10 pods plus 4 static pods: enough for several pages."""
    lab = LabProcess("large:20:10").start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def large_v1(large_lab: LabProcess) -> Iterator[client.CoreV1Api]:
    with _client(large_lab) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def seeds_v1(seeds_lab: LabProcess) -> Iterator[client.CoreV1Api]:
    with _client(seeds_lab) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def workers_api(workers_lab: LabProcess) -> Iterator[ApiClient]:
    with _client(workers_lab) as api:
        yield api


def _keys(pods) -> list[tuple[str, str]]:
    return [(p.metadata.namespace, p.metadata.name) for p in pods.items]


def _evict(v1: client.CoreV1Api, name: str, namespace: str = "shop", grace: int | None = None, **kwargs):
    options = None if grace is None else client.V1DeleteOptions(grace_period_seconds=grace)
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace),
                             delete_options=options)
    return v1.create_namespaced_pod_eviction(name, namespace, body, **kwargs)


def _gone(v1: client.CoreV1Api, name: str, namespace: str) -> bool:
    try:
        v1.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _running(v1: client.CoreV1Api, namespace: str, selector: str) -> list:
    pods = v1.list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


# -- paginated lists ------------------------------------------------------------------------


def test_paginated_list_follows_continue_tokens_to_the_full_list(large_v1: client.CoreV1Api) -> None:
    full = large_v1.list_pod_for_all_namespaces()
    expected = _keys(full)
    assert len(expected) == 19 * 10 + 4
    assert full.metadata._continue is None
    assert full.metadata.remaining_item_count is None

    seen: list[tuple[str, str]] = []
    sizes: list[int] = []
    token = None
    while True:
        page = large_v1.list_pod_for_all_namespaces(limit=50, _continue=token)
        seen += _keys(page)
        sizes.append(len(page.items))
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None, "the last page has nothing left"
            break
        assert page.metadata.remaining_item_count == len(expected) - len(seen)
        assert len(sizes) < 20, "continue tokens never ran out"

    assert sizes == [50, 50, 50, 44]
    assert len(seen) == len(set(seen)), "a pod appeared on two pages"
    assert seen == expected, "pages joined must be the unpaginated list, in the same order"


def test_namespaced_pages_count_the_remaining_items_of_that_namespace(large_v1: client.CoreV1Api) -> None:
    in_default = _keys(large_v1.list_namespaced_pod("default"))
    assert len(in_default) == 190

    first = large_v1.list_namespaced_pod("default", limit=150)
    assert len(first.items) == 150
    assert first.metadata.remaining_item_count == 40  # the 4 kube-system pods are not counted
    last = large_v1.list_namespaced_pod("default", limit=150, _continue=first.metadata._continue)
    assert last.metadata._continue is None
    assert _keys(first) + _keys(last) == in_default


def test_filtered_pages_give_no_remaining_count(large_v1: client.CoreV1Api) -> None:
    selector = "spec.nodeName=node0001"
    wanted = _keys(large_v1.list_pod_for_all_namespaces(field_selector=selector))
    assert len(wanted) >= 4

    seen: list[tuple[str, str]] = []
    token = None
    for _ in range(len(wanted) + 1):
        page = large_v1.list_pod_for_all_namespaces(field_selector=selector, limit=3, _continue=token)
        assert len(page.items) <= 3
        assert all(p.spec.node_name == "node0001" for p in page.items)
        # etcd counts keys, not matches: under a selector the apiserver leaves the count out.
        assert page.metadata.remaining_item_count is None
        seen += _keys(page)
        token = page.metadata._continue
        if not token:
            break
    assert seen == wanted


def test_a_garbled_continue_token_is_a_bad_request(large_v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        large_v1.list_pod_for_all_namespaces(limit=10, _continue="not-a-token")
    assert caught.value.status == 400
    body = json.loads(caught.value.body)
    assert body["reason"] == "BadRequest"
    assert body["message"].startswith("invalid continue token: continue key is not valid")


# -- selectors ------------------------------------------------------------------------------


def test_field_selector_lists_only_the_pods_on_a_node(seeds_v1: client.CoreV1Api) -> None:
    everything = seeds_v1.list_pod_for_all_namespaces().items
    on_node01 = seeds_v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node01").items
    assert {p.metadata.name for p in on_node01} == {
        p.metadata.name for p in everything if p.spec.node_name == "node01"}
    assert "hr-app" in {p.metadata.name for p in on_node01}
    assert len(on_node01) < len(everything)

    elsewhere = seeds_v1.list_pod_for_all_namespaces(field_selector="spec.nodeName!=node01").items
    assert len(elsewhere) + len(on_node01) == len(everything)
    assert all(p.spec.node_name != "node01" for p in elsewhere)


def test_label_selectors_filter_like_the_apiserver(seeds_v1: client.CoreV1Api) -> None:
    everything = seeds_v1.list_namespaced_pod("default").items
    blue = seeds_v1.list_namespaced_pod("default", label_selector="run=blue").items
    assert len(blue) == 3
    assert all(p.metadata.labels["run"] == "blue" for p in blue)

    both = seeds_v1.list_namespaced_pod("default", label_selector="run in (blue,green)").items
    assert len(both) == 6
    not_blue = seeds_v1.list_namespaced_pod("default", label_selector="run!=blue").items
    assert {p.metadata.name for p in not_blue} == {
        p.metadata.name for p in everything if (p.metadata.labels or {}).get("run") != "blue"}
    no_run_label = seeds_v1.list_namespaced_pod("default", label_selector="!run").items
    assert [p.metadata.name for p in no_run_label] == ["hr-app"]

    blue_on_node01 = seeds_v1.list_namespaced_pod(
        "default", label_selector="run=blue", field_selector="spec.nodeName=node01").items
    assert {p.metadata.name for p in blue_on_node01} == {
        p.metadata.name for p in blue if p.spec.node_name == "node01"}


def test_an_unsupported_field_selector_is_a_400(seeds_v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        seeds_v1.list_pod_for_all_namespaces(field_selector="spec.containers.image=nginx")
    assert caught.value.status == 400
    body = json.loads(caught.value.body)
    assert body["reason"] == "BadRequest"
    assert body["message"] == "field label not supported: spec.containers.image"


# -- watch ----------------------------------------------------------------------------------


def test_watch_shows_graceful_deletion_and_the_replacement(seeds_v1: client.CoreV1Api) -> None:
    listed = seeds_v1.list_namespaced_pod("default", label_selector="run=blue")
    existing = {p.metadata.name for p in seeds_v1.list_namespaced_pod("default").items}
    victim = listed.items[0]
    owner_uid = victim.metadata.owner_references[0].uid
    seeds_v1.delete_namespaced_pod(victim.metadata.name, "default", grace_period_seconds=20)

    events: list[tuple[str, str]] = []
    replacement = None
    deleted = False
    stream = watch.Watch()
    for event in stream.stream(seeds_v1.list_namespaced_pod, "default",
                               resource_version=listed.metadata.resource_version, timeout_seconds=20):
        pod = event["object"]
        name = pod.metadata.name
        if name == victim.metadata.name:
            events.append((event["type"], "terminating" if pod.metadata.deletion_timestamp else "live"))
            deleted = deleted or event["type"] == "DELETED"
        elif event["type"] == "ADDED":
            assert name not in existing, "a watch from a resourceVersion must not replay old pods"
            if pod.metadata.owner_references and pod.metadata.owner_references[0].uid == owner_uid:
                replacement = pod
        if deleted and replacement is not None:
            stream.stop()

    assert events, "no event about the deleted pod before the watch timed out"
    assert events[0] == ("MODIFIED", "terminating"), events
    assert events[-1][0] == "DELETED", events
    assert replacement is not None, "the ReplicaSet's replacement pod was never ADDED"
    assert replacement.metadata.labels["run"] == "blue"


def test_watch_with_a_label_selector_skips_other_pods(seeds_v1: client.CoreV1Api) -> None:
    listed = seeds_v1.list_namespaced_pod("default")
    blue = next(p for p in listed.items if (p.metadata.labels or {}).get("run") == "blue")
    green = next(p for p in listed.items if (p.metadata.labels or {}).get("run") == "green")
    seeds_v1.delete_namespaced_pod(blue.metadata.name, "default", grace_period_seconds=10)
    seeds_v1.delete_namespaced_pod(green.metadata.name, "default", grace_period_seconds=10)

    labels_seen = set()
    stream = watch.Watch()
    for event in stream.stream(seeds_v1.list_namespaced_pod, "default", label_selector="run=green",
                               resource_version=listed.metadata.resource_version, timeout_seconds=20):
        labels_seen.add(event["object"].metadata.labels.get("run"))
        if event["type"] == "DELETED" and event["object"].metadata.name == green.metadata.name:
            stream.stop()
    # The blue pod changed first, so its events would have arrived before green's DELETED.
    assert labels_seen == {"green"}


# -- eviction -------------------------------------------------------------------------------


def test_eviction_makes_the_pod_terminate_and_go_away(workers_lab: LabProcess, workers_api: ApiClient) -> None:
    v1 = client.CoreV1Api(workers_api)
    name = _running(v1, "shop", "app=web")[0].metadata.name
    response = _evict(v1, name, grace=10, _preload_content=False)
    assert response.status == 201
    assert json.loads(response.data) == EVICTED_BODY

    pod = v1.read_namespaced_pod(name, "shop")
    assert pod.metadata.deletion_timestamp is not None
    assert pod.metadata.deletion_grace_period_seconds == 10
    workers_lab.wait_for(lambda: _gone(v1, name, "shop"), timeout=10, message=f"pod {name} deleted")
    workers_lab.wait_for(lambda: len(_running(v1, "shop", "app=web")) == 3, timeout=10,
                         message="the web Deployment back at 3 running pods")


def test_eviction_blocked_by_a_pdb_is_429_with_the_budget_cause(workers_api: ApiClient) -> None:
    v1 = client.CoreV1Api(workers_api)
    name = _running(v1, "shop", "app=payments")[0].metadata.name
    with pytest.raises(ApiException) as caught:
        _evict(v1, name)
    assert caught.value.status == 429
    assert json.loads(caught.value.body) == PAYMENTS_PDB_BODY
    # retryAfterSeconds 0: no Retry-After, so client-go does not retry on its own.
    assert "Retry-After" not in caught.value.headers
    assert v1.read_namespaced_pod(name, "shop").metadata.deletion_timestamp is None


def test_a_pod_with_two_pdbs_cannot_be_evicted(workers_lab: LabProcess, workers_api: ApiClient) -> None:
    workers_lab.admin("POST", "objects", {"objects": [{
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-extra-pdb", "namespace": "shop"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }]})
    v1 = client.CoreV1Api(workers_api)
    name = _running(v1, "shop", "app=web")[0].metadata.name
    with pytest.raises(ApiException) as caught:
        _evict(v1, name)
    assert caught.value.status == 500
    assert json.loads(caught.value.body) == MULTI_PDB_BODY
    assert v1.read_namespaced_pod(name, "shop").metadata.deletion_timestamp is None


def test_an_empty_pdb_selector_takes_in_the_whole_namespace_and_no_selector_nothing(
        workers_lab: LabProcess, workers_api: ApiClient) -> None:
    # policy/v1: `selector: {}` selects every pod of the namespace (eviction and status alike);
    # a PDB without a selector selects none.
    workers_lab.admin("POST", "objects", {"objects": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tools"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tool", "namespace": "tools"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "tool"}},
                  "template": {"metadata": {"labels": {"app": "tool"}},
                               "spec": {"containers": [{"name": "tool", "image": "tool:1.0"}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "all-of-tools",
         "namespace": "tools"}, "spec": {"maxUnavailable": 0, "selector": {}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "none-of-tools",
         "namespace": "tools"}, "spec": {"maxUnavailable": 0}},
    ]})
    v1, policy = client.CoreV1Api(workers_api), client.PolicyV1Api(workers_api)
    workers_lab.wait_for(lambda: len(_running(v1, "tools", "app=tool")) == 2, timeout=10,
                         message="two running tool pods")

    def budget(name: str) -> tuple[int, int, int, int]:
        status = policy.read_namespaced_pod_disruption_budget(name, "tools").status
        return status.expected_pods, status.current_healthy, status.desired_healthy, status.disruptions_allowed

    workers_lab.wait_for(lambda: budget("all-of-tools") == (2, 2, 2, 0), timeout=10,
                         message="all-of-tools to count both pods")
    assert budget("none-of-tools") == (0, 0, 0, 0)
    with pytest.raises(ApiException) as caught:
        _evict(v1, _running(v1, "tools", "app=tool")[0].metadata.name, namespace="tools")
    assert caught.value.status == 429  # one budget (the empty selector's), not two
    assert json.loads(caught.value.body)["details"]["causes"][0]["message"] == (
        "The disruption budget all-of-tools needs 2 healthy pods and has 2 currently")


def test_evicting_a_pending_pod_ignores_pdbs(workers_api: ApiClient) -> None:
    v1 = client.CoreV1Api(workers_api)
    v1.create_namespaced_pod("shop", client.V1Pod(
        metadata=client.V1ObjectMeta(name="payments-unplaceable", labels={"app": "payments"}),
        spec=client.V1PodSpec(node_selector={"example.com/nowhere": "true"},
                              containers=[client.V1Container(name="payments", image="payments:2.4")]),
    ))
    pod = v1.read_namespaced_pod("payments-unplaceable", "shop")
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None

    response = _evict(v1, "payments-unplaceable", _preload_content=False)
    assert response.status == 201
    assert _gone(v1, "payments-unplaceable", "shop"), "an unscheduled pod is deleted at once"
    # The budget still protects the running payments pods.
    with pytest.raises(ApiException) as caught:
        _evict(v1, _running(v1, "shop", "app=payments")[0].metadata.name)
    assert caught.value.status == 429


def test_evicting_a_missing_pod_is_404(workers_api: ApiClient) -> None:
    v1 = client.CoreV1Api(workers_api)
    with pytest.raises(ApiException) as caught:
        _evict(v1, "no-such-pod")
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'pods "no-such-pod" not found'


# -- PodDisruptionBudget status -------------------------------------------------------------


def _budget(policy: client.PolicyV1Api, name: str) -> tuple[int, int, int, int]:
    status = policy.read_namespaced_pod_disruption_budget(name, "shop").status
    return status.expected_pods, status.current_healthy, status.desired_healthy, status.disruptions_allowed


def test_pdb_status_is_what_the_disruption_controller_computes(workers_api: ApiClient) -> None:
    policy = client.PolicyV1Api(workers_api)
    # (expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed)
    assert _budget(policy, "web-pdb") == (3, 3, 2, 1)  # minAvailable 2 of 3 replicas
    assert _budget(policy, "payments-pdb") == (2, 2, 2, 0)  # maxUnavailable 0 of 2 replicas

    web = policy.read_namespaced_pod_disruption_budget("web-pdb", "shop").status
    assert [(c.type, c.status, c.reason) for c in web.conditions] == [
        ("DisruptionAllowed", "True", "SufficientPods")]
    payments = policy.read_namespaced_pod_disruption_budget("payments-pdb", "shop").status
    assert [(c.type, c.status, c.reason) for c in payments.conditions] == [
        ("DisruptionAllowed", "False", "InsufficientPods")]


def test_an_unready_node_uses_up_the_budget(workers_lab: LabProcess, workers_api: ApiClient) -> None:
    v1 = client.CoreV1Api(workers_api)
    policy = client.PolicyV1Api(workers_api)
    web = _running(v1, "shop", "app=web")
    down = web[0].spec.node_name
    workers_lab.admin("POST", f"nodes/{down}/ready", {"ready": False})
    workers_lab.wait_for(lambda: _budget(policy, "web-pdb") == (3, 2, 2, 0), timeout=5,
                         message="web-pdb to count the pod on the NotReady node as unhealthy")

    healthy = next(p.metadata.name for p in web if p.spec.node_name != down)
    with pytest.raises(ApiException) as caught:
        _evict(v1, healthy)
    assert caught.value.status == 429
    assert json.loads(caught.value.body)["details"]["causes"][0]["message"] == (
        "The disruption budget web-pdb needs 2 healthy pods and has 2 currently")
    # The unready pod itself is not counted as healthy, so evicting it costs the budget nothing.
    assert _evict(v1, web[0].metadata.name, _preload_content=False).status == 201
