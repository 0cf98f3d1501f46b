"""The fields of the kinds the lab serves: what strict field validation knows, what the OpenAPI v3
documents describe and how a protobuf body maps to JSON (lab/protobuf.py).

A message type is {json name: (protobuf field number, field type)}. A field type is one of
"string", "int", "int?" (a pointer: zero is a value, kept), "bool", "bool?", "bytes" (base64 in
JSON), "time", "intstr", "quantity", "any" (an object whose fields are not described here:
neither checked nor decodable from protobuf), "ignored" (a status: read as empty), the name of another message type, or
("list", type) / ("map", type).

Every message listed has ALL of its fields (as of Kubernetes 1.33), so strict validation never
rejects a field a real server accepts; what is "any" is not checked beneath (a real server would
catch an unknown field there, the lab does not). Field numbers are those of the API's
generated.proto.
"""

from __future__ import annotations

FieldType = str | tuple[str, object]
Message = dict[str, tuple[int, FieldType]]

ANY = "any"
IGNORED = "ignored"  # status on a write: the server keeps its own, so its fields are neither read nor checked

TYPES: dict[str, Message] = {
    "ObjectMeta": {
        "name": (1, "string"), "generateName": (2, "string"), "namespace": (3, "string"),
        "selfLink": (4, "string"), "uid": (5, "string"), "resourceVersion": (6, "string"),
        "generation": (7, "int"), "creationTimestamp": (8, "time"), "deletionTimestamp": (9, "time"),
        "deletionGracePeriodSeconds": (10, "int?"), "labels": (11, ("map", "string")),
        "annotations": (12, ("map", "string")), "ownerReferences": (13, ("list", "OwnerReference")),
        "finalizers": (14, ("list", "string")), "managedFields": (17, ("list", ANY)),
    },
    "OwnerReference": {
        "kind": (1, "string"), "name": (3, "string"), "uid": (4, "string"), "apiVersion": (5, "string"),
        "controller": (6, "bool?"), "blockOwnerDeletion": (7, "bool?"),
    },
    "LabelSelector": {
        "matchLabels": (1, ("map", "string")),
        "matchExpressions": (2, ("list", "LabelSelectorRequirement")),
    },
    "LabelSelectorRequirement": {
        "key": (1, "string"), "operator": (2, "string"), "values": (3, ("list", "string")),
    },
    "ObjectReference": {
        "kind": (1, "string"), "namespace": (2, "string"), "name": (3, "string"), "uid": (4, "string"),
        "apiVersion": (5, "string"), "resourceVersion": (6, "string"), "fieldPath": (7, "string"),
    },
    "LocalObjectReference": {"name": (1, "string")},
    # -- core/v1 ------------------------------------------------------------------------------
    "Namespace": {"metadata": (1, "ObjectMeta"), "spec": (2, "NamespaceSpec"), "status": (3, IGNORED)},
    "NamespaceSpec": {"finalizers": (1, ("list", "string"))},
    "ConfigMap": {
        "metadata": (1, "ObjectMeta"), "data": (2, ("map", "string")), "binaryData": (3, ("map", "bytes")),
        "immutable": (4, "bool?"),
    },
    "Secret": {
        "metadata": (1, "ObjectMeta"), "data": (2, ("map", "bytes")), "type": (3, "string"),
        "stringData": (4, ("map", "string")), "immutable": (5, "bool?"),
    },
    "ServiceAccount": {
        "metadata": (1, "ObjectMeta"), "secrets": (2, ("list", "ObjectReference")),
        "imagePullSecrets": (3, ("list", "LocalObjectReference")), "automountServiceAccountToken": (4, "bool?"),
    },
    "Service": {"metadata": (1, "ObjectMeta"), "spec": (2, "ServiceSpec"), "status": (3, IGNORED)},
    "ServiceSpec": {
        "ports": (1, ("list", "ServicePort")), "selector": (2, ("map", "string")), "clusterIP": (3, "string"),
        "type": (4, "string"), "externalIPs": (5, ("list", "string")), "sessionAffinity": (7, "string"),
        "loadBalancerIP": (8, "string"), "loadBalancerSourceRanges": (9, ("list", "string")),
        "externalName": (10, "string"), "externalTrafficPolicy": (11, "string"),
        "healthCheckNodePort": (12, "int"), "publishNotReadyAddresses": (13, "bool"),
        "sessionAffinityConfig": (14, ANY), "ipFamilyPolicy": (17, "string"),
        "clusterIPs": (18, ("list", "string")), "ipFamilies": (19, ("list", "string")),
        "allocateLoadBalancerNodePorts": (20, "bool?"), "loadBalancerClass": (21, "string"),
        "internalTrafficPolicy": (22, "string"), "trafficDistribution": (23, "string"),
    },
    "ServicePort": {
        "name": (1, "string"), "protocol": (2, "string"), "port": (3, "int"), "targetPort": (4, "intstr"),
        "nodePort": (5, "int"), "appProtocol": (6, "string"),
    },
    "PersistentVolumeClaim": {"metadata": (1, "ObjectMeta"), "spec": (2, "PersistentVolumeClaimSpec"),
                              "status": (3, IGNORED)},
    "PersistentVolumeClaimSpec": {
        "accessModes": (1, ("list", "string")), "resources": (2, "ResourceRequirements"),
        "volumeName": (3, "string"), "selector": (4, "LabelSelector"), "storageClassName": (5, "string"),
        "volumeMode": (6, "string"), "dataSource": (7, ANY), "dataSourceRef": (8, ANY),
        "volumeAttributesClassName": (9, "string"),
    },
    "Pod": {"metadata": (1, "ObjectMeta"), "spec": (2, "PodSpec"), "status": (3, IGNORED)},
    "PodTemplateSpec": {"metadata": (1, "ObjectMeta"), "spec": (2, "PodSpec")},
    "PodSpec": {
        "volumes": (1, ("list", ANY)), "containers": (2, ("list", "Container")), "restartPolicy": (3, "string"),
        "terminationGracePeriodSeconds": (4, "int?"), "activeDeadlineSeconds": (5, "int?"),
        "dnsPolicy": (6, "string"), "nodeSelector": (7, ("map", "string")), "serviceAccountName": (8, "string"),
        "serviceAccount": (9, "string"), "nodeName": (10, "string"), "hostNetwork": (11, "bool"),
        "hostPID": (12, "bool"), "hostIPC": (13, "bool"), "securityContext": (14, ANY),
        "imagePullSecrets": (15, ("list", "LocalObjectReference")), "hostname": (16, "string"),
        "subdomain": (17, "string"), "affinity": (18, ANY), "schedulerName": (19, "string"),
        "initContainers": (20, ("list", "Container")), "automountServiceAccountToken": (21, "bool?"),
        "tolerations": (22, ("list", ANY)), "hostAliases": (23, ("list", ANY)),
        "priorityClassName": (24, "string"), "priority": (25, "int?"), "dnsConfig": (26, ANY),
        "shareProcessNamespace": (27, "bool?"), "readinessGates": (28, ("list", ANY)),
        "runtimeClassName": (29, "string"), "enableServiceLinks": (30, "bool?"),
        "preemptionPolicy": (31, "string"), "overhead": (32, ("map", "quantity")),
        "topologySpreadConstraints": (33, ("list", ANY)), "ephemeralContainers": (34, ("list", ANY)),
        "setHostnameAsFQDN": (35, "bool?"), "os": (36, ANY), "hostUsers": (37, "bool?"),
        "schedulingGates": (38, ("list", ANY)), "resourceClaims": (39, ("list", ANY)),
        "resources": (40, "ResourceRequirements"), "hostnameOverride": (41, "string"),
    },
    "Container": {
        "name": (1, "string"), "image": (2, "string"), "command": (3, ("list", "string")),
        "args": (4, ("list", "string")), "workingDir": (5, "string"), "ports": (6, ("list", "ContainerPort")),
        "env": (7, ("list", "EnvVar")), "resources": (8, "ResourceRequirements"),
        "volumeMounts": (9, ("list", ANY)), "livenessProbe": (10, ANY), "readinessProbe": (11, ANY),
        "lifecycle": (12, ANY), "terminationMessagePath": (13, "string"), "imagePullPolicy": (14, "string"),
        "securityContext": (15, ANY), "stdin": (16, "bool"), "stdinOnce": (17, "bool"), "tty": (18, "bool"),
        "envFrom": (19, ("list", ANY)), "terminationMessagePolicy": (20, "string"),
        "volumeDevices": (21, ("list", ANY)), "startupProbe": (22, ANY), "resizePolicy": (23, ("list", ANY)),
        "restartPolicy": (24, "string"), "restartPolicyRules": (25, ("list", ANY)),
    },
    "ContainerPort": {
        "name": (1, "string"), "hostPort": (2, "int"), "containerPort": (3, "int"), "protocol": (4, "string"),
        "hostIP": (5, "string"),
    },
    "EnvVar": {"name": (1, "string"), "value": (2, "string"), "valueFrom": (3, ANY)},
    "ResourceRequirements": {
        "limits": (1, ("map", "quantity")), "requests": (2, ("map", "quantity")), "claims": (3, ("list", ANY)),
    },
    # -- apps/v1 ------------------------------------------------------------------------------
    "Deployment": {"metadata": (1, "ObjectMeta"), "spec": (2, "DeploymentSpec"), "status": (3, IGNORED)},
    "DeploymentSpec": {
        "replicas": (1, "int?"), "selector": (2, "LabelSelector"), "template": (3, "PodTemplateSpec"),
        "strategy": (4, "DeploymentStrategy"), "minReadySeconds": (5, "int"),
        "revisionHistoryLimit": (6, "int?"), "paused": (7, "bool"), "progressDeadlineSeconds": (9, "int?"),
    },
    "DeploymentStrategy": {"type": (1, "string"), "rollingUpdate": (2, "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {"maxUnavailable": (1, "intstr"), "maxSurge": (2, "intstr")},
    # -- rbac.authorization.k8s.io/v1 ---------------------------------------------------------
    "Role": {"metadata": (1, "ObjectMeta"), "rules": (2, ("list", "PolicyRule"))},
    "ClusterRole": {"metadata": (1, "ObjectMeta"), "rules": (2, ("list", "PolicyRule")),
                    "aggregationRule": (3, "AggregationRule")},
    "AggregationRule": {"clusterRoleSelectors": (1, ("list", "LabelSelector"))},
    "PolicyRule": {
        "verbs": (1, ("list", "string")), "apiGroups": (2, ("list", "string")),
        "resources": (3, ("list", "string")), "resourceNames": (4, ("list", "string")),
        "nonResourceURLs": (5, ("list", "string")),
    },
    "RoleBinding": {"metadata": (1, "ObjectMeta"), "subjects": (2, ("list", "Subject")),
                    "roleRef": (3, "RoleRef")},
    "ClusterRoleBinding": {"metadata": (1, "ObjectMeta"), "subjects": (2, ("list", "Subject")),
                           "roleRef": (3, "RoleRef")},
    "Subject": {"kind": (1, "string"), "apiGroup": (2, "string"), "name": (3, "string"),
                "namespace": (4, "string")},
    "RoleRef": {"apiGroup": (1, "string"), "kind": (2, "string"), "name": (3, "string")},
}

# The other served kinds: their metadata is checked, their spec is not described here.
for _kind in ("Node", "ReplicaSet", "DaemonSet", "StatefulSet", "PodDisruptionBudget"):
    TYPES.setdefault(_kind, {"metadata": (1, "ObjectMeta"), "spec": (2, ANY), "status": (3, IGNORED)})


def unknown_fields(kind: str, obj: object, drop: bool = False) -> list[str]:
    """The paths of the fields of `obj` (a `kind` object as JSON) that the kind does not have, in
    the form a real server's strict decoding error names them (`spec.foo`,
    `spec.template.spec.containers[0].imagee`). `drop`: remove them from `obj`, as a server's
    decoding does when it does not refuse them."""
    if kind not in TYPES or not isinstance(obj, dict):
        return []
    found: list[str] = []
    for key in list(obj):
        if key in ("apiVersion", "kind"):
            continue
        if key not in TYPES[kind]:
            found.append(key)
            if drop:
                del obj[key]
        else:
            _walk(TYPES[kind][key][1], obj[key], key, found, drop)
    return found


def _walk(type_: FieldType, value: object, path: str, found: list[str], drop: bool = False) -> None:
    if isinstance(type_, tuple):
        shape, inner = type_
        if shape == "list" and isinstance(value, list):
            for index, item in enumerate(value):
                _walk(inner, item, f"{path}[{index}]", found, drop)  # type: ignore[arg-type]
        elif shape == "map" and isinstance(value, dict):
            for key, item in value.items():
                _walk(inner, item, f"{path}.{key}", found, drop)  # type: ignore[arg-type]
        return
    message = TYPES.get(type_)
    if message is None or not isinstance(value, dict):
        return
    for key in list(value):
        where = f"{path}.{key}"
        if key not in message:
            found.append(where)
            if drop:
                del value[key]
        else:
            _walk(message[key][1], value[key], where, found, drop)
