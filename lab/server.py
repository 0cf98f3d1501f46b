"""The lab's HTTPS front: routing, auth, content negotiation, watch streams and faults."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson
from aiohttp import web

from lab import errors, openapi, protobuf, resources, scenario, tables
from lab import objects as o
from lab.api import Api, Target
from lab.apiserver import ApiServerPod
from lab.cluster import Cluster
from lab.etcd.store import EtcdStore, write_all
from lab.faults import Faults, RequestCounter
from lab.machines import spec as machine_spec
from lab.machines.fleet import Fleet
from lab.patch import check_patch_type
from lab.store import Gone, Store, WatchEvent

if TYPE_CHECKING:
    from lab.etcd.client import EtcdClient
    from lab.listener import Listener
    from lab.machines.spec import MachineSpec

PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
JSON = "application/json"
RELOAD_TIMEOUT = 60.0  # a reset of an etcd-backed lab: the control plane rebuilt, etcd started, objects written


@dataclass
class World:
    store: Store
    cluster: Cluster
    api: Api


class Lab:
    """One simulated cluster: its store, controllers, faults and counters, and its machines
    (`machines=True`; they start when the lab serves, lab/cli.py).

    With a control-plane machine the objects are in that machine's etcd (`self.apiserver`,
    lab/apiserver.py); otherwise, and for scenarios with `store: memory`, in memory only.
    """

    def __init__(self, scenario_spec: str, *, time_scale: float = 1.0, token: str | None = None,
                 machines: bool = False):
        self.scenario_spec = scenario_spec
        self.time_scale = time_scale
        self.token = token or secrets.token_urlsafe(24)
        self.faults = Faults()
        self.counter = RequestCounter()
        self.server_address = "127.0.0.1:0"
        self.admin_port = 0  # the admin API's own port (lab/cli.py), 0: only on the API's
        self.scenario = scn = scenario.load(scenario_spec)
        self.fleet: Fleet | None = None
        try:
            if machines:
                self.fleet, self.addresses = Fleet.plan(scn.machines, scn.nodes, scn.version, self,
                                                        scenario.node_address)
            else:
                self.addresses = Fleet.node_addresses(scn.nodes, None, scenario.node_address)
                machine_spec.build(scn.machines, scn.nodes, scn.version, self.addresses)  # checks the keys
        except machine_spec.MachineSpecError as exc:
            raise scenario.ScenarioError(str(exc)) from exc
        self.store: Store
        self.cluster: Cluster
        self.api: Api
        self.etcd_machine = self._etcd_machine()
        if self.fleet is not None:
            self.fleet.run_containers = self.etcd_machine is not None
        self.apiserver: ApiServerPod | None = None  # made when the lab serves (lab/cli.py)
        self._scenario_pending = True  # etcd gets the scenario's objects at the API's first load
        if self.etcd_machine is None:
            self.reset()
        else:
            self.faults.configure(scn.faults)
            self.faults.rng.seed(scn.seed)
            self.install(self._world_over(EtcdStore.offline()))

    def _etcd_machine(self) -> MachineSpec | None:
        """The control-plane machine whose etcd holds the objects; None: they stay in memory."""
        wanted = self.scenario.store
        candidates = [] if self.fleet is None else [
            s for s in self.fleet.specs if s.control_plane and s.kubelet_running]
        if wanted == "memory":
            return None
        if wanted == "etcd" and not candidates:
            raise scenario.ScenarioError("store: etcd needs a control-plane node that is a machine with its "
                                         "kubelet running (its etcd holds the objects)")
        return candidates[0] if candidates else None

    def _world_over(self, store: Store) -> World:
        cluster = Cluster(store, time_scale=self.time_scale, seed=self.scenario.seed)
        return World(store, cluster, Api(store, cluster))

    def install(self, world: World) -> None:
        """Serve `world` from now on, its controllers instead of the old ones (as
        kube-controller-manager starts over when the API comes back). Open watch streams end."""
        if getattr(self, "cluster", None) is not None:
            self.cluster.stop()
        if getattr(self, "store", None) is not None:
            self.store.end_watches()
        self.store, self.cluster, self.api = world.store, world.cluster, world.api

    async def _loaded_from_etcd(self, store: EtcdStore) -> None:
        self.install(self._world_over(store))
        self.cluster.resync()
        if self.fleet is not None:
            await self.fleet.reannounce()  # nodes and mirror pods as the machines are now

    def _write_scenario(self, client: EtcdClient) -> None:
        """Before a load: the scenario's objects into etcd, at the first start and after a reset."""
        if not self._scenario_pending:
            return
        staging = self._build_world()
        staging.cluster.stop()
        write_all(client, staging.store)
        self._scenario_pending = False

    def serve_from_etcd(self, listener: Listener) -> ApiServerPod:
        """The API as the etcd machine's kube-apiserver static pod; it starts when that machine's
        kubelet finds the manifest (static_pods_seen)."""
        machine = self.etcd_machine
        assert machine is not None and self.fleet is not None

        def root() -> Path | None:
            running = self.fleet.machine(machine.name)
            return running.running.root if running is not None and running.running is not None else None

        self.apiserver = ApiServerPod(listener, machine.address, root, self._loaded_from_etcd,
                                      lambda: self.install(self._world_over(EtcdStore.offline())),
                                      self._write_scenario)
        return self.apiserver

    def static_pods_seen(self, machine: str, manifests: dict[str, dict], root: Path | None) -> None:
        if self.apiserver is not None and self.etcd_machine is not None and machine == self.etcd_machine.name:
            self.apiserver.seen(manifests if root is not None else {})

    def reset(self) -> None:
        """Rebuild the cluster from the scenario in memory (also what POST /_lab/reset does)."""
        self.install(self._build_world())
        self.faults.configure(self.scenario.faults)
        self.faults.rng.seed(self.scenario.seed)

    def _build_world(self) -> World:
        """The scenario's objects, reconciled, in a store of their own."""
        world = self._world_over(Store())
        self._populate(world)
        return world

    def _populate(self, world: World) -> None:
        scn = self.scenario
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            world.store.put("namespaces", o.namespace(name))
        node_info = {} if self.fleet is None else {
            s.name: {"osImage": s.image.pretty_name, "kernelVersion": s.kernel} for s in self.fleet.specs}
        kubeadm_config = None
        for node in scenario.build_nodes(scn, self.addresses, node_info):
            world.store.put("nodes", node)
            spec = next(n for n in scn.nodes if n["name"] == node["metadata"]["name"])
            if spec.get("controlPlane"):
                for pod in scenario.static_pods(node, spec.get("version", scn.version)):
                    world.store.put("pods", pod)
                if kubeadm_config is None:
                    kubeadm_config = scenario.kubeadm_config(spec.get("version", scn.version),
                                                             f"{o.node_address(node)}:6443")
        if kubeadm_config is not None:
            world.api.create(Target(resources.BY_NAME["configmaps"], "kube-system"), kubeadm_config, dry_run=False)
        for manifest in scn.objects:
            kind = manifest.get("kind")
            resource = resources.BY_KIND.get(kind)
            if resource is None:
                raise scenario.ScenarioError(f"scenario object of unknown kind {kind!r}")
            namespace = (manifest.get("metadata") or {}).get("namespace", "default")
            if resource.namespaced and world.store.get("namespaces", "", namespace) is None:
                world.store.put("namespaces", o.namespace(namespace))
            target = Target(resource, namespace if resource.namespaced else None)
            try:
                world.api.create(target, manifest, dry_run=False)
            except errors.ApiError as exc:
                raise scenario.ScenarioError(f"scenario object {kind}: {exc}") from exc
        world.cluster.reconcile()

    async def reset_world(self) -> None:
        """The cluster and its machines as the scenario describes them (POST /_lab/reset)."""
        if self.apiserver is None:
            self.reset()
            if self.fleet is not None:
                await self.fleet.reset()
            return
        self.faults.configure(self.scenario.faults)
        self.faults.rng.seed(self.scenario.seed)

        async def rebuild() -> None:
            self._scenario_pending = True
            if self.fleet is not None:
                await self.fleet.reset()

        await self.apiserver.reload(rebuild, RELOAD_TIMEOUT)

    def server_version(self) -> str:
        """The version of the first control-plane node's kube-apiserver static pod."""
        for pod in self.store.items("pods", "kube-system"):
            if pod["metadata"].get("labels", {}).get("component") == "kube-apiserver":
                return pod["spec"]["containers"][0]["image"].rsplit(":", 1)[-1]
        return self.scenario.version


# -- request parsing -------------------------------------------------------------------------


def parse_target(path: str) -> Target | None:
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if (len(rest) >= 3 and rest[0] == "namespaces"
            and (group, version, rest[2]) in resources.BY_PATH):
        namespace, rest = rest[1], rest[2:]
    resource = resources.BY_PATH.get((group, version, rest[0]))
    if resource is None or len(rest) > 3:
        return None
    if namespace is not None and not resource.namespaced:
        return None
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    if resource.name == "namespaces" and name is not None:
        return Target(resource, None, name, sub)
    if name is not None and resource.namespaced and namespace is None:
        return None  # a namespaced object needs its namespace in the path
    return Target(resource, namespace, name, sub)


def verb_of(method: str, target: Target, query: dict) -> str:
    if method == "GET":
        if query.get("watch") in ("1", "true"):
            return "watch"
        return "get" if target.name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower())


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def dump(body: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON,
                        headers=headers)


async def read_json(request: web.Request) -> object:
    raw = await request.read()
    if not raw:
        return {}
    if request.content_type == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode_object(raw)
        except protobuf.Undecodable as exc:
            raise errors.unsupported_body(str(exc)) from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if request.content_type == "application/apply-patch+yaml":
            import yaml

            with contextlib.suppress(yaml.YAMLError):
                return yaml.safe_load(raw)
        raise errors.bad_request(
            f"couldn't get version/kind; json parse error: {exc.args[0] if exc.args else exc}"
        ) from exc


# -- the application -------------------------------------------------------------------------


def build_app(lab: Lab) -> web.Application:
    app = web.Application(middlewares=[_errors, _auth, _faults], client_max_size=64 * 1024**2)
    app["lab"] = lab
    from lab.admin import routes as admin_routes
    from lab.machines.admin import routes as machine_routes

    app.add_routes(admin_routes)
    app.add_routes(machine_routes)
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    lab: Lab = request.app["lab"]
    if not request.path.startswith("/_lab/"):
        lab.counter.count(request.method, request.path, request.headers.get("User-Agent", ""))
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return dump(exc.status, exc.code, exc.headers)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    lab: Lab = request.app["lab"]
    if lab.admin_port and not request.path.startswith("/_lab/") and _local_port(request) == lab.admin_port:
        raise errors.path_not_found()  # the admin port serves the admin API only
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), lab.token):
            raise errors.unauthorized()
    elif request.path not in PUBLIC_PATHS:
        raise errors.unauthorized()
    return await handler(request)


def _local_port(request: web.Request) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return sockname[1] if sockname else 0


@web.middleware
async def _faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    lab: Lab = request.app["lab"]
    if request.path.startswith("/_lab/"):
        return await handler(request)
    if lab.faults.latency_ms:
        await asyncio.sleep(lab.faults.latency_ms / 1000)
    target = parse_target(request.path)
    if target is not None:
        resource = target.resource.name + (f"/{target.subresource}" if target.subresource else "")
        rule = lab.faults.pick(verb_of(request.method, target, dict(request.query)), resource)
        if rule is not None:
            if rule.error == "drop":
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("lab fault: connection dropped")
            code = int(rule.error)
            headers = {"Retry-After": str(rule.retry_after)} if code in (429, 503) else {}
            reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}[code]
            message = {
                429: "the server has received too many requests and has asked us to try again "
                     "later",
                500: "Internal error occurred: lab fault injection",
                503: "the server is currently unable to handle the request",
            }[code]
            details = {"retryAfterSeconds": rule.retry_after} if headers else {}
            return dump(errors.status(code, reason, message, details), code, headers)
    return await handler(request)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    lab: Lab = request.app["lab"]
    path = request.path.rstrip("/") or "/"
    if path == "/version":
        version = lab.server_version()
        major, minor, _ = version.lstrip("v").split(".", 2)
        return dump({
            "major": major, "minor": minor, "gitVersion": version,
            "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2020-08-26T14:23:04Z",
            "goVersion": "go1.15", "compiler": "gc", "platform": "linux/amd64",
        })
    if path in ("/healthz", "/livez", "/readyz"):
        return web.Response(text="ok")
    if path == "/api":
        return dump(resources.api_versions(lab.server_address))
    if path == "/apis":
        return dump(resources.api_group_list())
    if path in ("/openapi/v2", "/swagger-2.0.0.pb-v1"):
        as_protobuf = openapi.V2_PROTOBUF in request.headers.get("Accept", "") or path != "/openapi/v2"
        body = openapi.v2_document(lab.server_version(), as_protobuf)
        return web.Response(body=body, content_type="application/octet-stream" if as_protobuf else JSON)
    if path == "/openapi/v3":
        return dump(openapi.index())
    if path.startswith("/openapi/v3/"):
        document = openapi.lookup(path[len("/openapi/v3/"):])
        if document is None:
            raise errors.path_not_found()
        return web.Response(body=document, content_type=JSON)
    if path == "/api/v1":
        return dump(resources.resource_list("", "v1"))
    parts = path.strip("/").split("/")
    if parts[0] == "apis" and len(parts) == 2:
        for group in resources.api_group_list()["groups"]:
            if group["name"] == parts[1]:
                return dump({"kind": "APIGroup", "apiVersion": "v1", **group})
        raise errors.path_not_found()
    if parts[0] == "apis" and len(parts) == 3 and resources.group_exists(parts[1], parts[2]):
        return dump(resources.resource_list(parts[1], parts[2]))
    target = parse_target(path)
    if target is None:
        raise errors.path_not_found()
    return await _serve(request, lab, target)


async def _serve(request: web.Request, lab: Lab, target: Target) -> web.StreamResponse:
    query = request.query
    verb = verb_of(request.method, target, dict(query))
    dry_run = query.get("dryRun") == "All"
    api = lab.api
    if target.subresource not in (None, "status", "eviction"):
        raise errors.path_not_found()
    if target.subresource == "eviction":
        if verb != "create" or target.resource.name != "pods":
            raise errors.method_not_allowed()
        code, body = api.evict(target, await read_json(request), dry_run)
        return dump(body, code)
    if verb == "get":
        obj = api.get(target)
        if wants_table(request):
            return dump(tables.table(target.resource.name, [obj],
                                     {"resourceVersion": obj["metadata"]["resourceVersion"]}))
        return dump(obj)
    if verb == "list":
        return _list(request, lab, target)
    if verb == "watch":
        return await _watch(request, lab, target)
    validation = query.get("fieldValidation")
    if verb == "create":
        if target.name is not None:
            raise errors.method_not_allowed()
        created = api.create(target, await read_json(request), dry_run, validation)
        return dump(created, 201, _warnings(api))
    if target.name is None:
        raise errors.method_not_allowed()
    if verb == "update":
        return dump(api.update(target, await read_json(request), dry_run, validation), headers=_warnings(api))
    if verb == "patch":
        check_patch_type(request.headers.get("Content-Type", ""))
        body = await read_json(request)
        patched = api.patch(target, request.headers.get("Content-Type", ""), body, dry_run, validation)
        return dump(patched, headers=_warnings(api))
    if verb == "delete":
        options = await read_json(request) if request.can_read_body else {}
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        return dump(api.delete(target, options, dry_run))
    raise errors.method_not_allowed()


def _warnings(api: Api) -> dict | None:
    """fieldValidation=Warn's unknown fields as the apiserver sends them: one Warning header each."""
    if not api.warnings:
        return None
    from multidict import CIMultiDict

    headers: CIMultiDict = CIMultiDict()
    for warning in api.warnings:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        headers.add("Warning", f'299 - "{escaped}"')
    return headers  # type: ignore[return-value]


def _int_param(query, name: str) -> int:
    value = query.get(name) or "0"
    try:
        return int(value)
    except ValueError as exc:
        raise errors.bad_request(f"invalid {name}: {value!r}") from exc


def _list(request: web.Request, lab: Lab, target: Target) -> web.Response:
    query = request.query
    accepts, candidates = lab.api.list_filter(
        target, query.get("labelSelector"), query.get("fieldSelector"))
    try:
        keys, token, remaining = lab.store.page(
            target.resource.name, target.namespace, accepts, _int_param(query, "limit"),
            query.get("continue"), candidates)
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from exc
    meta: dict = {"resourceVersion": str(lab.store.rv)}
    if token:
        meta["continue"] = token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    table = lab.store.table(target.resource.name)
    if wants_table(request):
        include = query.get("includeObject") or "Metadata"
        if include not in tables.INCLUDE_OBJECT:
            raise errors.bad_request(f"includeObject must be one of {', '.join(tables.INCLUDE_OBJECT)}, "
                                     f"not {include!r}")
        return dump(tables.table(target.resource.name, [table.objects[k] for k in keys], meta, include_object=include))
    head = orjson.dumps({"kind": target.resource.list_kind,
                         "apiVersion": target.resource.api_version, "metadata": meta})
    body = head[:-1] + b',"items":[' + b",".join(table.encode(k) for k in keys) + b"]}"
    return web.Response(body=body, content_type=JSON)


async def _watch(request: web.Request, lab: Lab, target: Target) -> web.StreamResponse:
    query = request.query
    accepts, _ = lab.api.list_filter(target, query.get("labelSelector"),
                                     query.get("fieldSelector"))
    namespace = target.namespace
    store = lab.store
    as_table = wants_table(request)
    timeout = _int_param(query, "timeoutSeconds") or 1800
    deadline = time.monotonic() + timeout

    def visible(obj: dict | None) -> bool:
        if obj is None:
            return False
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        return accepts(obj)

    response = web.StreamResponse(headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"})
    await response.prepare(request)
    watcher = store.watch(target.resource.name, accepts)
    first = [True]

    async def send(kind: str, obj: dict) -> None:
        if as_table:
            obj = tables.table(target.resource.name, [obj],
                               {"resourceVersion": obj["metadata"]["resourceVersion"]},
                               with_columns=first[0])
            first[0] = False
        await response.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")

    def translate(event: WatchEvent) -> str | None:
        now_visible = event.type != "DELETED" and visible(event.obj)
        was_visible = visible(event.old)
        if event.type == "DELETED":
            return "DELETED" if visible(event.obj) else None
        if now_visible and was_visible:
            return "MODIFIED"
        if now_visible:
            return "ADDED"
        if was_visible:
            return "DELETED"
        return None

    try:
        rv_param = query.get("resourceVersion", "")
        last_rv = store.rv
        if rv_param in ("", "0"):
            for obj in list(store.table(target.resource.name).objects.values()):
                if visible(obj):
                    await send("ADDED", obj)
        else:
            try:
                since = int(rv_param)
                backlog = store.events_since(target.resource.name, since)
            except (ValueError, Gone) as exc:
                gone = errors.status(410, "Expired", str(exc) if isinstance(exc, Gone)
                                     else f"invalid resourceVersion {rv_param!r}")
                await response.write(orjson.dumps({"type": "ERROR", "object": gone}) + b"\n")
                return response
            for event in backlog:
                kind = translate(event)
                if kind:
                    await send(kind, event.obj)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or request.transport is None or request.transport.is_closing():
                break
            try:
                event = await asyncio.wait_for(watcher.queue.get(), min(remaining, 1.0))
            except TimeoutError:
                continue
            if event is None:
                break
            if event.rv <= last_rv and rv_param in ("", "0"):
                continue
            kind = translate(event)
            if kind:
                await send(kind, event.obj)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unwatch(target.resource.name, watcher)
    return response
