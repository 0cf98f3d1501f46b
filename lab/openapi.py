"""The OpenAPI v3 documents kubectl reads before `apply -f` and `create -f` (/openapi/v3 and
/openapi/v3/api/v1, /openapi/v3/apis/GROUP/VERSION).

kubectl validates by asking, per kind, whether the server's PATCH operation for it takes the
`fieldValidation` query parameter; when it does, kubectl leaves validation to the server
(`?fieldValidation=Strict`, lab/api.py). The documents are minimal but true: every path the lab
serves with its verbs and parameters, and schemas with the fields lab/schemas.py lists (what it
calls "any" is an object without properties). They leave out
`application/strategic-merge-patch+json` from the PATCH bodies, so kubectl computes a client-side
apply's patch from its own compiled-in types rather than from these schemas, which lack the
patch merge keys.
"""

from __future__ import annotations

import hashlib
from functools import cache

import orjson

from lab.resources import RESOURCES, Resource
from lab.schemas import ANY, IGNORED, TYPES, FieldType

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
PACKAGES = {"": "io.k8s.api.core.v1.", "apps": "io.k8s.api.apps.v1.", "policy": "io.k8s.api.policy.v1.",
            "rbac.authorization.k8s.io": "io.k8s.api.rbac.v1."}
META_TYPES = ("ObjectMeta", "OwnerReference", "LabelSelector", "LabelSelectorRequirement")
APPS_TYPES = ("Deployment", "DeploymentSpec", "DeploymentStrategy", "RollingUpdateDeployment", "ReplicaSet",
              "DaemonSet", "StatefulSet")
RBAC_TYPES = ("Role", "ClusterRole", "AggregationRule", "PolicyRule", "RoleBinding", "ClusterRoleBinding",
              "Subject", "RoleRef")
QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def schema_name(type_name: str) -> str:
    if type_name in META_TYPES:
        return META + type_name
    if type_name in APPS_TYPES:
        return PACKAGES["apps"] + type_name
    if type_name in RBAC_TYPES:
        return PACKAGES["rbac.authorization.k8s.io"] + type_name
    if type_name == "PodDisruptionBudget":
        return PACKAGES["policy"] + type_name
    return PACKAGES[""] + type_name


def _field_schema(type_: FieldType) -> dict:
    if isinstance(type_, tuple):
        shape, inner = type_
        items = _field_schema(inner)  # type: ignore[arg-type]
        return {"type": "array", "items": items} if shape == "list" else {"type": "object",
                                                                           "additionalProperties": items}
    simple = {
        "string": {"type": "string"}, "int": {"type": "integer", "format": "int64"},
        "int?": {"type": "integer", "format": "int64"}, "bool": {"type": "boolean"},
        "bool?": {"type": "boolean"}, "bytes": {"type": "string", "format": "byte"},
        "time": {"type": "string", "format": "date-time"},
        "intstr": {"x-kubernetes-int-or-string": True},
        "quantity": {"x-kubernetes-int-or-string": True},
        ANY: {"type": "object"}, IGNORED: {"type": "object"},
    }
    if type_ in simple:
        return simple[type_]
    return {"allOf": [{"$ref": f"#/components/schemas/{schema_name(type_)}"}]}


def _components() -> dict:
    schemas: dict[str, dict] = {}
    for type_name, message in TYPES.items():
        properties = {name: _field_schema(type_) for name, (_, type_) in message.items()}
        schema: dict = {"type": "object", "properties": properties}
        resource = next((r for r in RESOURCES if r.kind == type_name), None)
        if resource is not None:
            properties["apiVersion"] = {"type": "string"}
            properties["kind"] = {"type": "string"}
            schema["x-kubernetes-group-version-kind"] = [_gvk(resource)]
        schemas[schema_name(type_name)] = schema
    return schemas


def _gvk(resource: Resource) -> dict:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _operation(resource: Resource, action: str, verb: str, body_types: tuple[str, ...] = ()) -> dict:
    ref = {"$ref": f"#/components/schemas/{schema_name(resource.kind)}"}
    operation: dict = {
        "operationId": f"{verb}{resource.kind}",
        "parameters": [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                       for name in QUERY_PARAMS],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource),
    }
    if body_types:
        operation["requestBody"] = {"content": {t: {"schema": ref} for t in body_types}, "required": True}
    return operation


def _paths(group: str, version: str) -> dict:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths: dict[str, dict] = {}
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        scope = f"{prefix}/namespaces/{{namespace}}/{r.name}" if r.namespaced else f"{prefix}/{r.name}"
        params = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}] \
            if r.namespaced else []
        paths[scope] = {
            "get": _operation(r, "list", "list"),
            "post": _operation(r, "post", "create", ("application/json", "application/yaml")),
            "parameters": params,
        }
        paths[f"{scope}/{{name}}"] = {
            "get": _operation(r, "get", "read"),
            "put": _operation(r, "put", "replace", ("application/json", "application/yaml")),
            "patch": _operation(r, "patch", "patch", ("application/json-patch+json",
                                                        "application/merge-patch+json",
                                                        "application/apply-patch+yaml")),
            "delete": _operation(r, "delete", "delete"),
            "parameters": params + name_param,
        }
    return paths


def group_versions() -> list[tuple[str, str]]:
    return sorted({(r.group, r.version) for r in RESOURCES})


def _path_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def document(group: str, version: str) -> bytes:
    """One group-version's document, encoded (it never changes while the lab runs)."""
    return orjson.dumps({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": _paths(group, version),
        "components": {"schemas": _components()},
    })


def index() -> dict:
    """/openapi/v3: each group-version's document, at a URL whose hash changes with its content."""
    paths = {}
    for group, version in group_versions():
        digest = hashlib.sha512(document(group, version)).hexdigest()[:128].upper()
        key = _path_key(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def lookup(path: str) -> bytes | None:
    """The document at /openapi/v3/<path>, or None."""
    for group, version in group_versions():
        if path == _path_key(group, version):
            return document(group, version)
    return None


V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def v2_document(version: str, as_protobuf: bool) -> bytes:
    """/openapi/v2: a document with no paths nor definitions. kubectl before 1.28 downloads it
    (as gnostic's protobuf Document) before it validates and fails when it is missing; what it
    decides comes from the v3 documents, so an empty v2 one is enough and says nothing untrue."""
    if not as_protobuf:
        return orjson.dumps({"swagger": "2.0", "info": {"title": "Kubernetes", "version": version},
                             "paths": {}, "definitions": {}})

    def field(number: int, payload: bytes) -> bytes:  # a length-delimited field (wire type 2)
        return bytes([number << 3 | 2, len(payload)]) + payload

    info = field(1, b"Kubernetes") + field(2, version.encode())
    return field(1, b"2.0") + field(2, info)
