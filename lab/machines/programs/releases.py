"""What each Kubernetes minor's kubeadm installs besides the control plane (etcd, CoreDNS) and
where its images come from; what the release site (dl.k8s.io) says is the newest patch. Pure,
standard library only: the machines' kubeadm reads it, and so does the lab (manifests.py).
"""

from __future__ import annotations

from lab.versions import parse_minor

# kubeadm's SupportedEtcdVersion per minor (cmd/kubeadm/app/constants).
ETCD_VERSIONS = {13: "3.2.24", 14: "3.3.10", 15: "3.3.10", 16: "3.3.15-0", 17: "3.4.3-0", 18: "3.4.3-0",
                 19: "3.4.13-0", 20: "3.4.13-0", 21: "3.4.13-0", 22: "3.5.0-0", 23: "3.5.1-0", 24: "3.5.3-0",
                 25: "3.5.4-0", 26: "3.5.6-0", 27: "3.5.7-0", 28: "3.5.9-0", 29: "3.5.10-0", 30: "3.5.12-0",
                 31: "3.5.15-0", 32: "3.5.16-0", 33: "3.5.21-0", 34: "3.6.4-0"}
# kubeadm's CoreDNSVersion per minor: the tag of its image (a leading v from 1.21 on).
COREDNS_VERSIONS = {13: "1.2.6", 14: "1.3.1", 15: "1.3.1", 16: "1.6.2", 17: "1.6.5", 18: "1.6.7", 19: "1.7.0",
                    20: "1.7.0", 21: "v1.8.0", 22: "v1.8.4", 23: "v1.8.6", 24: "v1.8.6", 25: "v1.9.3", 26: "v1.9.3",
                    27: "v1.10.1", 28: "v1.10.1", 29: "v1.11.1", 30: "v1.11.1", 31: "v1.11.3", 32: "v1.11.3",
                    33: "v1.12.0", 34: "v1.12.1"}


def _nearest(table: dict[int, str], minor: int) -> str:
    if minor in table:
        return table[minor]
    known = sorted(table)
    return table[known[-1]] if minor > known[-1] else table[known[0]]


def etcd_version(version: str) -> str:
    return _nearest(ETCD_VERSIONS, parse_minor(version))


def coredns_version(version: str) -> str:
    return _nearest(COREDNS_VERSIONS, parse_minor(version))


def registry(version: str) -> str:
    return "k8s.gcr.io" if parse_minor(version) < 25 else "registry.k8s.io"


def coredns_image(version: str) -> str:
    """k8s.gcr.io/coredns:1.7.0 up to 1.20, then in its own repository (coredns/coredns:v1.8.0)."""
    minor = parse_minor(version)
    path = "coredns" if minor < 21 else "coredns/coredns"
    return f"{registry(version)}/{path}:{coredns_version(version)}"


def kube_proxy_image(version: str) -> str:
    return f"{registry(version)}/kube-proxy:{version}"


def image_tag(image: str) -> str:
    """'registry.k8s.io/kube-apiserver:v1.28.15' -> 'v1.28.15' (a port in the registry is not a tag)."""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def with_tag(image: str, tag: str) -> str:
    head, _, last = image.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}:{tag}" if head else f"{name}:{tag}"


def upgraded_image(image: str, tag: str, target: str) -> str:
    """The image kubeadm writes when it upgrades to `target`: the new tag, and from v1.25 on the
    registry moved off k8s.gcr.io (kubeadm rewrites the old default imageRepository)."""
    moved = image.replace("k8s.gcr.io/", "registry.k8s.io/", 1) if parse_minor(target) >= 25 else image
    return with_tag(moved, tag)


# -- the release site, as the machine's archive.json models it --------------------------------


def latest_patches(archive: dict, kind: str) -> dict[int, int]:
    """{minor: newest patch} the release site knows: the machine's own repository layout's table,
    the other layout's for minors it lacks (the legacy repository froze; releases went on)."""
    tables = (archive.get("kubernetes") or {})
    merged: dict[int, int] = {}
    for table_kind in [k for k in ("legacy", "pkgs") if k != kind] + [kind]:
        for minor, patch in (tables.get(table_kind) or {}).items():
            merged[int(str(minor).split(".")[-1])] = int(patch)
    return merged


def stable(archive: dict, kind: str) -> str | None:
    """dl.k8s.io/release/stable.txt: the newest patch of the newest minor."""
    table = latest_patches(archive, kind)
    if not table:
        return None
    minor = max(table)
    return f"v1.{minor}.{table[minor]}"


def stable_of(archive: dict, kind: str, minor: int) -> str | None:
    """dl.k8s.io/release/stable-1.N.txt."""
    table = latest_patches(archive, kind)
    return f"v1.{minor}.{table[minor]}" if minor in table else None
