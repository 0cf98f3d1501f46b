"""The real kubectl is the lab's referee: what it prints and does here must match a real
cluster. Each test runs with the kubectl on PATH and the pinned 1.29 and 1.33 binaries."""

from __future__ import annotations

import subprocess
import time

import pytest

from lab.testing import LabProcess

pytestmark = pytest.mark.runs_long(66)


def lines(result: subprocess.CompletedProcess) -> list[str]:
    return (result.stdout + result.stderr).splitlines()


def no_controller_error(minor: int, pods: str) -> str:
    # kubectl 1.30 changed the message and doubled "cannot delete" in it.
    if minor >= 30:
        return f"cannot delete cannot delete Pods that declare no controller (use --force to override): {pods}"
    return f"cannot delete Pods declare no controller (use --force to override): {pods}"


def node_row(kubectl, lab: LabProcess, name: str) -> list[str]:
    out = kubectl.run(lab, "get", "nodes", "--no-headers").stdout
    for line in out.splitlines():
        if line.split()[0] == name:
            return line.split()
    raise AssertionError(f"{name} not in kubectl get nodes:\n{out}")


def pod_names(lab: LabProcess, namespace: str, node: str | None = None) -> set[str]:
    return {
        p["metadata"]["name"] for p in lab.pods(namespace, node)
        if not p["metadata"].get("deletionTimestamp")
    }


def test_get_nodes_prints_real_columns(kubectl, seeds_lab):
    result = kubectl.run(seeds_lab, "get", "nodes")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    table = {row.split()[0]: row.split() for row in rows}
    assert table["controlplane"][1:3] == ["Ready", "master"]
    assert table["node01"][1:3] == ["Ready", "<none>"]
    assert {row[4] for row in table.values()} == {"v1.19.0"}


def test_get_pods_wide_shows_nodes(kubectl, seeds_lab):
    result = kubectl.run(seeds_lab, "get", "pods", "-A", "-o", "wide")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:8] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    hr_app = next(r.split() for r in rows if r.split()[1] == "hr-app")
    assert hr_app[0] == "default" and hr_app[3] == "Running" and hr_app[7] == "node01"
    nodes_of_blue = {r.split()[7] for r in rows if r.split()[1].startswith("blue-")}
    assert nodes_of_blue == {"controlplane", "node01"}  # spread over both nodes


def test_cordon_and_uncordon(kubectl, seeds_lab):
    first = kubectl.run(seeds_lab, "cordon", "node01")
    assert (first.returncode, first.stdout.strip()) == (0, "node/node01 cordoned")
    assert node_row(kubectl, seeds_lab, "node01")[1] == "Ready,SchedulingDisabled"
    again = kubectl.run(seeds_lab, "cordon", "node01")
    assert (again.returncode, again.stdout.strip()) == (0, "node/node01 already cordoned")
    assert kubectl.run(seeds_lab, "uncordon", "node01").stdout.strip() == "node/node01 uncordoned"
    assert node_row(kubectl, seeds_lab, "node01")[1] == "Ready"
    assert kubectl.run(seeds_lab, "uncordon", "node01").stdout.strip() == "node/node01 already uncordoned"
    # kubectl sends no PATCH when the node is already in the wanted state.
    patches = [k for k in seeds_lab.counters()["requests"] if k.startswith("PATCH")]
    assert patches == ["PATCH /api/v1/nodes/node01"]
    assert seeds_lab.counters()["requests"]["PATCH /api/v1/nodes/node01"] == 2


def test_cordon_unknown_node_fails_like_a_real_cluster(kubectl, seeds_lab):
    result = kubectl.run(seeds_lab, "cordon", "node99")
    assert result.returncode == 1
    assert 'Error from server (NotFound): nodes "node99" not found' in result.stderr


def test_drain_without_ignore_daemonsets_is_refused_and_node_stays_cordoned(kubectl, seeds_lab):
    daemon_pods = sorted(
        f"kube-system/{name}" for name in pod_names(seeds_lab, "kube-system", "node01")
        if name.startswith(("kube-proxy-", "kube-flannel-ds-"))
    )
    result = kubectl.run(seeds_lab, "drain", "node01")
    out = lines(result)
    assert result.returncode == 1
    assert out[0] == "node/node01 cordoned"
    ds_error = ("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                + ", ".join(daemon_pods))
    assert any(ds_error in line for line in out), out
    assert "There are pending nodes to be drained:" in out
    assert " node01" in out
    assert node_row(kubectl, seeds_lab, "node01")[1] == "Ready,SchedulingDisabled"
    assert "hr-app" in pod_names(seeds_lab, "default", "node01")  # nothing was evicted


def test_drain_refused_because_of_hr_app(kubectl, seeds_lab):
    result = kubectl.run(seeds_lab, "drain", "node01", "--ignore-daemonsets")
    out = lines(result)
    assert result.returncode == 1
    expected = no_controller_error(kubectl.minor(seeds_lab), "default/hr-app")
    assert any(expected in line for line in out), out
    assert not any(line.startswith("evicting pod") for line in out)
    assert "hr-app" in pod_names(seeds_lab, "default", "node01")


def test_forced_drain_deletes_hr_app_for_good_and_moves_apps(kubectl, seeds_lab):
    result = kubectl.run(seeds_lab, "drain", "node01", "--ignore-daemonsets", "--force")
    out = lines(result)
    assert result.returncode == 0, out
    assert "pod/hr-app evicted" in out
    assert result.stdout.splitlines()[-1] == "node/node01 drained"
    # kubectl joins its warnings from a Go map, so their order varies from run to run.
    warning = next(line for line in out if line.startswith("Warning: "))
    assert "deleting Pods that declare no controller: default/hr-app" in warning

    def apps_settled() -> bool:
        pods = seeds_lab.pods("default")
        apps = [p for p in pods if p["metadata"]["name"].startswith(("blue-", "green-"))]
        return len(apps) == 6 and all(p["status"]["phase"] == "Running" for p in apps)

    seeds_lab.wait_for(apps_settled, timeout=20, message="blue and green running again")
    wide = kubectl.run(seeds_lab, "get", "pods", "-o", "wide").stdout.splitlines()[1:]
    placement = {row.split()[0]: row.split()[6] for row in wide}
    assert "hr-app" not in placement  # no controller: never re-created
    assert {n for name, n in placement.items() if name.startswith(("blue-", "green-"))} == {"controlplane"}
    assert node_row(kubectl, seeds_lab, "node01")[1] == "Ready,SchedulingDisabled"


def test_server_dry_run_drain_changes_nothing(kubectl, seeds_lab):
    before = pod_names(seeds_lab, "default")
    result = kubectl.run(seeds_lab, "drain", "node01", "--ignore-daemonsets", "--force", "--dry-run=server")
    out = lines(result)
    assert result.returncode == 0, out
    assert out[0] == "node/node01 cordoned (server dry run)"
    assert "evicting pod default/hr-app (server dry run)" in out
    assert result.stdout.splitlines()[-1] == "node/node01 drained (server dry run)"
    assert node_row(kubectl, seeds_lab, "node01")[1] == "Ready"
    assert pod_names(seeds_lab, "default") == before


def _block_web_pdb(lab: LabProcess) -> str:
    """Make web-pdb allow no disruption; return a worker that runs web but no payments pod."""
    lab.admin("POST", "patch", {"resource": "poddisruptionbudgets", "namespace": "shop",
                                "name": "web-pdb", "patch": {"spec": {"minAvailable": 3}}})
    lab.wait_for(lambda: lab.get("/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web-pdb")
                 ["status"]["disruptionsAllowed"] == 0, message="web-pdb blocking")
    pods = lab.pods("shop")
    for node in ("node01", "node02", "node03"):
        names = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node]
        if any(n.startswith("web-") for n in names) and not any(
                n.startswith(("payments-", "cache-")) for n in names):
            return node
    raise AssertionError("no worker runs web without payments or cache")


def test_pdb_blocked_drain_retries_then_completes_when_capacity_appears(kubectl, workers_lab, tmp_path):
    node = _block_web_pdb(workers_lab)
    log = tmp_path / "drain.log"
    with log.open("w") as out:
        drain = subprocess.Popen(
            [kubectl.path, "--kubeconfig", str(workers_lab.kubeconfig), "--cache-dir",
             str(kubectl.cache_dir), "drain", node, "--ignore-daemonsets"],
            stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        workers_lab.wait_for(lambda: "(will retry after 5s): Cannot evict pod as it would violate the pod's "
                             "disruption budget." in log.read_text(), timeout=20,
                             message="kubectl to report the PDB")
        assert drain.poll() is None  # still waiting, not failed
        # Capacity appears: a fourth web replica lets the budget allow one disruption.
        workers_lab.admin("POST", "patch", {"resource": "deployments", "namespace": "shop",
                                            "name": "web", "patch": {"spec": {"replicas": 4}}})
        deadline = time.monotonic() + 30
        while drain.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert drain.poll() == 0, log.read_text()
    finally:
        if drain.poll() is None:
            drain.kill()
    assert log.read_text().splitlines()[-1] == f"node/{node} drained"
    assert not [n for n in pod_names(workers_lab, "shop", node)]


def test_pdb_blocked_drain_with_timeout_fails_with_kubectls_error(kubectl, workers_lab):
    node = _block_web_pdb(workers_lab)
    result = kubectl.run(workers_lab, "drain", node, "--ignore-daemonsets", "--timeout=2s")
    out = lines(result)
    assert result.returncode == 1
    web_pod = next(n for n in pod_names(workers_lab, "shop", node) if n.startswith("web-"))
    assert f'error when evicting pods/"{web_pod}" -n "shop": global timeout reached: 2s' in "\n".join(out)
    assert "There are pending nodes to be drained:" in out
    assert node_row(kubectl, workers_lab, node)[1] == "Ready,SchedulingDisabled"


@pytest.mark.parametrize("flags", [["--delete-emptydir-data"], []], ids=["with-flag", "without-flag"])
def test_emptydir_pod_needs_delete_emptydir_data(kubectl, workers_lab, flags):
    node = next(p["spec"]["nodeName"] for p in workers_lab.pods("shop")
                if p["metadata"]["name"].startswith("cache-"))
    result = kubectl.run(workers_lab, "drain", node, "--ignore-daemonsets", "--dry-run=client", *flags)
    text = result.stdout + result.stderr
    message = "cannot delete Pods with local storage (use --delete-emptydir-data to override): shop/cache-"
    if flags:
        assert result.returncode == 0, text
        assert message not in text
    else:
        assert result.returncode == 1
        assert message in text
