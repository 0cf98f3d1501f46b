"""The resources the lab serves and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]


@dataclass(frozen=True)
class Resource:
    name: str  # plural, as in the URL
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


RESOURCES = [
    Resource("namespaces", "Namespace", "", "v1", False, ("ns",), "namespace"),
    Resource("nodes", "Node", "", "v1", False, ("no",), "node"),
    Resource("pods", "Pod", "", "v1", True, ("po",), "pod", ("all",)),
    Resource("deployments", "Deployment", "apps", "v1", True, ("deploy",), "deployment", ("all",)),
    Resource("replicasets", "ReplicaSet", "apps", "v1", True, ("rs",), "replicaset", ("all",)),
    Resource("daemonsets", "DaemonSet", "apps", "v1", True, ("ds",), "daemonset", ("all",)),
    Resource("statefulsets", "StatefulSet", "apps", "v1", True, ("sts",), "statefulset", ("all",)),
    Resource("configmaps", "ConfigMap", "", "v1", True, ("cm",), "configmap"),
    Resource("poddisruptionbudgets", "PodDisruptionBudget", "policy", "v1", True, ("pdb",),
             "poddisruptionbudget"),
    # Stored and served as written (no controller acts on them): what an install manifest holds.
    Resource("secrets", "Secret", "", "v1", True, (), "secret"),
    Resource("serviceaccounts", "ServiceAccount", "", "v1", True, ("sa",), "serviceaccount"),
    Resource("services", "Service", "", "v1", True, ("svc",), "service", ("all",)),
    Resource("persistentvolumeclaims", "PersistentVolumeClaim", "", "v1", True, ("pvc",),
             "persistentvolumeclaim"),
    Resource("roles", "Role", "rbac.authorization.k8s.io", "v1", True, (), "role"),
    Resource("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", "v1", True, (), "rolebinding"),
    Resource("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", "v1", False, (), "clusterrole"),
    Resource("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", False, (),
             "clusterrolebinding"),
]
# Kinds whose objects have no spec/status pair: the server adds no empty `spec` to them.
NO_SPEC = frozenset({"configmaps", "secrets", "serviceaccounts", "roles", "rolebindings", "clusterroles",
                     "clusterrolebindings"})
# Kinds with no status subresource.
NO_STATUS = NO_SPEC
BY_PATH: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.name): r for r in RESOURCES
}
BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}


def api_versions(server_address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict:
    groups = sorted({r.group for r in RESOURCES if r.group})
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": f"{group}/v1", "version": "v1"},
            }
            for group in groups
        ],
    }


def group_exists(group: str, version: str) -> bool:
    return any(r.group == group and r.version == version for r in RESOURCES)


def resource_list(group: str, version: str) -> dict:
    entries: list[dict] = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        entry = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": READ + WRITE,
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        if r.name in NO_STATUS:
            continue
        entries.append({
            "name": f"{r.name}/status",
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        })
        if r.name == "pods":
            # Without this entry kubectl drain silently falls back to plain deletes.
            entries.append({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": True,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            })
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
