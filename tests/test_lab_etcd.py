"""The lab's control plane runs a real etcd (Debian's etcd-server) from kubeadm's etcd.yaml, and
the API keeps its objects there under kube-apiserver's keys: what the machine's own etcdctl
shows, what a snapshot restore brings back, and what moving kube-apiserver.yaml aside does.

One lab for the file (module fixture); tests that change the control plane's files reset it.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import errors, scenario
from lab import objects as o
from lab.apiserver import etcd_flags
from lab.etcd import keys
from lab.etcd.client import EtcdClient, EtcdEndpoint
from lab.etcd.store import EtcdStore
from lab.machines import manifests
from lab.machines.pods import on_own_address, run_script
from lab.testing import LabProcess, wait_until
from tests.conftest import Kubectl

pytestmark = pytest.mark.runs_long(22)

PKI = "/etc/kubernetes/pki"
ETCDCTL = (f"sudo ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/etcd/ca.crt "
           f"--cert={PKI}/etcd/healthcheck-client.crt --key={PKI}/etcd/healthcheck-client.key")
ETCD_MANIFEST = f"{manifests.MANIFESTS_DIR}/etcd.yaml"
APISERVER_MANIFEST = f"{manifests.MANIFESTS_DIR}/kube-apiserver.yaml"
DEADLINE = 30.0


# -- pure parts ---------------------------------------------------------------------------------


def test_keys_follow_kube_apiservers_layout() -> None:
    assert keys.key_for("deployments", "default", "blue") == "/registry/deployments/default/blue"
    assert keys.key_for("nodes", "", "node01") == "/registry/minions/node01"
    assert keys.key_for("namespaces", "", "default") == "/registry/namespaces/default"
    for key in ("/registry/pods/kube-system/etcd-controlplane", "/registry/minions/node01"):
        resource, namespace, name = keys.parse(key)
        assert keys.key_for(resource, namespace, name) == key
    assert [keys.parse(k) for k in ("/registry/services/specs/default/x", "/other", "/registry/pods/default")] == \
        [None, None, None]
    assert keys.range_end("/registry/") == "/registry0"


def test_the_kubelets_command_is_the_manifests_with_its_volumes_bound() -> None:
    manifest = manifests.static_pod_manifests("controlplane", "10.0.0.5", "v1.19.0")["etcd.yaml"]
    script = run_script(manifest, "10.0.0.5", "/var/log/pods/etcd.log")
    assert "--data-dir=/var/lib/etcd" in script and "mount --bind" not in script, "same paths: nothing to bind"
    assert "--listen-client-urls=https://10.0.0.5:2379 " in script, "loopback is the machine's own address"
    next(v for v in manifest["spec"]["volumes"] if v["name"] == "etcd-data")["hostPath"]["path"] = \
        "/var/lib/etcd-from-backup"
    script = run_script(manifest, "10.0.0.5", "/var/log/pods/etcd.log")
    assert "mount --bind /var/lib/etcd-from-backup /var/lib/etcd" in script
    assert "--data-dir=/var/lib/etcd " in script, "the container's path stays, as in kubeadm"
    assert on_own_address("https://127.0.0.1:2379,https://10.0.0.5:2379", "10.0.0.5") == "https://10.0.0.5:2379"
    apiserver = manifests.static_pod_manifests("controlplane", "10.0.0.5", "v1.19.0")["kube-apiserver.yaml"]
    assert etcd_flags(apiserver) == ("https://127.0.0.1:2379", f"{PKI}/etcd/ca.crt",
                                     f"{PKI}/apiserver-etcd-client.crt", f"{PKI}/apiserver-etcd-client.key")


# -- the lab's etcd -----------------------------------------------------------------------------


def etcd_processes(address: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"etcd --advertise-client-urls=https://{address}:2379"],
                           capture_output=True, text=True).stdout
    return found.splitlines()


@pytest.fixture(scope="module")
def lab() -> Iterator[LabProcess]:
    lab = LabProcess("seeds-os-upgrade", time_scale=0.05).start()
    address = lab.address("controlplane")[0]
    try:
        yield lab
    finally:
        lab.stop()
    # etcd lives in the machine's pid namespace: it ends with the lab (the kernel may take a moment).
    wait_until(lambda: etcd_processes(address) == [], 5.0, "etcd to end with its lab")


@pytest.fixture(scope="module")
def kubectl_cli(tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not found: the lab's etcd tests read the API with it")
    return Kubectl("kubectl", tmp_path_factory.mktemp("kube-cache"))


def on(lab: LabProcess, command: str, node: str = "controlplane") -> str:
    result = lab.ssh(node, command)
    assert result.returncode == 0, f"{node}$ {command} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def etcd_get(lab: LabProcess, key: str) -> dict:
    return json.loads(on(lab, f"{ETCDCTL} get {key} -w json"))


def create_deployment(kubectl: Kubectl, lab: LabProcess, name: str, replicas: int = 1) -> None:
    """`kubectl create -f`: kubectl's `create deployment` sends protobuf and validation wants
    OpenAPI, neither of which the lab serves."""
    manifest = kubectl.cache_dir.parent / f"{name}.json"
    manifest.write_text(json.dumps(scenario.deployment(name, replicas)))
    created = kubectl.run(lab, "create", "--validate=false", "-f", str(manifest))
    assert created.returncode == 0, created.stderr


def kubectl_json(kubectl: Kubectl, lab: LabProcess, *args: str) -> dict | None:
    result = kubectl.run(lab, "get", *args, "-o", "json")
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_etcd_runs_on_the_control_plane_from_its_manifest(lab: LabProcess) -> None:
    address = lab.address("controlplane")[0]
    processes = on(lab, "ps -eo args | grep '^etcd '")
    assert "--data-dir=/var/lib/etcd " in processes and "--client-cert-auth=true" in processes
    assert "--name=controlplane" in processes and f"--initial-cluster=controlplane=https://{address}:2380" in processes
    for endpoint in ("https://127.0.0.1:2379", f"https://{address}:2379"):
        health = lab.ssh("controlplane", f"{ETCDCTL.replace('https://127.0.0.1:2379', endpoint)} endpoint health")
        assert health.returncode == 0 and "is healthy" in health.stdout + health.stderr, health.stderr
    without_cert = lab.ssh("controlplane", "sudo ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 "
                                           f"--cacert={PKI}/etcd/ca.crt --command-timeout=2s get / --prefix")
    assert without_cert.returncode != 0, "client certificates are required"
    assert on(lab, "sudo ls /var/lib/etcd") == "member\n"


def test_objects_are_under_their_registry_keys_and_resource_versions_are_etcd_revisions(
        lab: LabProcess, kubectl_cli: Kubectl) -> None:
    create_deployment(kubectl_cli, lab, "web", replicas=2)
    listed = on(lab, f"{ETCDCTL} get /registry/ --prefix --keys-only").split()
    assert {"/registry/deployments/default/web", "/registry/deployments/default/blue", "/registry/minions/node01",
            "/registry/namespaces/default", "/registry/pods/kube-system/etcd-controlplane",
            "/registry/pods/default/hr-app"} <= set(listed)
    assert any(k.startswith("/registry/pods/default/web-") for k in listed), "the deployment's pods too"

    def same_revision() -> bool:
        deployment = kubectl_json(kubectl_cli, lab, "deployment", "web")
        stored = etcd_get(lab, "/registry/deployments/default/web")["kvs"][0]
        return deployment is not None and int(deployment["metadata"]["resourceVersion"]) == stored["mod_revision"]

    wait_until(same_revision, DEADLINE, "the deployment's resourceVersion to be its key's mod_revision")
    value = json.loads(base64.b64decode(etcd_get(lab, "/registry/deployments/default/web")["kvs"][0]["value"]))
    assert (value["kind"], value["metadata"]["name"]) == ("Deployment", "web")
    assert "resourceVersion" not in value["metadata"], "the revision is etcd's, not stored in the value"
    on(lab, f"{ETCDCTL} del /registry/deployments/default/web")
    wait_until(lambda: kubectl_json(kubectl_cli, lab, "deployment", "web") is None, DEADLINE,
               "a key deleted in etcd to be gone from the API")


def test_two_apiservers_writing_the_same_object_conflict(lab: LabProcess, tmp_path: Path) -> None:
    """Writes are compare-and-swap on the key's revision: a second cache (an HA apiserver) that
    has not seen the first write gets 409 Conflict, as kube-apiserver does."""
    for name in ("etcd/ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key"):
        (tmp_path / Path(name).name).write_text(on(lab, f"sudo cat {PKI}/{name}"))
    endpoint = EtcdEndpoint(f"https://{lab.address('controlplane')[0]}:2379", tmp_path / "ca.crt",
                            tmp_path / "apiserver-etcd-client.crt", tmp_path / "apiserver-etcd-client.key")
    first, second = EtcdStore.load(EtcdClient(endpoint)), EtcdStore.load(EtcdClient(endpoint))
    blue = first.get("deployments", "default", "blue")
    labels = {**blue["metadata"]["labels"], "changed": "by-first"}
    written = first.put("deployments", {**blue, "metadata": {**blue["metadata"], "labels": labels}})
    assert int(written["metadata"]["resourceVersion"]) == etcd_get(lab, "/registry/deployments/default/blue")[
        "kvs"][0]["mod_revision"]
    stale = second.get("deployments", "default", "blue")
    with pytest.raises(errors.ApiError) as conflict:
        second.put("deployments", {**stale, "metadata": {**stale["metadata"], "labels": {"changed": "by-second"}}})
    assert conflict.value.code == 409 and conflict.value.status["reason"] == "Conflict"
    first.put("deployments", o.stamp(scenario.deployment("made-by-first", 0)))
    with pytest.raises(errors.ApiError) as exists:
        second.put("deployments", o.stamp(scenario.deployment("made-by-first", 0)))
    assert (exists.value.code, exists.value.status["reason"]) == (409, "AlreadyExists")


def test_a_restored_snapshot_brings_a_deleted_deployment_back(lab: LabProcess, kubectl_cli: Kubectl) -> None:
    """The seeds' restore: snapshot, lose a deployment, restore into a new data dir, point the
    etcd-data hostPath at it; etcd restarts on it and the API shows the deployment again."""
    assert "Snapshot saved at /var/tmp/snapshot.db" in on(lab, f"{ETCDCTL} snapshot save /var/tmp/snapshot.db 2>&1")
    status = on(lab, "sudo ETCDCTL_API=3 etcdctl snapshot status /var/tmp/snapshot.db -w table")
    assert "| HASH | REVISION | TOTAL KEYS | TOTAL SIZE |" in status.replace("  ", " ").replace("  ", " ")
    deleted = kubectl_cli.run(lab, "delete", "deployment", "blue")
    assert deleted.returncode == 0, deleted.stderr
    wait_until(lambda: kubectl_json(kubectl_cli, lab, "deployment", "blue") is None, DEADLINE, "blue deleted")
    assert etcd_get(lab, "/registry/deployments/default/blue").get("kvs") is None

    on(lab, "sudo ETCDCTL_API=3 etcdctl snapshot restore /var/tmp/snapshot.db --data-dir /var/lib/etcd-from-backup")
    on(lab, f"sudo sed -i 's|path: /var/lib/etcd$|path: /var/lib/etcd-from-backup|' {ETCD_MANIFEST}")
    back = wait_until(lambda: kubectl_json(kubectl_cli, lab, "deployment", "blue"), DEADLINE,
                      "the restored deployment in the API")
    assert back["metadata"]["name"] == "blue"
    assert etcd_get(lab, "/registry/deployments/default/blue")["kvs"], "etcd serves the restored data"
    # The API's watch cache begins where it loaded: older resourceVersions are 410 Gone, as from a
    # restarted kube-apiserver. (Not every version from before the restore is: etcd 3.4 rewinds
    # revisions, so the numbers from before and after overlap, stale watchers' known problem.)
    code, gone = lab.request("GET", "/apis/apps/v1/namespaces/default/deployments?watch=1&resourceVersion=1")
    assert code == 200 and gone["type"] == "ERROR" and gone["object"]["code"] == 410
    mounts = on(lab, "sudo cat /proc/$(pgrep -x etcd)/mountinfo")
    assert any(" /var/lib/etcd-from-backup /var/lib/etcd " in line for line in mounts.splitlines()), \
        "etcd still runs with --data-dir=/var/lib/etcd, on the new host directory"
    pod = wait_until(lambda: (kubectl_json(kubectl_cli, lab, "pod", "-n", "kube-system", "etcd-controlplane") or {})
                     .get("spec", {}).get("volumes"), DEADLINE, "the etcd mirror pod")
    wait_until(lambda: "/var/lib/etcd-from-backup" in json.dumps(
        kubectl_json(kubectl_cli, lab, "pod", "-n", "kube-system", "etcd-controlplane")), DEADLINE,
        f"the etcd mirror pod to follow the changed manifest (it had {pod})")

    lab.reset()  # the scenario again: the control plane rebuilt (its manifest changed), etcd written afresh
    assert "path: /var/lib/etcd\n" in on(lab, f"sudo cat {ETCD_MANIFEST}")
    assert kubectl_json(kubectl_cli, lab, "deployment", "blue") is not None


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # the listener is closing: asked again, it refuses
    return False


def test_the_api_stops_and_starts_with_its_static_pod_manifest(lab: LabProcess, kubectl_cli: Kubectl) -> None:
    port = int(lab.server.rsplit(":", 1)[1])
    create_deployment(kubectl_cli, lab, "kept")
    on(lab, f"sudo mv {APISERVER_MANIFEST} /var/tmp/")
    wait_until(lambda: refused(port), DEADLINE, "the API's port to refuse connections")
    result = kubectl_cli.run(lab, "get", "nodes")
    assert result.returncode == 1 and "refused" in result.stderr
    assert "etcd" in on(lab, "ps -eo comm"), "etcd keeps running"
    assert lab.machine("controlplane")["power"] == "on", "the admin API has a port of its own"

    on(lab, f"sudo mv /var/tmp/kube-apiserver.yaml {manifests.MANIFESTS_DIR}/")
    wait_until(lambda: kubectl_cli.run(lab, "get", "nodes").returncode == 0, DEADLINE, "the API back")
    assert kubectl_json(kubectl_cli, lab, "deployment", "kept") is not None, "reloaded from etcd"
    lab.reset()


def test_a_control_plane_powered_off_takes_etcd_and_the_api_with_it(lab: LabProcess, kubectl_cli: Kubectl) -> None:
    port = int(lab.server.rsplit(":", 1)[1])
    address = lab.address("controlplane")[0]
    lab.power("controlplane", False)
    wait_until(lambda: refused(port) and etcd_processes(address) == [], DEADLINE, "etcd and the API gone")
    lab.power("controlplane", True)
    wait_until(lambda: kubectl_cli.run(lab, "get", "deployment", "blue").returncode == 0, DEADLINE,
               "etcd and the API back with the machine")
    assert len(etcd_processes(address)) == 1
