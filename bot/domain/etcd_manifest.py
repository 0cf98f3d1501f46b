"""What kubeadm's etcd static pod manifest says about reaching and restoring etcd (pure).

`backup etcd` and `restore etcd` never hard-code an endpoint, a certificate or a data directory:
they read `/etc/kubernetes/manifests/etcd.yaml` on the control-plane node and take them from the
etcd command line, translated from the container's paths to the node's through the pod's
hostPath volumes (kubeadm mounts `/var/lib/etcd` and `/etc/kubernetes/pki/etcd` at the same
paths, but a restored cluster's `etcd-data` volume points elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

DATA_VOLUME = "etcd-data"  # kubeadm's name for the volume a restore points at its new directory


class ManifestError(ValueError):
    """The manifest is not an etcd static pod this bot can read; the message says what is missing."""


@dataclass(frozen=True)
class EtcdManifest:
    name: str  # --name: the member name
    endpoint: str  # a client URL etcdctl can reach on the node itself
    cacert: str  # host paths
    cert: str
    key: str
    data_dir: str  # the host directory etcd keeps its data in
    data_mount: str  # where the container sees it (--data-dir)
    initial_cluster: str
    initial_advertise_peer_urls: str
    image: str
    version: str  # the image tag: "3.4.13-0"

    def etcdctl(self) -> list[str]:
        """The etcdctl prefix that reaches this member (API v3, with its client certificates)."""
        return ["env", "ETCDCTL_API=3", "etcdctl", f"--endpoints={self.endpoint}", f"--cacert={self.cacert}",
                f"--cert={self.cert}", f"--key={self.key}"]


def parse_etcd_manifest(text: str) -> EtcdManifest:
    try:
        pod = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ManifestError(f"etcd.yaml is not YAML: {error}") from None
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        raise ManifestError("etcd.yaml is not a Pod manifest")
    spec = pod.get("spec") or {}
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    etcd = next((c for c in containers if c.get("name") == "etcd"), containers[0] if containers else None)
    if etcd is None:
        raise ManifestError("etcd.yaml has no container")
    flags = _flags([*(etcd.get("command") or []), *(etcd.get("args") or [])])
    host_paths = {v.get("name"): (v.get("hostPath") or {}).get("path") for v in spec.get("volumes") or []
                  if isinstance(v, dict)}
    mounts = sorted(((m.get("mountPath", ""), host_paths.get(m.get("name"))) for m in etcd.get("volumeMounts") or []
                     if isinstance(m, dict) and host_paths.get(m.get("name"))), key=lambda mount: -len(mount[0]))

    def needed(flag: str) -> str:
        value = flags.get(flag)
        if not value:
            raise ManifestError(f"etcd.yaml: the etcd command has no --{flag}")
        return value

    def on_host(path: str) -> str:
        for mount_path, host in mounts:
            if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
                return host.rstrip("/") + path[len(mount_path.rstrip("/")):]
        return path  # not mounted: a path of the node itself (hostNetwork pods see the same files)

    data_mount = needed("data-dir")
    image = str(etcd.get("image") or "")
    return EtcdManifest(
        name=needed("name"),
        endpoint=_local_endpoint(needed("listen-client-urls"), flags.get("advertise-client-urls", "")),
        cacert=on_host(needed("trusted-ca-file")), cert=on_host(needed("cert-file")), key=on_host(needed("key-file")),
        data_dir=on_host(data_mount), data_mount=data_mount,
        initial_cluster=needed("initial-cluster"),
        initial_advertise_peer_urls=needed("initial-advertise-peer-urls"),
        image=image, version=image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "",
    )


def _flags(words: list[object]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for word in words:
        text = str(word)
        if text.startswith("--"):
            name, _, value = text[2:].partition("=")
            flags[name] = value
    return flags


def _local_endpoint(listen: str, advertise: str) -> str:
    """The loopback client URL when etcd listens on one (what etcdctl on the node itself should use)."""
    urls = [u.strip() for u in f"{listen},{advertise}".split(",") if u.strip()]
    for url in urls:
        if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            return url
    return urls[0]


def with_data_dir(text: str, host_dir: str) -> str:
    """The manifest with its `etcd-data` hostPath pointed at `host_dir` (what the seeds do by hand in vi after
    `etcdctl snapshot restore --data-dir`): the container still sees its data at --data-dir."""
    pod = yaml.safe_load(text)
    volumes = [v for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("name") == DATA_VOLUME]
    if len(volumes) != 1 or "hostPath" not in volumes[0]:
        raise ManifestError(f"etcd.yaml has no {DATA_VOLUME} hostPath volume to point at {host_dir}")
    volumes[0]["hostPath"]["path"] = host_dir
    return yaml.safe_dump(pod, default_flow_style=False, sort_keys=False)
