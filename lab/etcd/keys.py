"""kube-apiserver's etcd keys: `/registry/<resource>/<namespace>/<name>` for namespaced objects,
`/registry/<resource>/<name>` for cluster-scoped ones. Pure."""

from __future__ import annotations

from lab.resources import BY_NAME

PREFIX = "/registry/"
# Where the apiserver's storage differs from the URL's resource name: nodes are still stored
# under their pre-1.0 name (pkg/registry/core/node/storage: "/minions").
STORAGE_NAMES = {"nodes": "minions"}
RESOURCES_BY_STORAGE_NAME = {STORAGE_NAMES.get(name, name): name for name in BY_NAME}


def key_for(resource: str, namespace: str, name: str) -> str:
    storage = STORAGE_NAMES.get(resource, resource)
    if BY_NAME[resource].namespaced:
        return f"{PREFIX}{storage}/{namespace}/{name}"
    return f"{PREFIX}{storage}/{name}"


def parse(key: str) -> tuple[str, str, str] | None:
    """(resource, namespace or "", name) of a key the lab serves; None for any other key."""
    if not key.startswith(PREFIX):
        return None
    storage, _, rest = key[len(PREFIX):].partition("/")
    resource = RESOURCES_BY_STORAGE_NAME.get(storage)
    if resource is None or not rest:
        return None
    if BY_NAME[resource].namespaced:
        namespace, _, name = rest.partition("/")
        return (resource, namespace, name) if namespace and name and "/" not in name else None
    return (resource, "", rest) if "/" not in rest else None


def range_end(prefix: str) -> str:
    """The end of etcd's key range holding every key that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
