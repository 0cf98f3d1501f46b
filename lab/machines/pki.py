"""kubeadm's certificates (/etc/kubernetes/pki), made with the lab's CA as the cluster CA so
that a machine's ca.crt verifies the lab's API, as on a real control plane.

ECDSA P-256 keys (kubeadm's `encryptionAlgorithm: ECDSA-P256`): fast enough for 50 machines.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service's ClusterIP in kubeadm's default service CIDR


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes) -> Authority:
        return cls(x509.load_pem_x509_certificate(cert_pem), serialization.load_pem_private_key(key_pem, None))

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)


@dataclass(frozen=True)
class ClusterAuthorities:
    """What every control plane of one cluster shares."""

    ca: Authority
    front_proxy_ca: Authority
    etcd_ca: Authority
    service_account_key: bytes
    service_account_pub: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(common_name: str, organization: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, True, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return Authority(cert, key)


def cluster_authorities(ca: Authority) -> ClusterAuthorities:
    sa = ec.generate_private_key(ec.SECP256R1())
    return ClusterAuthorities(
        ca=ca, front_proxy_ca=new_authority("front-proxy-ca"), etcd_ca=new_authority("etcd-ca"),
        service_account_key=_key_pem(sa),
        service_account_pub=sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))


def issue(ca: Authority, common_name: str, *, organization: str = "", dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = (), server: bool = False, client: bool = False) -> tuple[bytes, bytes]:
    """A leaf certificate and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [u for u, wanted in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client))
              if wanted]
    builder = (x509.CertificateBuilder().subject_name(_name(common_name, organization)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_now() - datetime.timedelta(minutes=5))
               .not_valid_after(_now() + datetime.timedelta(days=365))
               .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if dns or ips:
        names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _key_pem(key)


def control_plane_files(cluster: ClusterAuthorities, node: str, address: str) -> dict[str, bytes]:
    """/etc/kubernetes/pki of a kubeadm control plane: {path relative to pki/: PEM}."""
    files: dict[str, bytes] = {
        "ca.crt": cluster.ca.cert_pem, "ca.key": cluster.ca.key_pem,
        "front-proxy-ca.crt": cluster.front_proxy_ca.cert_pem, "front-proxy-ca.key": cluster.front_proxy_ca.key_pem,
        "etcd/ca.crt": cluster.etcd_ca.cert_pem, "etcd/ca.key": cluster.etcd_ca.key_pem,
        "sa.key": cluster.service_account_key, "sa.pub": cluster.service_account_pub,
    }
    leaves = {
        "apiserver": (cluster.ca, "kube-apiserver", "", dict(
            dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                 node), ips=(SERVICE_IP, address, "127.0.0.1"), server=True)),
        "apiserver-kubelet-client": (cluster.ca, "kube-apiserver-kubelet-client", "system:masters",
                                     dict(client=True)),
        "front-proxy-client": (cluster.front_proxy_ca, "front-proxy-client", "", dict(client=True)),
        "apiserver-etcd-client": (cluster.etcd_ca, "kube-apiserver-etcd-client", "system:masters", dict(client=True)),
        "etcd/server": (cluster.etcd_ca, node, "", dict(dns=(node, "localhost"), ips=(address, "127.0.0.1", "::1"),
                                                        server=True, client=True)),
        "etcd/peer": (cluster.etcd_ca, node, "", dict(dns=(node, "localhost"), ips=(address, "127.0.0.1", "::1"),
                                                      server=True, client=True)),
        "etcd/healthcheck-client": (cluster.etcd_ca, "kube-etcd-healthcheck-client", "", dict(client=True)),
    }
    for path, (authority, common_name, organization, options) in leaves.items():
        cert, key = issue(authority, common_name, organization=organization, **options)
        files[f"{path}.crt"], files[f"{path}.key"] = cert, key
    return files


def worker_files(cluster: ClusterAuthorities) -> dict[str, bytes]:
    return {"ca.crt": cluster.ca.cert_pem}
