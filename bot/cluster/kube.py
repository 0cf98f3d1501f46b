"""Cluster access through the official kubernetes client."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential
from urllib3.exceptions import HTTPError as TransportError

from bot.cluster.metrics import count_errors
from bot.cluster.snapshot import ClusterSnapshot, snapshot_from_api

PAGE = 500  # what kubectl asks for
POOL_SIZE = 32


@dataclass
class Kube:
    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    policy: client.PolicyV1Api

    def close(self) -> None:
        self.api.close()


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"kubemaint/{version('kubemaint')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "kubemaint"


USER_AGENT = _user_agent()


def connect(kubeconfig: Path | None = None, context: str | None = None) -> Kube:
    """Clients for the cluster in `kubeconfig` (or the in-cluster service account)."""
    if kubeconfig is None:
        config.load_incluster_config()
        api = client.ApiClient()
    else:
        api = config.new_client_from_config(config_file=str(kubeconfig), context=context)
    # Named in the API server's audit log and request metrics as kubemaint, not as the generic Python client.
    api.user_agent = USER_AGENT
    # The bot reads the cluster from many threads at once; urllib3's default pool of 4
    # connections would make them queue.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = POOL_SIZE
    count_errors(api)
    return Kube(api, client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api))


def raw(response) -> dict:
    """The JSON of a `_preload_content=False` response, handing its connection back to the pool
    (otherwise every request would open a new TLS connection). orjson, because a snapshot decodes
    every pod in the cluster and the stdlib decoder was the bot's largest CPU cost under load."""
    try:
        return orjson.loads(response.data) if response.data else {}
    finally:
        response.release_conn()


def transient(error: BaseException) -> bool:
    """Worth retrying: the API asked us to slow down, had a passing fault, or the connection dropped."""
    if isinstance(error, ApiException):
        return error.status == 429 or (error.status or 0) >= 500 or error.status == 0
    return isinstance(error, TransportError | ConnectionError)


# Reads and idempotent writes ride out a flaky API (429s, 5xx, dropped connections) for a while.
retrying = retry(retry=retry_if_exception(transient), wait=wait_exponential(multiplier=0.2, max=3),
                 stop=stop_after_attempt(8) | stop_after_delay(30), reraise=True)


def list_all(list_call, **kwargs) -> list[dict]:
    """Every item of a paginated list, as plain JSON (skipping the client's model objects,
    which are slow to build and not needed by the planners)."""
    items: list[dict] = []
    token = None
    while True:
        page = raw(retrying(list_call)(limit=PAGE, _continue=token, _preload_content=False, **kwargs))
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


def read_snapshot(kube: Kube, *, budgets: bool = True, node: str | None = None) -> ClusterSnapshot:
    """Nodes and pods; with `budgets`, also PDBs and DaemonSets (what eviction planning needs:
    a pod whose DaemonSet is gone is an orphan). Status and cordon skip those two lists. With
    `node`, only that node's pods (a field selector, as kubectl drain lists them)."""
    nodes = list_all(kube.core.list_node)
    scope = {"field_selector": f"spec.nodeName={node}"} if node else {}
    pods = list_all(kube.core.list_pod_for_all_namespaces, **scope)
    if not budgets:
        return snapshot_from_api(nodes, pods)
    pdbs = list_all(kube.policy.list_pod_disruption_budget_for_all_namespaces)
    daemonsets = list_all(kube.apps.list_daemon_set_for_all_namespaces)
    return snapshot_from_api(nodes, pods, pdbs, daemonsets)


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"  # a Table, or a plain list
# A row without its object is about 100 bytes: pages of 5,000 are 0.5 MB, what a page of 500 pods
# in full weighed, in a tenth of the round trips.
TABLE_PAGE = 5000


def read_status(kube: Kube) -> tuple[ClusterSnapshot, Counter[str]]:
    """What `status` needs: every node, the kube-system pods (the control plane's static pods say its
    versions), and how many pods each node runs. The count comes from the pods listed as a Table
    without their objects (`kubectl get pods -A -o wide` does the same): at 20,000 pods the full
    list was 43 MB to send and decode, the Table's cells 2 MB."""
    nodes = list_all(kube.core.list_node)
    system = list_all(kube.core.list_namespaced_pod, namespace="kube-system")
    return snapshot_from_api(nodes, system), pods_per_node(kube)


def pods_per_node(kube: Kube) -> Counter[str]:
    """How many pods each node has (pods not scheduled yet count for none)."""
    counts: Counter[str] = Counter()
    column = None
    token = None
    while True:
        query = {"limit": TABLE_PAGE, "includeObject": "None", **({"continue": token} if token else {})}
        page = _get(kube, "/api/v1/pods", query, TABLE)
        if page.get("kind") != "Table":  # an API that does not print tables sends the pods themselves
            counts.update(n for p in page.get("items") or [] if (n := (p.get("spec") or {}).get("nodeName")))
        else:
            if page.get("columnDefinitions"):
                column = [c.get("name") for c in page["columnDefinitions"]].index("Node")
            if column is None:
                raise ValueError("the API's pod table has no Node column")
            counts.update(n for row in page.get("rows") or [] if (n := row["cells"][column]) and n != "<none>")
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return counts


@retrying
def _get(kube: Kube, path: str, query: dict, accept: str) -> dict:
    method, url, headers, body, post = kube.api.param_serialize(
        "GET", f"{path}?{urlencode(query)}", header_params={"Accept": accept}, auth_settings=["BearerToken"])
    response = kube.api.call_api(method, url, headers, body, post, _request_timeout=60)
    response.read()
    if response.status >= 400:
        raise ApiException(status=response.status, reason=response.reason)
    return orjson.loads(response.data) if response.data else {}


def read_nodes(kube: Kube) -> ClusterSnapshot:
    """The nodes alone (no pods): what an operation that picks a node by role needs."""
    return snapshot_from_api(list_all(kube.core.list_node), [])


@retrying
def read_node(kube: Kube, name: str) -> dict:
    return raw(kube.core.read_node(name, _preload_content=False))


@retrying
def set_unschedulable(kube: Kube, name: str, unschedulable: bool) -> None:
    # The same strategic-merge patch kubectl sends; null removes the field on uncordon. The answer
    # is not turned into the client's model objects: nothing reads it, and building them costs
    # more CPU than the request.
    raw(kube.core.patch_node(name, {"spec": {"unschedulable": True if unschedulable else None}},
                             _preload_content=False))


def node_addresses(kube: Kube) -> dict[str, str | None]:
    """Every node's InternalIP (None for a node that reports none): where the bot reaches it over SSH
    unless the config's ssh.addresses says otherwise."""
    addresses: dict[str, str | None] = {}
    for node in list_all(kube.core.list_node):
        found = [a.get("address") for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"]
        addresses[node["metadata"]["name"]] = found[0] if found else None
    return addresses


def api_answers(kube: Kube, timeout: float = 2.0) -> bool:
    """Does the API server answer at all (any HTTP status), once, without the retries reads get? A restore
    waits on this to see the API go down and come back."""
    try:
        client.VersionApi(kube.api).get_code(_preload_content=False, _request_timeout=timeout).release_conn()
        return True
    except ApiException:
        return True  # it answered, with an error status
    except (TransportError, OSError):
        return False


def current_revision(kube: Kube) -> int | None:
    """The cluster's latest resourceVersion as a number (etcd's revision, for kube-apiserver): what a
    restore's card compares with the snapshot's revision."""
    listed = raw(retrying(kube.core.list_namespace)(limit=1, _preload_content=False))
    version = (listed.get("metadata") or {}).get("resourceVersion") or ""
    return int(version) if version.isdigit() else None
