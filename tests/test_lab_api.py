"""The lab's wire behaviour over raw HTTP: status codes, Status bodies, patches, tables,
graceful deletion, fault injection and the /_lab/ admin API.

Expected bodies are what kube-apiserver writes for the same request.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
import yaml

from lab.testing import LabError, LabProcess

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _status(code: int, reason: str | None, message: str, details: dict | None = None) -> dict:
    body: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message}
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _http(lab: LabProcess, method: str, path: str) -> tuple[int, dict[str, str], object]:
    """Like lab.request, but also returns the response headers."""
    config = yaml.safe_load(lab.kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    request = urllib.request.Request(lab.server + path, method=method,
                                     headers={"Authorization": f"Bearer {lab.token}"})
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca),
                                    timeout=30) as resp:
            code, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        code, headers, raw = err.code, dict(err.headers), err.read()
    return code, headers, json.loads(raw)


def _table(lab: LabProcess, path: str) -> dict:
    code, table = lab.request("GET", path, headers={"Accept": TABLE})
    assert code == 200, table
    return table


def _rows(table: dict) -> dict[str, list]:
    return {row["cells"][0]: row["cells"] for row in table["rows"]}


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


# -- authentication and errors --------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "not-the-token"], ids=["no-token", "wrong-token"])
def test_unauthenticated_requests_get_a_401_status(seeds_lab: LabProcess, token: str) -> None:
    code, body = seeds_lab.request("GET", "/api/v1/nodes", token=token)
    assert (code, body) == (401, _status(401, "Unauthorized", "Unauthorized"))


def test_version_is_public_but_a_wrong_token_is_still_rejected(seeds_lab: LabProcess) -> None:
    code, body = seeds_lab.request("GET", "/version", token="")
    assert code == 200
    assert (body["major"], body["minor"], body["gitVersion"]) == ("1", "19", "v1.19.0")
    # A bad credential fails authentication before anonymous access is considered.
    assert seeds_lab.request("GET", "/version", token="not-the-token")[0] == 401


def test_a_missing_object_is_404_not_found_with_details(seeds_lab: LabProcess) -> None:
    assert seeds_lab.request("GET", "/api/v1/nodes/x") == (
        404, _status(404, "NotFound", 'nodes "x" not found', {"name": "x", "kind": "nodes"}))
    assert seeds_lab.request("GET", "/apis/apps/v1/namespaces/default/deployments/nope") == (
        404, _status(404, "NotFound", 'deployments.apps "nope" not found',
                     {"name": "nope", "group": "apps", "kind": "deployments"}))
    assert seeds_lab.request("GET", "/api/v1/widgets") == (
        404, _status(404, "NotFound", "the server could not find the requested resource", {}))


def test_put_with_a_stale_resource_version_is_a_409_conflict(seeds_lab: LabProcess) -> None:
    stale = seeds_lab.get("/api/v1/nodes/node01")
    code, _ = seeds_lab.request("PATCH", "/api/v1/nodes/node01", {"spec": {"unschedulable": True}},
                                content_type=SMP)
    assert code == 200
    stale["metadata"]["labels"]["example.com/lost-update"] = "yes"

    code, body = seeds_lab.request("PUT", "/api/v1/nodes/node01", stale)
    assert (code, body) == (409, _status(
        409, "Conflict",
        'Operation cannot be fulfilled on nodes "node01": the object has been modified; please apply '
        "your changes to the latest version and try again",
        {"name": "node01", "kind": "nodes"}))
    current = seeds_lab.get("/api/v1/nodes/node01")
    assert "example.com/lost-update" not in current["metadata"]["labels"]

    current["metadata"]["labels"]["example.com/fresh-update"] = "yes"
    code, updated = seeds_lab.request("PUT", "/api/v1/nodes/node01", current)
    assert code == 200
    assert updated["metadata"]["labels"]["example.com/fresh-update"] == "yes"
    assert int(updated["metadata"]["resourceVersion"]) > int(current["metadata"]["resourceVersion"])


def test_a_bad_taint_effect_is_422_invalid_and_changes_nothing(seeds_lab: LabProcess) -> None:
    before = seeds_lab.get("/api/v1/nodes/node01")
    taint = {"key": "example.com/maintenance", "effect": "Bogus"}
    code, body = seeds_lab.request("PATCH", "/api/v1/nodes/node01", {"spec": {"taints": [taint]}},
                                   content_type=SMP)
    detail = 'Unsupported value: "Bogus": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'
    assert (code, body) == (422, _status(
        422, "Invalid", f'Node "node01" is invalid: spec.taints[0].effect: {detail}',
        {"name": "node01", "kind": "Node",
         "causes": [{"reason": "FieldValueNotSupported", "message": detail,
                     "field": "spec.taints[0].effect"}]}))
    assert seeds_lab.get("/api/v1/nodes/node01") == before

    code, body = seeds_lab.request("PATCH", "/api/v1/nodes/node01",
                                   {"spec": {"taints": [{"key": "example.com/maintenance"}]}},
                                   content_type=SMP)
    assert code == 422
    assert body["message"] == 'Node "node01" is invalid: spec.taints[0].effect: Required value'
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.taints[0].effect"}]


def test_malformed_json_is_a_400_bad_request(seeds_lab: LabProcess) -> None:
    for method, path in (("POST", "/api/v1/namespaces/default/pods"), ("PUT", "/api/v1/nodes/node01")):
        code, body = seeds_lab.request(method, path, b'{"metadata": {"name": ')
        assert code == 400, (method, body)
        assert body["reason"] == "BadRequest"
        assert body["message"].startswith("couldn't get version/kind; json parse error: ")
    code, body = seeds_lab.request("PATCH", "/api/v1/nodes/node01", b"{unschedulable", content_type=SMP)
    assert (code, body["reason"]) == (400, "BadRequest")


@pytest.mark.parametrize("body", [{"spec": {"unschedulable": True}}, b"unschedulable: true"],
                         ids=["json-body", "text-body"])
def test_patch_with_an_unknown_content_type_is_415(seeds_lab: LabProcess, body: object) -> None:
    code, status = seeds_lab.request("PATCH", "/api/v1/nodes/node01", body, content_type="text/plain")
    assert (code, status) == (415, _status(
        415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml"))
    assert not seeds_lab.get("/api/v1/nodes/node01")["spec"].get("unschedulable")


# -- patches --------------------------------------------------------------------------------


def test_strategic_merge_merge_and_json_patches_on_a_node(seeds_lab: LabProcess) -> None:
    path = "/api/v1/nodes/node01"
    before = seeds_lab.get(path)

    code, node = seeds_lab.request("PATCH", path, {"metadata": {"labels": {"example.com/pool": "blue"}}},
                                   content_type=SMP)
    assert code == 200
    assert node["metadata"]["labels"] == {**before["metadata"]["labels"], "example.com/pool": "blue"}
    rv = node["metadata"]["resourceVersion"]
    assert int(rv) > int(before["metadata"]["resourceVersion"])
    # The same patch again changes nothing, so nothing is written.
    code, again = seeds_lab.request("PATCH", path, {"metadata": {"labels": {"example.com/pool": "blue"}}},
                                    content_type=SMP)
    assert (code, again["metadata"]["resourceVersion"]) == (200, rv)

    code, node = seeds_lab.request("PATCH", path, {"metadata": {"labels": {"example.com/pool": None}}},
                                   content_type=MERGE)
    assert code == 200
    assert node["metadata"]["labels"] == before["metadata"]["labels"]

    note = "/metadata/annotations/example.com~1note"
    code, node = seeds_lab.request("PATCH", path, [{"op": "add", "path": note, "value": "kernel 5.15"}],
                                   content_type=JSON_PATCH)
    assert code == 200
    assert node["metadata"]["annotations"]["example.com/note"] == "kernel 5.15"

    code, body = seeds_lab.request(
        "PATCH", path, [{"op": "test", "path": note, "value": "something else"}, {"op": "remove", "path": note}],
        content_type=JSON_PATCH)
    assert (code, body) == (422, _status(
        422, "Invalid", "the server rejected our request due to an error in our request", {}))
    assert seeds_lab.get(path)["metadata"]["annotations"]["example.com/note"] == "kernel 5.15"


def test_strategic_merge_merges_lists_by_key_where_merge_patch_replaces(seeds_lab: LabProcess) -> None:
    path = "/api/v1/nodes/node01/status"
    external = {"type": "ExternalIP", "address": "203.0.113.7"}
    code, node = seeds_lab.request("PATCH", path, {"status": {"addresses": [external]}}, content_type=SMP)
    assert code == 200
    assert [a["type"] for a in node["status"]["addresses"]] == ["InternalIP", "Hostname", "ExternalIP"]

    code, node = seeds_lab.request("PATCH", path, {"status": {"addresses": [external]}}, content_type=MERGE)
    assert code == 200
    assert node["status"]["addresses"] == [external]


def test_status_changes_through_the_main_resource_are_ignored(seeds_lab: LabProcess) -> None:
    code, node = seeds_lab.request("PATCH", "/api/v1/nodes/node01",
                                   {"status": {"addresses": []}, "metadata": {"labels": {"x": "y"}}},
                                   content_type=MERGE)
    assert code == 200
    assert node["status"]["addresses"], "status is only written through /status"
    assert node["metadata"]["labels"]["x"] == "y"


def test_dry_run_cordon_answers_but_changes_nothing(seeds_lab: LabProcess) -> None:
    before = seeds_lab.get("/api/v1/nodes/node01")
    code, preview = seeds_lab.request("PATCH", "/api/v1/nodes/node01?dryRun=All",
                                      {"spec": {"unschedulable": True}}, content_type=SMP)
    assert code == 200
    assert preview["spec"]["unschedulable"] is True
    assert seeds_lab.get("/api/v1/nodes/node01") == before
    assert _rows(_table(seeds_lab, "/api/v1/nodes"))["node01"][1] == "Ready"


# -- discovery and tables -------------------------------------------------------------------


def test_discovery_advertises_eviction_and_the_groups(seeds_lab: LabProcess) -> None:
    core = seeds_lab.get("/api/v1")
    eviction = next(r for r in core["resources"] if r["name"] == "pods/eviction")
    assert (eviction["group"], eviction["version"], eviction["kind"], eviction["verbs"]) == (
        "policy", "v1", "Eviction", ["create"])
    assert {"nodes", "pods", "namespaces"} <= {r["name"] for r in core["resources"]}

    assert seeds_lab.get("/api")["versions"] == ["v1"]
    groups = {g["name"]: g for g in seeds_lab.get("/apis")["groups"]}
    assert {"apps", "policy"} <= set(groups)
    assert groups["policy"]["preferredVersion"] == {"groupVersion": "policy/v1", "version": "v1"}
    policy = seeds_lab.get("/apis/policy/v1")
    assert [(r["name"], r["kind"]) for r in policy["resources"] if "/" not in r["name"]] == [
        ("poddisruptionbudgets", "PodDisruptionBudget")]


def test_node_table_has_kubectls_columns_and_shows_a_cordon(seeds_lab: LabProcess) -> None:
    table = _table(seeds_lab, "/api/v1/nodes?limit=500")
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"][:5]] == ["Name", "Status", "Roles", "Age", "Version"]
    rows = _rows(table)
    assert [rows["controlplane"][i] for i in (1, 2, 4)] == ["Ready", "master", "v1.19.0"]
    assert [rows["node01"][i] for i in (1, 2, 4)] == ["Ready", "<none>", "v1.19.0"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"

    code, _ = seeds_lab.request("PATCH", "/api/v1/nodes/node01", {"spec": {"unschedulable": True}},
                                content_type=SMP)
    assert code == 200
    assert _rows(_table(seeds_lab, "/api/v1/nodes"))["node01"][1] == "Ready,SchedulingDisabled"
    assert _rows(_table(seeds_lab, "/api/v1/nodes/node01"))["node01"][1] == "Ready,SchedulingDisabled"


# -- graceful deletion ----------------------------------------------------------------------


def test_graceful_deletion_marks_the_pod_then_removes_it_after_the_grace_period(seeds_lab: LabProcess) -> None:
    path = "/api/v1/namespaces/default/pods/hr-app"
    code, pod = seeds_lab.request("DELETE", path + "?gracePeriodSeconds=30")
    deleted_at = time.monotonic()
    assert code == 200
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    deadline = datetime.strptime(pod["metadata"]["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 25 <= (deadline - datetime.now(UTC)).total_seconds() <= 31

    assert seeds_lab.request("GET", path)[0] == 200, "still there while terminating"
    assert _rows(_table(seeds_lab, path))["hr-app"][2] == "Terminating"

    seeds_lab.wait_for(lambda: seeds_lab.request("GET", path)[0] == 404, timeout=10,
                       message="hr-app removed after its grace period")
    elapsed = time.monotonic() - deleted_at
    scaled_grace = 30 * seeds_lab.time_scale
    assert scaled_grace * 0.8 <= elapsed <= scaled_grace + 3


# -- faults and counters --------------------------------------------------------------------


def test_injected_503_carries_retry_after_and_hits_only_matching_requests(seeds_lab: LabProcess) -> None:
    seeds_lab.set_faults({"rules": [{"verb": "list", "resource": "pods", "rate": 1.0, "error": "503",
                                     "retryAfter": 1}]})
    code, headers, body = _http(seeds_lab, "GET", "/api/v1/pods?limit=500")
    assert code == 503
    assert headers["Retry-After"] == "1"
    assert body == _status(503, "ServiceUnavailable", "the server is currently unable to handle the request",
                           {"retryAfterSeconds": 1})
    assert seeds_lab.request("GET", "/api/v1/namespaces/default/pods/hr-app")[0] == 200  # get, not list
    assert seeds_lab.request("GET", "/api/v1/nodes")[0] == 200

    seeds_lab.set_faults({})
    assert seeds_lab.request("GET", "/api/v1/pods")[0] == 200


def test_a_dropped_connection_is_a_client_side_error(seeds_lab: LabProcess) -> None:
    seeds_lab.set_faults({"rules": [{"verb": "get", "resource": "nodes", "rate": 1.0, "error": "drop"}]})
    with pytest.raises((OSError, http.client.HTTPException)):
        seeds_lab.request("GET", "/api/v1/nodes/node01")
    assert seeds_lab.request("GET", "/api/v1/nodes")[0] == 200  # a list is not a get


def test_latency_delays_every_api_request(seeds_lab: LabProcess) -> None:
    seeds_lab.set_faults({"latencyMs": 400})
    started = time.monotonic()
    assert seeds_lab.request("GET", "/api/v1/nodes")[0] == 200
    assert time.monotonic() - started >= 0.4


def test_bad_fault_rules_are_rejected(seeds_lab: LabProcess) -> None:
    code, body = seeds_lab.request("PUT", "/_lab/faults", {"rules": [{"error": "404"}]})
    assert code == 400
    assert body["message"] == "fault error must be one of 429, 500, 503, drop, got '404'"
    assert seeds_lab.admin("GET", "faults")["rules"] == []


def test_counters_count_api_requests_by_method_and_path(seeds_lab: LabProcess) -> None:
    seeds_lab.admin("POST", "counters/reset")
    seeds_lab.request("GET", "/api/v1/nodes?limit=500")
    seeds_lab.request("GET", "/api/v1/nodes")
    seeds_lab.request("GET", "/api/v1/nodes/node01")
    seeds_lab.request("PATCH", "/api/v1/nodes/node01", {"spec": {"unschedulable": True}}, content_type=SMP)
    seeds_lab.request("GET", "/version", token="")
    seeds_lab.admin("GET", "faults")  # the admin API is not counted
    requests = {"GET /api/v1/nodes": 2, "GET /api/v1/nodes/node01": 1, "PATCH /api/v1/nodes/node01": 1,
                "GET /version": 1}
    # Also per client, by its User-Agent's product (urllib's here; the bot's is "kubemaint").
    assert seeds_lab.counters() == {"total": 5, "requests": requests, "by_agent": {"Python-urllib": requests}}


# -- the admin API ---------------------------------------------------------------------------


def test_an_unready_node_shows_not_ready_and_its_pods_turn_unready(seeds_lab: LabProcess) -> None:
    seeds_lab.admin("POST", "nodes/node01/ready", {"ready": False})
    assert _rows(_table(seeds_lab, "/api/v1/nodes"))["node01"][1] == "NotReady"
    assert _rows(_table(seeds_lab, "/api/v1/nodes"))["controlplane"][1] == "Ready"
    seeds_lab.wait_for(lambda: not any(_ready(p) for p in seeds_lab.pods(node="node01")), timeout=5,
                       message="every pod on node01 unready")
    assert any(_ready(p) for p in seeds_lab.pods(node="controlplane"))
    taints = seeds_lab.get("/api/v1/nodes/node01")["spec"]["taints"]
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}

    seeds_lab.admin("POST", "nodes/node01/ready", {"ready": True})
    assert _rows(_table(seeds_lab, "/api/v1/nodes"))["node01"][1] == "Ready"
    assert "taints" not in seeds_lab.get("/api/v1/nodes/node01")["spec"]
    seeds_lab.wait_for(lambda: all(_ready(p) for p in seeds_lab.pods(node="node01")), timeout=5,
                       message="pods on node01 ready again")


def test_version_changes_show_in_the_node_and_in_slash_version(seeds_lab: LabProcess) -> None:
    seeds_lab.admin("POST", "nodes/node01/versions", {"kubelet": "v1.20.0", "kubeProxy": "v1.20.0"})
    info = seeds_lab.get("/api/v1/nodes/node01")["status"]["nodeInfo"]
    assert (info["kubeletVersion"], info["kubeProxyVersion"]) == ("v1.20.0", "v1.20.0")
    assert _rows(_table(seeds_lab, "/api/v1/nodes"))["node01"][4] == "v1.20.0"
    assert seeds_lab.get("/version")["gitVersion"] == "v1.19.0", "a kubelet is not the apiserver"

    seeds_lab.admin("POST", "nodes/controlplane/versions", {"components": {"kube-apiserver": "v1.20.0"}})
    version = seeds_lab.get("/version")
    assert (version["minor"], version["gitVersion"]) == ("20", "v1.20.0")
    apiserver = seeds_lab.get("/api/v1/namespaces/kube-system/pods/kube-apiserver-controlplane")
    assert apiserver["spec"]["containers"][0]["image"] == "k8s.gcr.io/kube-apiserver:v1.20.0"


@pytest.mark.parametrize(("path", "body", "code", "message"), [
    ("nodes/node01/versions", {"kubelet": "1.20"}, 400,
     "kubelet: version '1.20' is not of the form vMAJOR.MINOR.PATCH (e.g. v1.19.0)"),
    ("nodes/node01/versions", {"kubelet": "v1.20.0", "components": {"kube-dns": "v1.20.0"}}, 400,
     "unknown components: kube-dns; known: kube-apiserver, kube-controller-manager, kube-scheduler, etcd"),
    ("nodes/node01/versions", {"components": {"kube-apiserver": "v1.20.0"}}, 400,
     "node node01 runs no kube-apiserver static pod"),
    ("nodes/node01/ready", {"ready": "no"}, 400, 'body must be {"ready": true|false}'),
    ("nodes/node09/ready", {"ready": False}, 404, 'nodes "node09" not found'),
], ids=["version-format", "unknown-component", "no-static-pod", "ready-not-bool", "unknown-node"])
def test_bad_admin_input_is_rejected_with_a_clear_message(seeds_lab: LabProcess, path: str, body: dict,
                                                          code: int, message: str) -> None:
    before = seeds_lab.get("/api/v1/nodes/node01")
    got, status = seeds_lab.request("POST", "/_lab/" + path, body)
    assert (got, status["message"]) == (code, message)
    assert seeds_lab.get("/api/v1/nodes/node01") == before
    with pytest.raises(LabError, match=str(code)):
        seeds_lab.admin("POST", path, body)


def test_a_node_down_past_the_eviction_timeout_loses_its_pods() -> None:
    """The seeds' lesson: after 5 minutes (scaled here to 1.5 s) replicated pods move to
    another node and a pod with no controller is gone for good."""
    with LabProcess("seeds-os-upgrade", time_scale=0.005) as lab:
        lab.admin("POST", "nodes/node01/ready", {"ready": False})

        def moved() -> bool:
            pods = lab.pods("default")
            names = {p["metadata"]["name"] for p in pods}
            apps = [p for p in pods if p["metadata"]["name"].startswith(("blue-", "green-"))]
            return ("hr-app" not in names and len(apps) == 6
                    and all(p["spec"].get("nodeName") == "controlplane" and _ready(p) for p in apps))

        lab.wait_for(moved, timeout=20, message="pods evicted from the dead node and re-created")
        daemon_pods = lab.pods("kube-system", node="node01")
        assert {p["metadata"]["name"].rsplit("-", 1)[0] for p in daemon_pods} == {"kube-proxy", "kube-flannel-ds"}


def _protobuf_field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def _protobuf_envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _protobuf_field(1, api_version.encode()) + _protobuf_field(2, kind.encode())
    return b"k8s\x00" + _protobuf_field(1, type_meta) + _protobuf_field(2, raw)


PROTOBUF = "application/vnd.kubernetes.protobuf"


def test_a_protobuf_body_is_decoded_and_an_unreadable_one_is_a_415(seeds_lab: LabProcess) -> None:
    # A ConfigMap: metadata (1) {name (1)}, data (2) map entry {key (1), value (2)}.
    config_map = (_protobuf_field(1, _protobuf_field(1, b"from-proto"))
                  + _protobuf_field(2, _protobuf_field(1, b"k") + _protobuf_field(2, b"v")))
    code, created = seeds_lab.request("POST", "/api/v1/namespaces/default/configmaps",
                                      _protobuf_envelope("v1", "ConfigMap", config_map), content_type=PROTOBUF)
    assert code == 201 and created["data"] == {"k": "v"}
    # A field the lab does not decode (a Pod's securityContext, 14).
    pod = _protobuf_field(1, _protobuf_field(1, b"odd")) + _protobuf_field(2, _protobuf_field(14, b"\x0a\x00"))
    code, refused = seeds_lab.request("POST", "/api/v1/namespaces/default/pods",
                                      _protobuf_envelope("v1", "Pod", pod), content_type=PROTOBUF)
    assert code == 415 and refused["reason"] == "UnsupportedMediaType"
    assert "PodSpec.securityContext" in refused["message"]
    assert seeds_lab.request("GET", "/api/v1/namespaces/default/pods/odd")[0] == 404


def test_strict_field_validation_refuses_and_warn_drops(seeds_lab: LabProcess) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo"}, "dataa": {"a": "b"}}
    code, refused = seeds_lab.request("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", body)
    assert (code, refused["message"]) == (400, 'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                               'strict decoding error: unknown field "dataa"')
    code, created = seeds_lab.request("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Warn", body)
    assert code == 201 and "dataa" not in created
    code, refused = seeds_lab.request("PATCH", "/api/v1/namespaces/default/configmaps/typo?fieldValidation=Strict",
                                      {"metadata": {"labelz": {}}}, content_type="application/merge-patch+json")
    assert (code, refused["message"]) == (400, 'strict decoding error: unknown field "metadata.labelz"')
