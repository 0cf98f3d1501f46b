"""The lab-only admin API under /_lab/ (same bearer token): what a test or a node shim
does to the world that the Kubernetes API itself cannot (node health, versions, faults).
"""

from __future__ import annotations

import copy

import orjson
from aiohttp import web

from lab import errors, resources
from lab import objects as o
from lab.api import Target
from lab.patch import merge_patch
from lab.versions import parse

routes = web.RouteTableDef()
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


def _lab(request: web.Request):
    return request.app["lab"]


async def _body(request: web.Request) -> dict:
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.bad_request("request body must be a JSON object")
    return data


def _ok(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _node(lab, name: str) -> dict:
    node = lab.store.get("nodes", "", name)
    if node is None:
        raise errors.not_found("nodes", name)
    return node


def _version(value: object, field: str) -> str:
    try:
        parse(str(value))
    except ValueError as exc:
        raise errors.bad_request(f"{field}: {exc}") from exc
    return str(value)


@routes.get("/_lab/counters")
async def counters(request: web.Request) -> web.Response:
    return _ok(_lab(request).counter.snapshot())


@routes.post("/_lab/counters/reset")
async def reset_counters(request: web.Request) -> web.Response:
    _lab(request).counter.reset()
    return _ok({"total": 0, "requests": {}, "by_agent": {}})


@routes.get("/_lab/faults")
async def get_faults(request: web.Request) -> web.Response:
    return _ok(_lab(request).faults.as_dict())


@routes.put("/_lab/faults")
async def set_faults(request: web.Request) -> web.Response:
    lab = _lab(request)
    try:
        lab.faults.configure(await _body(request))
    except (ValueError, TypeError) as exc:
        raise errors.bad_request(str(exc)) from exc
    return _ok(lab.faults.as_dict())


@routes.post("/_lab/reset")
async def reset(request: web.Request) -> web.Response:
    lab = _lab(request)
    await lab.reset_world()
    lab.counter.reset()
    return _ok({"scenario": lab.scenario.name})


@routes.post("/_lab/nodes/{name}/ready")
async def node_ready(request: web.Request) -> web.Response:
    lab = _lab(request)
    body = await _body(request)
    if not isinstance(body.get("ready"), bool):
        raise errors.bad_request('body must be {"ready": true|false}')
    node = copy.deepcopy(_node(lab, request.match_info["name"]))
    o.set_node_ready(node, body["ready"])
    return _ok(lab.store.put("nodes", node))


@routes.post("/_lab/nodes/{name}/versions")
async def node_versions(request: web.Request) -> web.Response:
    """Set the kubelet / kube-proxy version a node reports and its static pods' versions:
    what `kubeadm upgrade` and a kubelet restart change on a real node."""
    lab = _lab(request)
    body = await _body(request)
    name = request.match_info["name"]
    node = copy.deepcopy(_node(lab, name))
    info = node["status"]["nodeInfo"]
    if "kubelet" in body:
        info["kubeletVersion"] = _version(body["kubelet"], "kubelet")
    if "kubeProxy" in body:
        info["kubeProxyVersion"] = _version(body["kubeProxy"], "kubeProxy")
    components = body.get("components") or {}
    unknown = set(components) - set(COMPONENTS)
    if unknown:
        raise errors.bad_request(f"unknown components: {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(COMPONENTS)}")
    for component, version in components.items():
        pod = lab.store.get("pods", "kube-system", f"{component}-{name}")
        if pod is None:
            raise errors.bad_request(f"node {name} runs no {component} static pod")
        tag = str(version) if component == "etcd" else _version(version, component)
        updated = copy.deepcopy(pod)
        image = updated["spec"]["containers"][0]["image"].rsplit(":", 1)[0]
        updated["spec"]["containers"][0]["image"] = f"{image}:{tag}"
        updated["status"]["containerStatuses"][0]["image"] = f"{image}:{tag}"
        lab.store.put("pods", updated)
    return _ok(lab.store.put("nodes", node))


def _target(kind_or_resource: str, namespace: str | None) -> Target:
    resource = resources.BY_NAME.get(kind_or_resource) or resources.BY_KIND.get(kind_or_resource)
    if resource is None:
        raise errors.bad_request(f"unknown resource {kind_or_resource!r}")
    return Target(resource, namespace if resource.namespaced else None)


@routes.post("/_lab/objects")
async def add_objects(request: web.Request) -> web.Response:
    """Create objects given as {"objects": [manifest, ...]} with server defaults."""
    lab = _lab(request)
    body = await _body(request)
    created = []
    for manifest in body.get("objects") or []:
        namespace = (manifest.get("metadata") or {}).get("namespace", "default")
        created.append(lab.api.create(_target(manifest.get("kind", ""), namespace), manifest,
                                      dry_run=False))
    return _ok({"created": [c["metadata"]["name"] for c in created]})


@routes.post("/_lab/patch")
async def patch_object(request: web.Request) -> web.Response:
    """Merge-patch any object, status included (e.g. scale a deployment, fail a pod)."""
    lab = _lab(request)
    body = await _body(request)
    target = _target(str(body.get("resource", "")), body.get("namespace", "default"))
    key_namespace = target.namespace or ""
    current = lab.store.get(target.resource.name, key_namespace, str(body.get("name", "")))
    if current is None:
        raise errors.not_found(target.resource.name, str(body.get("name", "")))
    patched = merge_patch(current, body.get("patch") or {})
    if patched.get("spec") != current.get("spec") and "generation" in current["metadata"]:
        patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
    return _ok(lab.store.put(target.resource.name, patched))


@routes.delete("/_lab/objects/{resource}/{namespace}/{name}")
async def remove_object(request: web.Request) -> web.Response:
    lab = _lab(request)
    target = _target(request.match_info["resource"], request.match_info["namespace"])
    name = request.match_info["name"]
    gone = lab.store.remove(target.resource.name, target.namespace or "", name)
    if gone is None:
        raise errors.not_found(target.resource.name, name)
    return _ok({"deleted": name})
