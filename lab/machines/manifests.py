"""kubeadm's static pod manifests (/etc/kubernetes/manifests) and the mirror pods a kubelet
makes of them in the API. Pure.

The image tags carry the versions, as kubeadm writes them; the mirror pod's
`kubernetes.io/config.hash` changes when the manifest does (kubeadm upgrade waits for that).
"""

from __future__ import annotations

import hashlib

import orjson
import yaml

from lab import objects as o
from lab.machines.programs.releases import ETCD_VERSIONS as ETCD_VERSIONS  # kubeadm's, shared with its machines
from lab.machines.programs.releases import etcd_version, registry
from lab.versions import parse

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
MANIFESTS_DIR = "/etc/kubernetes/manifests"
SYSTEM_NODE_CRITICAL = 2000001000


def _host_path(name: str, path: str, kind: str = "DirectoryOrCreate") -> dict:
    return {"hostPath": {"path": path, "type": kind}, "name": name}


def _pod(component: str, image: str, command: list[str], mounts: list[tuple[str, str, bool]], volumes: list[dict],
         annotations: dict | None = None, probe_port: int = 0, probe_scheme: str = "HTTPS") -> dict:
    container: dict = {
        "command": command, "image": image, "imagePullPolicy": "IfNotPresent", "name": component,
        "resources": {"requests": {"cpu": "100m" if component == "etcd" else "250m" if component == "kube-apiserver"
                                   else "200m" if component == "kube-controller-manager" else "100m"}},
        "volumeMounts": [{"mountPath": path, "name": name, **({"readOnly": True} if ro else {})}
                         for name, path, ro in mounts],
    }
    if probe_port:
        container["livenessProbe"] = {
            "failureThreshold": 8, "httpGet": {"host": "127.0.0.1", "path": "/healthz" if component != "etcd"
                                               else "/health", "port": probe_port, "scheme": probe_scheme},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15}
    metadata: dict = {"creationTimestamp": None, "labels": {"component": component, "tier": "control-plane"},
                      "name": component, "namespace": "kube-system"}
    if annotations:
        metadata = {"annotations": annotations, **metadata}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container], "hostNetwork": True, "priorityClassName": "system-node-critical",
                     "volumes": volumes},
            "status": {}}


def static_pod_manifests(node: str, address: str, version: str) -> dict[str, dict]:
    """{file name: manifest} of a kubeadm control plane at `version`."""
    minor = parse(version)[1]
    images = registry(version)
    pki = "/etc/kubernetes/pki"
    ca_volumes = [_host_path("ca-certs", "/etc/ssl/certs"),
                  _host_path("etc-ca-certificates", "/etc/ca-certificates")]
    ca_mounts = [("ca-certs", "/etc/ssl/certs", True), ("etc-ca-certificates", "/etc/ca-certificates", True)]
    etcd = _pod("etcd", f"{images}/etcd:{etcd_version(version)}", [
        "etcd", f"--advertise-client-urls=https://{address}:2379", f"--cert-file={pki}/etcd/server.crt",
        "--client-cert-auth=true", "--data-dir=/var/lib/etcd", f"--initial-advertise-peer-urls=https://{address}:2380",
        f"--initial-cluster={node}=https://{address}:2380", f"--key-file={pki}/etcd/server.key",
        f"--listen-client-urls=https://127.0.0.1:2379,https://{address}:2379",
        "--listen-metrics-urls=http://127.0.0.1:2381", f"--listen-peer-urls=https://{address}:2380", f"--name={node}",
        f"--peer-cert-file={pki}/etcd/peer.crt", "--peer-client-cert-auth=true", f"--peer-key-file={pki}/etcd/peer.key",
        f"--peer-trusted-ca-file={pki}/etcd/ca.crt", "--snapshot-count=10000", f"--trusted-ca-file={pki}/etcd/ca.crt",
    ], [("etcd-data", "/var/lib/etcd", False), ("etcd-certs", f"{pki}/etcd", False)],
        [_host_path("etcd-certs", f"{pki}/etcd"), _host_path("etcd-data", "/var/lib/etcd")],
        {"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{address}:2379"}, 2381, "HTTP")
    apiserver_command = [
        "kube-apiserver", f"--advertise-address={address}", "--allow-privileged=true",
        "--authorization-mode=Node,RBAC", f"--client-ca-file={pki}/ca.crt",
        "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={pki}/etcd/ca.crt", f"--etcd-certfile={pki}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={pki}/apiserver-etcd-client.key", "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={pki}/front-proxy-client.crt",
        f"--proxy-client-key-file={pki}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client", f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User", "--secure-port=6443",
        f"--service-account-key-file={pki}/sa.pub", "--service-cluster-ip-range=10.96.0.0/12",
        f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
    ]
    if minor < 20:
        apiserver_command.insert(11, "--insecure-port=0")
    else:
        apiserver_command[-4:-4] = ["--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                                    f"--service-account-signing-key-file={pki}/sa.key"]
    apiserver = _pod("kube-apiserver", f"{images}/kube-apiserver:{version}", apiserver_command,
                     [*ca_mounts, ("k8s-certs", pki, True)], [*ca_volumes, _host_path("k8s-certs", pki)],
                     {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{address}:6443"}, 6443)
    controller_manager = _pod("kube-controller-manager", f"{images}/kube-controller-manager:{version}", [
        "kube-controller-manager", "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf", "--bind-address=127.0.0.1",
        f"--client-ca-file={pki}/ca.crt", "--cluster-name=kubernetes", f"--cluster-signing-cert-file={pki}/ca.crt",
        f"--cluster-signing-key-file={pki}/ca.key", "--controllers=*,bootstrapsigner,tokencleaner",
        "--kubeconfig=/etc/kubernetes/controller-manager.conf", "--leader-elect=true",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt", f"--root-ca-file={pki}/ca.crt",
        f"--service-account-private-key-file={pki}/sa.key", "--use-service-account-credentials=true",
    ], [*ca_mounts, ("k8s-certs", pki, True), ("kubeconfig", "/etc/kubernetes/controller-manager.conf", True)],
        [*ca_volumes, _host_path("k8s-certs", pki),
         _host_path("kubeconfig", "/etc/kubernetes/controller-manager.conf", "FileOrCreate")],
        probe_port=10257)
    scheduler = _pod("kube-scheduler", f"{images}/kube-scheduler:{version}", [
        "kube-scheduler", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf", "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true",
    ], [("kubeconfig", "/etc/kubernetes/scheduler.conf", True)],
        [_host_path("kubeconfig", "/etc/kubernetes/scheduler.conf", "FileOrCreate")], probe_port=10259)
    return {f"{pod['metadata']['name']}.yaml": pod for pod in (etcd, apiserver, controller_manager, scheduler)}


def render(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)


def parse_manifest(text: str) -> dict:
    """A manifest as the kubelet's file source reads it; ValueError says why it is skipped."""
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("kind") != "Pod":
        raise ValueError("not a Pod")
    if not (manifest.get("metadata") or {}).get("name"):
        raise ValueError("the pod has no metadata.name")
    if not (manifest.get("spec") or {}).get("containers"):
        raise ValueError("the pod has no containers")
    return manifest


def config_hash(manifest: dict, node_name: str) -> str:
    """Stable for the same manifest on the same node, different when anything in it changes."""
    return hashlib.sha256(orjson.dumps([manifest, node_name], option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def mirror_pod(manifest: dict, node: dict) -> dict:
    """The pod the kubelet posts to the API for a static pod: named `<pod>-<node>`, owned by the
    node, with the file source's annotations."""
    node_name = node["metadata"]["name"]
    meta = o.clone(manifest.get("metadata") or {})
    spec = o.clone(manifest.get("spec") or {})
    digest = config_hash(manifest, node_name)
    meta.pop("creationTimestamp", None)
    meta["name"] = f"{meta['name']}-{node_name}"
    meta["namespace"] = meta.get("namespace") or "default"
    meta["annotations"] = {**(meta.get("annotations") or {}), "kubernetes.io/config.hash": digest,
                           o.MIRROR_ANNOTATION: digest, "kubernetes.io/config.seen": o.timestamp(),
                           "kubernetes.io/config.source": "file"}
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                "uid": node["metadata"]["uid"], "controller": True}]
    spec["nodeName"] = node_name
    if spec.get("priorityClassName") == "system-node-critical":
        spec.setdefault("priority", SYSTEM_NODE_CRITICAL)
    spec.setdefault("tolerations", [{"operator": "Exists", "effect": "NoExecute"}])
    pod = o.new_pod(meta, spec)
    o.mark_running(pod, node, o.node_address(node) if spec.get("hostNetwork") else "10.244.0.2")
    return pod


def mirror_hash(pod: dict) -> str:
    return (pod["metadata"].get("annotations") or {}).get("kubernetes.io/config.hash", "")
