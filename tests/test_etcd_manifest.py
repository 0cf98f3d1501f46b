"""Reading kubeadm's etcd manifest: where etcdctl reaches the member, with which certificates, and the
node's data directory through the etcd-data hostPath (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from bot.domain.etcd_manifest import ManifestError, parse_etcd_manifest, with_data_dir

KUBEADM_ETCD = """\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.11:2379
  labels: {component: etcd, tier: control-plane}
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.11:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.0.0.11:2380
    - --initial-cluster=controlplane=https://10.0.0.11:2380
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379
    - --listen-peer-urls=https://10.0.0.11:2380
    - --name=controlplane
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: k8s.gcr.io/etcd:3.4.13-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  volumes:
  - hostPath: {path: /etc/kubernetes/pki/etcd, type: DirectoryOrCreate}
    name: etcd-certs
  - hostPath: {path: DATA, type: DirectoryOrCreate}
    name: etcd-data
"""


def test_kubeadm_manifest_gives_endpoint_certificates_and_data_dir() -> None:
    etcd = parse_etcd_manifest(KUBEADM_ETCD.replace("DATA", "/var/lib/etcd"))
    assert etcd.name == "controlplane" and etcd.endpoint == "https://127.0.0.1:2379"
    pki = "/etc/kubernetes/pki/etcd"
    assert (etcd.cacert, etcd.cert, etcd.key) == (f"{pki}/ca.crt", f"{pki}/server.crt", f"{pki}/server.key")
    assert (etcd.data_dir, etcd.data_mount, etcd.version) == ("/var/lib/etcd", "/var/lib/etcd", "3.4.13-0")
    assert etcd.initial_cluster == "controlplane=https://10.0.0.11:2380"
    assert etcd.etcdctl() == ["env", "ETCDCTL_API=3", "etcdctl", "--endpoints=https://127.0.0.1:2379",
                              "--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/server.crt",
                              "--key=/etc/kubernetes/pki/etcd/server.key"]


def test_a_restored_cluster_keeps_its_data_where_the_hostpath_says() -> None:
    etcd = parse_etcd_manifest(KUBEADM_ETCD.replace("DATA", "/var/lib/etcd-from-backup"))
    assert (etcd.data_dir, etcd.data_mount) == ("/var/lib/etcd-from-backup", "/var/lib/etcd")


def test_without_a_loopback_listener_the_advertised_url_is_used() -> None:
    text = KUBEADM_ETCD.replace("DATA", "/var/lib/etcd").replace("https://127.0.0.1:2379,", "")
    assert parse_etcd_manifest(text).endpoint == "https://10.0.0.11:2379"


@pytest.mark.parametrize(("text", "message"), [
    ("not: [yaml", "etcd.yaml is not YAML"),
    ("kind: Deployment", "etcd.yaml is not a Pod manifest"),
    ("kind: Pod\nspec: {containers: []}", "etcd.yaml has no container"),
    (KUBEADM_ETCD.replace("    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n", ""),
     "the etcd command has no --trusted-ca-file"),
])
def test_what_is_not_an_etcd_manifest_says_what_is_missing(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_etcd_manifest(text)


def test_pointing_the_data_volume_at_a_restored_directory_changes_nothing_else() -> None:
    before = parse_etcd_manifest(KUBEADM_ETCD.replace("DATA", "/var/lib/etcd"))
    after = parse_etcd_manifest(with_data_dir(KUBEADM_ETCD.replace("DATA", "/var/lib/etcd"),
                                              "/var/lib/etcd-from-backup-b-0123abcd"))
    assert after.data_dir == "/var/lib/etcd-from-backup-b-0123abcd"
    assert dataclasses.replace(after, data_dir=before.data_dir) == before
    with pytest.raises(ManifestError, match="no etcd-data hostPath volume"):
        with_data_dir("kind: Pod\nspec: {volumes: []}\n", "/x")
