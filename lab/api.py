"""The Kubernetes API verbs over the lab's store: what kube-apiserver's registry does."""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass

from lab import errors, schemas
from lab import objects as o
from lab.cluster import Cluster
from lab.resources import BY_NAME, NO_SPEC, Resource
from lab.selectors import (
    parse_field_selector,
    parse_label_selector,
    pdb_selects,
)
from lab.store import ALL, Store

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
WITH_TEMPLATE = ("deployments", "replicasets", "statefulsets", "daemonsets")


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str | None  # None: across all namespaces (or cluster-scoped)
    name: str | None = None
    subresource: str | None = None


class Api:
    def __init__(self, store: Store, cluster: Cluster) -> None:
        self.store = store
        self.cluster = cluster
        # The unknown fields of the last write under fieldValidation=Warn: the server sends them as
        # Warning headers (requests are handled one at a time on the event loop).
        self.warnings: list[str] = []

    # -- reads -----------------------------------------------------------------------------

    def get(self, target: Target) -> dict:
        obj = self.store.get(target.resource.name, target.namespace or "", target.name or "")
        if obj is None:
            raise errors.not_found(target.resource.name, target.name or "", target.resource.group)
        return obj

    def list_filter(self, target: Target, label_selector: str | None, field_selector: str | None):
        """The predicate and the index candidates for a list or watch."""
        try:
            by_labels = parse_label_selector(label_selector)
            by_fields, exact = parse_field_selector(target.resource.name, field_selector)
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from exc
        candidates = None
        if target.resource.name == "pods" and "spec.nodeName" in exact:
            candidates = set(self.store.pods_by_node.get(exact["spec.nodeName"], ()))
        if not label_selector and not field_selector:
            return ALL, candidates
        return (lambda obj: by_labels(obj) and by_fields(obj)), candidates

    # -- writes ----------------------------------------------------------------------------

    def create(self, target: Target, body: dict, dry_run: bool, validation: str | None = None) -> dict:
        resource = target.resource
        if not isinstance(body, dict):
            raise errors.bad_request("Object 'Kind' is missing in request body")
        obj = copy.deepcopy(body)
        self.check_fields(resource, obj, validation)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + o.random_suffix(rng=self.cluster.rng)
        name = meta.get("name", "")
        if resource.namespaced:
            namespace = target.namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request")
            meta["namespace"] = namespace
            home = self.store.get("namespaces", "", namespace)
            if home is None:
                raise errors.not_found("namespaces", namespace)
            if home["metadata"].get("deletionTimestamp"):
                qualified = f"{resource.name}.{resource.group}" if resource.group else resource.name
                raise errors.forbidden(
                    f'{qualified} "{name}" is forbidden: unable to create new content in namespace '
                    f"{namespace} because it is being terminated", name, resource.name, resource.group)
        self._validate(resource, obj)
        if self.store.get(resource.name, meta.get("namespace", ""), name) is not None:
            raise errors.already_exists(resource.name, name, resource.group)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        for server_owned in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            meta.pop(server_owned, None)
        if resource.name == "pods":
            obj = o.new_pod(meta, obj.get("spec") or {})
            if obj["spec"].get("nodeName"):
                self.cluster._start_if_possible(obj)
        else:
            o.stamp(obj)
            if resource.name not in NO_SPEC:  # data or rules, not spec and status
                obj.setdefault("spec", {})
            if resource.name == "namespaces":
                obj["spec"].setdefault("finalizers", ["kubernetes"])
                obj["status"] = {"phase": "Active"}
            _normalize(resource, obj)
        if dry_run:
            return obj
        return self.store.put(resource.name, obj)

    def update(self, target: Target, body: dict, dry_run: bool, validation: str | None = None) -> dict:
        current = self.get(target)
        if not isinstance(body, dict):
            raise errors.bad_request("Object 'Kind' is missing in request body")
        body = copy.deepcopy(body)
        self.check_fields(target.resource, body, validation)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != target.name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({target.name})")
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(target.resource.name, target.name or "", target.resource.group)
        return self._replace(target, current, body, dry_run)

    def patch(self, target: Target, content_type: str, body: object, dry_run: bool,
              validation: str | None = None) -> dict:
        from lab.patch import apply_patch

        current = self.get(target)
        patched = apply_patch(copy.deepcopy(current), content_type, body)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch did not produce an object")
        self.check_fields(target.resource, patched, validation, patching=True)
        wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(target.resource.name, target.name or "", target.resource.group)
        return self._replace(target, current, patched, dry_run)

    def _replace(self, target: Target, current: dict, wanted: dict, dry_run: bool) -> dict:
        resource = target.resource
        new = copy.deepcopy(wanted)
        meta = new.setdefault("metadata", {})
        # Identity and server-owned fields cannot change through an update.
        for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "ownerReferences"):
            if field in current["metadata"]:
                if field == "ownerReferences" and field in meta:
                    continue
                meta[field] = current["metadata"][field]
        new["kind"], new["apiVersion"] = resource.kind, resource.api_version
        if target.subresource == "status":
            new = {**copy.deepcopy(current), "status": new.get("status", {})}
        elif resource.name not in NO_SPEC:
            new["status"] = copy.deepcopy(current.get("status", {}))
            if new.get("spec") != current.get("spec") and "generation" in current["metadata"]:
                meta["generation"] = current["metadata"]["generation"] + 1
        _normalize(resource, new)
        self._validate(resource, new)
        if dry_run or new == current:
            return current if new == current else new
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and resource.name not in ("pods", "namespaces"):
            # The last finalizer of an object being deleted is gone: the object goes with it.
            gone = self.store.remove(resource.name, meta.get("namespace", ""), meta["name"])
            if gone is not None:
                meta["resourceVersion"] = gone["metadata"]["resourceVersion"]
            return new
        return self.store.put(resource.name, new)

    def check_fields(self, resource: Resource, obj: object, validation: str | None,
                     patching: bool = False) -> None:
        """Field validation as the request's `fieldValidation` asks: Strict refuses an unknown
        field (400, the strict decoding error), Warn and Ignore drop it (Warn with a warning).
        Without the parameter the lab stores what it gets, as it always has for its own clients."""
        self.warnings = []
        if validation is None or not isinstance(obj, dict):
            return
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"fieldValidation must be one of Ignore, Warn or Strict, not {validation!r}")
        unknown = schemas.unknown_fields(resource.kind, obj, drop=validation != "Strict")
        if not unknown:
            return
        listed = ", ".join(f'unknown field "{path}"' for path in unknown)
        if validation == "Strict":
            # A patch's error names no kind: the patched object is checked, not a decoded body.
            prefix = "" if patching else (f'{resource.kind} in version "{resource.version}" cannot be '
                                          f"handled as a {resource.kind}: ")
            raise errors.bad_request(f"{prefix}strict decoding error: {listed}")
        if validation == "Warn":
            self.warnings = [f'unknown field "{path}"' for path in unknown]

    def _validate(self, resource: Resource, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        causes: list[tuple[str, str]] = []
        if not name:
            causes.append(("metadata.name", "Required value: name or generateName is required"))
        elif not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            causes.append((
                "metadata.name",
                f"Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower "
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ))
        spec = obj.get("spec") or {}
        if resource.name == "nodes":
            for index, taint in enumerate(spec.get("taints") or []):
                effect = taint.get("effect", "")
                if not effect:
                    causes.append((f"spec.taints[{index}].effect", "Required value"))
                elif effect not in TAINT_EFFECTS:
                    causes.append((
                        f"spec.taints[{index}].effect",
                        f'Unsupported value: "{effect}": supported values: "NoSchedule", '
                        '"PreferNoSchedule", "NoExecute"',
                    ))
        template = spec.get("template") if resource.name in WITH_TEMPLATE else None
        pod_spec, where = ((template or {}).get("spec") or {}, "spec.template.spec") if template is not None \
            else (spec, "spec")
        if resource.name == "pods" or template is not None:
            containers = pod_spec.get("containers") or []
            if not containers:
                causes.append((f"{where}.containers", "Required value"))
            for index, container in enumerate(containers):
                for field in ("name", "image"):
                    if not isinstance(container, dict) or not container.get(field):
                        causes.append((f"{where}.containers[{index}].{field}", "Required value"))
        if resource.name in ("deployments", "replicasets", "statefulsets"):
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or replicas < 0:
                causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than "
                               "or equal to 0"))
        if causes:
            raise errors.invalid(resource.kind, name, causes, resource.group)

    def delete(self, target: Target, options: dict, dry_run: bool) -> dict:
        current = self.get(target)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(target.resource.name, target.name or "", target.resource.group)
        if (preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]):
            raise errors.conflict(target.resource.name, target.name or "", target.resource.group)
        if target.resource.name == "pods":
            grace = options.get("gracePeriodSeconds")
            if dry_run:
                return current
            return self.cluster.delete_pod(current, None if grace is None else int(grace))
        if target.resource.name == "namespaces":
            return self._delete_namespace(current, dry_run)
        if current["metadata"].get("finalizers"):
            # Kept, marked for deletion, until whoever owns the finalizers removes them.
            if current["metadata"].get("deletionTimestamp"):
                return current
            doomed = _marked_for_deletion(current)
            return doomed if dry_run else self.store.put(target.resource.name, doomed)
        if dry_run:
            return errors.success(self._details(target, current))
        self.store.remove(target.resource.name, target.namespace or "", target.name or "")
        return errors.success(self._details(target, current))

    def _delete_namespace(self, namespace: dict, dry_run: bool) -> dict:
        """The namespace turns Terminating and the namespace controller deletes what is in it; the
        namespace goes once it is empty (lab/cluster.py finish_namespaces)."""
        if namespace["metadata"].get("deletionTimestamp"):
            return namespace
        doomed = _marked_for_deletion(namespace)
        doomed["status"] = {**doomed.get("status", {}), "phase": "Terminating"}
        if dry_run:
            return doomed
        stored = self.store.put("namespaces", doomed)
        name = namespace["metadata"]["name"]
        for resource in BY_NAME.values():
            if not resource.namespaced:
                continue
            for obj in list(self.store.items(resource.name, name)):
                target = Target(resource, name, obj["metadata"]["name"])
                if obj["metadata"].get("deletionTimestamp") and resource.name != "pods":
                    continue
                self.delete(target, {}, dry_run=False)
        self.cluster.finish_namespaces({name})
        return self.store.get("namespaces", "", name) or stored

    @staticmethod
    def _details(target: Target, obj: dict) -> dict:
        details = {"name": target.name}
        if target.resource.group:
            details["group"] = target.resource.group
        details["kind"] = target.resource.name
        details["uid"] = obj["metadata"]["uid"]
        return details

    # -- eviction --------------------------------------------------------------------------

    def evict(self, target: Target, body: dict, dry_run_query: bool) -> tuple[int, dict]:
        """POST pods/{name}/eviction, following the apiserver's EvictionREST.Create."""
        if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
            raise errors.bad_request(f"not a Eviction object: {type(body).__name__}")
        name = (body.get("metadata") or {}).get("name")
        if name != target.name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        dry_run = dry_run_query or "All" in (options.get("dryRun") or [])
        pod = self.get(Target(BY_NAME["pods"], target.namespace, target.name))
        wanted_uid = (options.get("preconditions") or {}).get("uid")
        if wanted_uid and wanted_uid != pod["metadata"]["uid"]:
            # What the storage layer answers when a client evicts a pod that was replaced.
            message = (f'Operation cannot be fulfilled on pods "{target.name}": Precondition failed: UID in '
                       f'precondition: {wanted_uid}, UID in object meta: {pod["metadata"]["uid"]}')
            raise errors.ApiError(errors.status(409, "Conflict", message, {"name": target.name, "kind": "pods"}))
        phase = pod.get("status", {}).get("phase")
        grace = options.get("gracePeriodSeconds")
        grace = None if grace is None else int(grace)
        # The create handler stamps its 201 into a Status that has no code of its own.
        evicted = {**errors.success(), "code": 201}
        if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
            if not dry_run:
                self.cluster.delete_pod(pod, grace)
            return 201, evicted
        pdbs = [
            pdb for pdb in self.store.items("poddisruptionbudgets", target.namespace)
            if pdb_selects(pdb["spec"].get("selector"), pod["metadata"].get("labels"))
        ]
        if len(pdbs) > 1:
            message = ("This pod has more than one PodDisruptionBudget, which the eviction "
                       "subresource does not support.")
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "code": 500}
            return 500, body
        if pdbs:
            pdb = pdbs[0]
            status = self.cluster.pdb_status(pdb)
            unready_but_enough = (not o.pod_is_ready(pod)
                                  and status["currentHealthy"] >= status["desiredHealthy"] > 0)
            if not unready_but_enough and status["disruptionsAllowed"] == 0:
                message = (f"The disruption budget {pdb['metadata']['name']} needs "
                           f"{status['desiredHealthy']} healthy pods and has "
                           f"{status['currentHealthy']} currently")
                raise errors.too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.", 0,
                    [{"reason": "DisruptionBudget", "message": message}])
        if not dry_run:
            self.cluster.delete_pod(pod, grace)
        return 201, evicted


def _marked_for_deletion(obj: dict) -> dict:
    doomed = copy.deepcopy(obj)
    doomed["metadata"]["deletionTimestamp"] = o.timestamp(o.now())
    doomed["metadata"]["deletionGracePeriodSeconds"] = 0
    return doomed


def _normalize(resource: Resource, obj: dict) -> None:
    """What the server's defaulting and conversion do to a written Secret: stringData is merged
    into data (base64) and never stored; the type defaults to Opaque."""
    if resource.name != "secrets":
        return
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")
