"""The lab machines' `kubeadm upgrade plan|apply|node` answers and acts as kubeadm does (REFERENCE.md,
"kubeadm upgrade"): each minor's layout, the version policy's errors word for word, what apply changes
(manifests, backups, mirror pods, kube-proxy, CoreDNS, kubeadm-config) and what it leaves (kubelets);
the subcommand-prefixed failure fault and kubeletFails; apt's `-o Dir::...` probe of another minor's
repository, and the repository switch pkgs.k8s.io needs.

The layouts of other minors (v1.14's display names, v1.30's NODE column) are checked on the pure
formatting; the seeds' v1.19 cluster and a v1.28 fleet are real labs, one per module, reset per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.machines.programs import upgrade_text as text
from lab.testing import LabProcess, wait_until

pytestmark = pytest.mark.runs_long(58)

SCALE = 0.05
GRACE = 40 * SCALE


@pytest.fixture(scope="module")
def seeds() -> Iterator[LabProcess]:
    with LabProcess("seeds-upgrade", time_scale=SCALE) as lab:
        yield lab


@pytest.fixture(scope="module")
def fleet() -> Iterator[LabProcess]:
    with LabProcess("upgrade-fleet:2", time_scale=SCALE) as lab:
        yield lab


@pytest.fixture
def v119(seeds: LabProcess) -> LabProcess:
    seeds.reset()
    return seeds


@pytest.fixture
def v128(fleet: LabProcess) -> LabProcess:
    fleet.reset()
    return fleet


def run(lab: LabProcess, node: str, command: str, **kwargs):
    return lab.ssh(node, command, **kwargs)


def ok(lab: LabProcess, node: str, command: str, **kwargs) -> str:
    result = lab.ssh(node, command, **kwargs)
    assert result.returncode == 0, f"{node}$ {command} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def install(lab: LabProcess, node: str, *packages: str) -> None:
    ok(lab, node, f"sudo apt-get install -y -qq --allow-change-held-packages {' '.join(packages)} >/dev/null")


def switch_repo_to_v129(lab: LabProcess, node: str) -> None:
    """The switch, as the upgrade docs do it: the repo line names the next minor, then apt-get update."""
    ok(lab, node, "sudo sed -i 's#/v1.28/#/v1.29/#' /etc/apt/sources.list.d/kubernetes.list && "
                  "sudo apt-get update -qq")


def image(lab: LabProcess, path: str) -> str:
    obj = lab.get(path)
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return spec["containers"][0]["image"]


def kubelet_version(lab: LabProcess, node: str) -> str:
    return lab.get(f"/api/v1/nodes/{node}")["status"]["nodeInfo"]["kubeletVersion"]


def ready(lab: LabProcess, node: str) -> bool:
    conditions = lab.get(f"/api/v1/nodes/{node}")["status"]["conditions"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def body(output: str) -> str:
    """The plan after the preamble's version lines."""
    return output[output.index("\n\n") + 1:]


# -- layouts (pure) ---------------------------------------------------------------------------------


def before(kubeadm: str, cluster: str, kubelets: list[tuple[str, str]],
           *control_planes: tuple[str, dict]) -> text.Before:
    return text.Before(cluster, kubeadm, kubelets, [text.ControlPlaneNode(n, v) for n, v in control_planes],
                       kube_proxy=cluster, coredns="")


def test_before_v1_18_the_tables_use_display_names_as_the_seeds_show() -> None:
    state = before("v1.14.1", "v1.13.5", [("a", "v1.13.0"), ("b", "v1.13.0"), ("c", "v1.13.0")],
                   ("a", {"kube-apiserver": "v1.13.5", "kube-controller-manager": "v1.13.5",
                          "kube-scheduler": "v1.13.5", "etcd": "3.2.24"}))
    upgrade = text.Upgrade("stable version", "v1.14.1", "v1.14.1", "3.3.10", "1.3.1")
    assert text.kubelet_table(14, state, "v1.14.1") == ["COMPONENT   CURRENT       AVAILABLE",
                                                         "Kubelet     3 x v1.13.0   v1.14.1"]
    assert text.control_plane_table(14, text.Before(**{**state.__dict__, "coredns": "1.2.6"}), upgrade) == [
        "COMPONENT            CURRENT   AVAILABLE",
        "API Server           v1.13.5   v1.14.1",
        "Controller Manager   v1.13.5   v1.14.1",
        "Scheduler            v1.13.5   v1.14.1",
        "Kube Proxy           v1.13.5   v1.14.1",
        "CoreDNS              1.2.6     1.3.1",
        "Etcd                 3.2.24    3.3.10"]


def test_v1_21_to_1_29_group_kubelets_by_version_and_v1_30_lists_each_node() -> None:
    tags = {"kube-apiserver": "v1.28.2", "kube-controller-manager": "v1.28.2", "kube-scheduler": "v1.28.2",
            "etcd": "3.5.9-0"}
    state = before("v1.29.0", "v1.28.2", [("cp", "v1.28.2"), ("w1", "v1.28.2"), ("w2", "v1.27.3")], ("cp", tags))
    assert text.kubelet_table(29, state, "v1.29.0") == ["COMPONENT   CURRENT       TARGET",
                                                         "kubelet     1 x v1.27.3   v1.29.0",
                                                         "            2 x v1.28.2   v1.29.0"]
    state = before("v1.31.0", "v1.30.0", [("cp1", "v1.30.0"), ("cp2", "v1.30.0")],
                   ("cp1", {**tags, "kube-apiserver": "v1.30.0"}), ("cp2", {**tags, "kube-apiserver": "v1.30.0"}))
    upgrade = text.Upgrade("stable version", "v1.31.0", "v1.31.0", "3.5.15-0", "v1.11.3")
    assert text.kubelet_table(31, state, "v1.31.0") == ["COMPONENT   NODE      CURRENT   TARGET",
                                                         "kubelet     cp1       v1.30.0   v1.31.0",
                                                         "kubelet     cp2       v1.30.0   v1.31.0"]
    table = text.control_plane_table(31, state, upgrade)
    assert table[:3] == ["COMPONENT                 NODE      CURRENT   TARGET",
                         "kube-apiserver            cp1       v1.30.0   v1.31.0",
                         "kube-apiserver            cp2       v1.30.0   v1.31.0"]
    assert "kube-proxy                          v1.30.0   v1.31.0" in table
    assert table[-1] == "etcd                      cp2       3.5.9-0   3.5.15-0"


@pytest.mark.parametrize(("target", "cluster", "kubeadm", "kubelets", "fatal", "message"), [
    ("v1.22.0", "v1.20.0", "v1.22.0", ["v1.21.0"], True,
     'Specified version to upgrade to "v1.22.0" is too high; kubeadm can upgrade only 1 minor version at a time'),
    ("v1.22.0", "v1.21.0", "v1.20.0", ["v1.21.0"], True,
     'Specified version to upgrade to "v1.22.0" is at least one minor release higher than the kubeadm minor '
     'release (22 > 20). Such an upgrade is not supported'),
    ("v1.18.0", "v1.20.0", "v1.20.0", ["v1.20.0"], True,
     'Specified version to downgrade to "v1.18.0" is too low; kubeadm can downgrade only 1 minor version at a time'),
    ("v1.20.11", "v1.20.0", "v1.20.0", ["v1.20.0"], False,
     'Specified version to upgrade to "v1.20.11" is higher than the kubeadm version "v1.20.0". Upgrade kubeadm '
     'first using the tool you used to install kubeadm'),
    ("v1.28.0", "v1.27.0", "v1.28.0", ["v1.27.0", "v1.26.5"], False,
     "There are kubelets in this cluster that are too old that have these versions [v1.26.5]"),
], ids=["skips-a-minor", "above-kubeadm-minor", "downgrade", "above-kubeadm-patch", "kubelets-too-old"])
def test_the_version_policy_words_each_error_as_policy_go(target, cluster, kubeadm, kubelets, fatal,
                                                         message) -> None:
    mandatory, skippable = text.policy(target, before(kubeadm, cluster, [(f"n{i}", v) for i, v in enumerate(kubelets)]))
    assert (mandatory, skippable) == (([message], []) if fatal else ([], [message]))


def test_the_kubelet_skew_limit_is_one_minor_up_to_1_28_and_three_from_1_29() -> None:
    old = [("n", "v1.26.0")]
    assert text.policy("v1.28.1", before("v1.28.1", "v1.27.0", old))[1]
    assert not text.policy("v1.29.1", before("v1.29.1", "v1.28.0", old))[1]


# -- the seeds' v1.19 cluster -----------------------------------------------------------------------


def test_plan_on_the_seeds_cluster_offers_the_latest_1_19_patch(v119: LabProcess) -> None:
    out = ok(v119, "controlplane", "sudo kubeadm upgrade plan")
    assert out.splitlines()[:12] == [
        "[upgrade/config] Making sure the configuration is correct:",
        "[upgrade/config] Reading configuration from the cluster...",
        "[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config "
        "-oyaml'",
        "[preflight] Running pre-flight checks.", "[upgrade] Running cluster health checks",
        "[upgrade] Fetching available versions to upgrade to",
        "[upgrade/versions] Cluster version: v1.19.0", "[upgrade/versions] kubeadm version: v1.19.0",
        *["[upgrade/versions] Latest stable version: v1.19.16"] * 2,
        *["[upgrade/versions] Latest version in the v1.19 series: v1.19.16"] * 2]
    assert body(out) == """
Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':
COMPONENT   CURRENT       AVAILABLE
kubelet     2 x v1.19.0   v1.19.16

Upgrade to the latest version in the v1.19 series:

COMPONENT                 CURRENT    AVAILABLE
kube-apiserver            v1.19.0    v1.19.16
kube-controller-manager   v1.19.0    v1.19.16
kube-scheduler            v1.19.0    v1.19.16
kube-proxy                v1.19.0    v1.19.16
CoreDNS                   1.7.0      1.7.0
etcd                      3.4.13-0   3.4.13-0

You can now apply the upgrade by executing the following command:

\tkubeadm upgrade apply v1.19.16

Note: Before you can perform this upgrade, you have to update kubeadm to v1.19.16.

_____________________________________________________________________

"""


def test_kubeadm_upgrade_needs_root(v119: LabProcess) -> None:
    result = run(v119, "controlplane", "kubeadm upgrade apply v1.20.0 -y")
    assert result.returncode == 1
    assert "[ERROR IsPrivilegedUser]: user is not running as root" in result.stderr


def test_apply_refuses_to_skip_a_minor_verbatim(v119: LabProcess) -> None:
    result = run(v119, "controlplane", "sudo kubeadm upgrade apply v1.21.0 -y")
    assert result.returncode == 1
    assert result.stderr == (
        "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n"
        '\t- Specified version to upgrade to "v1.21.0" is too high; kubeadm can upgrade only 1 minor version at a '
        "time\n"
        '\t- Specified version to upgrade to "v1.21.0" is at least one minor release higher than the kubeadm minor '
        "release (21 > 19). Such an upgrade is not supported\n\n"
        "Please fix the misalignments highlighted above and try upgrading again\n"
        "To see the stack trace of this error execute with --v=5 or higher\n")
    assert '[upgrade/version] You have chosen to change the cluster version to "v1.21.0"' in result.stdout


def test_a_patch_above_kubeadm_needs_force_and_dry_run_changes_nothing(v119: LabProcess) -> None:
    manifests = "sudo sha256sum /etc/kubernetes/manifests/*; sudo ls /etc/kubernetes"
    was = ok(v119, "controlplane", manifests)
    refused = run(v119, "controlplane", "sudo kubeadm upgrade apply v1.19.16 -y")
    assert refused.returncode == 1 and refused.stderr.endswith(
        'is higher than the kubeadm version "v1.19.0". Upgrade kubeadm first using the tool you used to install '
        "kubeadm\n\nCan be bypassed if you pass the --force flag\nTo see the stack trace of this error execute with "
        "--v=5 or higher\n")
    out = ok(v119, "controlplane", "sudo kubeadm upgrade apply v1.19.16 --force --dry-run")
    assert "[upgrade/version] Found 1 potential version compatibility errors" in out
    assert out.rstrip().endswith("[dryrun] Finished dryrunning successfully!")
    assert ok(v119, "controlplane", manifests) == was
    assert image(v119, "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy").endswith(":v1.19.0")


def test_without_yes_apply_asks_and_stops_when_nobody_answers(v119: LabProcess) -> None:
    install(v119, "controlplane", "kubeadm=1.20.0-00")
    result = run(v119, "controlplane", "sudo kubeadm upgrade apply v1.20.0")
    assert result.returncode == 1
    assert result.stdout.endswith("[upgrade/confirm] Are you sure you want to proceed with the upgrade? [y/N]: ")
    assert result.stderr.startswith("[upgrade/confirm] FATAL: won't proceed; the user didn't answer (Y|y) in order "
                                    "to continue\n")
    assert "v1.19.0" in ok(v119, "controlplane", "sudo grep image: /etc/kubernetes/manifests/kube-apiserver.yaml")


def test_apply_upgrades_the_control_plane_and_leaves_the_kubelets(v119: LabProcess) -> None:
    install(v119, "controlplane", "kubeadm=1.20.0-00")
    old_hash = v119.get("/api/v1/namespaces/kube-system/pods/kube-apiserver-controlplane")[
        "metadata"]["annotations"]["kubernetes.io/config.hash"]
    out = ok(v119, "controlplane", "sudo kubeadm upgrade apply v1.20.0", stdin="y\n")
    assert out.rstrip().endswith(
        '[upgrade/successful] SUCCESS! Your cluster was upgraded to "v1.20.0". Enjoy!\n\n'
        "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if "
        "you haven't already done so.")
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"image: k8s.gcr.io/{component}:v1.20.0" in ok(
            v119, "controlplane", f"sudo cat /etc/kubernetes/manifests/{component}.yaml")
        pod = v119.get(f"/api/v1/namespaces/kube-system/pods/{component}-controlplane")
        assert pod["spec"]["containers"][0]["image"] == f"k8s.gcr.io/{component}:v1.20.0"
    assert v119.get("/api/v1/namespaces/kube-system/pods/kube-apiserver-controlplane")[
        "metadata"]["annotations"]["kubernetes.io/config.hash"] != old_hash
    backups = ok(v119, "controlplane", "sudo ls /etc/kubernetes/tmp").split()
    assert any(b.startswith("kubeadm-backup-etcd-") for b in backups), backups
    manifests_backup = next(b for b in backups if b.startswith("kubeadm-backup-manifests-"))
    assert "kube-apiserver.yaml" in ok(v119, "controlplane", f"sudo ls /etc/kubernetes/tmp/{manifests_backup}")
    assert "image: k8s.gcr.io/kube-apiserver:v1.19.0" in ok(
        v119, "controlplane", f"sudo cat /etc/kubernetes/tmp/{manifests_backup}/kube-apiserver.yaml")
    etcd_backup = next(b for b in backups if b.startswith("kubeadm-backup-etcd-"))
    assert "member" in ok(v119, "controlplane", f"sudo ls /etc/kubernetes/tmp/{etcd_backup}")
    assert image(v119, "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy") == "k8s.gcr.io/kube-proxy:v1.20.0"
    assert image(v119, "/apis/apps/v1/namespaces/kube-system/deployments/coredns") == "k8s.gcr.io/coredns:1.7.0"
    config = v119.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"]["ClusterConfiguration"]
    assert "kubernetesVersion: v1.20.0" in config
    assert v119.get("/version")["gitVersion"] == "v1.20.0"
    nodes = ok(v119, "controlplane", "sudo kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
    assert [line.split()[-1] for line in nodes.splitlines()[1:]] == ["v1.19.0", "v1.19.0"]

    # Again at the same version: kubeadm re-applies, and nothing the API shows changes.
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in v119.pods("kube-system")}
    again = ok(v119, "controlplane", "sudo kubeadm upgrade apply v1.20.0 -y")
    assert "[upgrade/staticpods] Current and new manifests of kube-apiserver are equal, skipping upgrade" in again
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in v119.pods("kube-system")} == pods

    # The kubelet shows its new version once the package is upgraded and the service restarted.
    install(v119, "controlplane", "kubelet=1.20.0-00")
    assert kubelet_version(v119, "controlplane") == "v1.19.0"
    ok(v119, "controlplane", "sudo systemctl daemon-reload && sudo systemctl restart kubelet")
    wait_until(lambda: kubelet_version(v119, "controlplane") == "v1.20.0", 10, "the new kubelet version")

    # The worker: kubeadm upgrade node rewrites the kubelet's configuration only.
    install(v119, "node01", "kubeadm=1.20.0-00")
    before_mtime = ok(v119, "node01", "sudo stat -c %Y.%y /var/lib/kubelet/config.yaml")
    node_out = ok(v119, "node01", "sleep 1; sudo kubeadm upgrade node")
    assert node_out.splitlines()[-2:] == [
        "[upgrade] The configuration for this node was successfully updated!",
        "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."]
    assert "[upgrade] Skipping phase. Not a control plane node." in node_out
    assert ok(v119, "node01", "sudo stat -c %Y.%y /var/lib/kubelet/config.yaml") != before_mtime
    assert "manifests" in ok(v119, "node01", "ls /etc/kubernetes") and \
        not ok(v119, "node01", "sudo ls /etc/kubernetes/manifests").strip()


def test_kubelets_too_old_for_the_next_minor(v119: LabProcess) -> None:
    install(v119, "controlplane", "kubeadm=1.20.0-00")
    ok(v119, "controlplane", "sudo kubeadm upgrade apply v1.20.0 -y --etcd-upgrade=false")
    assert "kubeadm-backup-etcd" not in ok(v119, "controlplane", "sudo ls /etc/kubernetes/tmp")
    install(v119, "controlplane", "kubeadm=1.21.0-00")
    result = run(v119, "controlplane", "sudo kubeadm upgrade apply v1.21.0 -y")
    assert result.returncode == 1
    assert ("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n"
            "\t- There are kubelets in this cluster that are too old that have these versions [v1.19.0]\n\n"
            "Can be bypassed if you pass the --force flag\n") in result.stderr


def test_a_fault_on_kubeadm_upgrade_apply_leaves_kubeadm_version_working(v119: LabProcess) -> None:
    v119.set_machine_faults("controlplane", {"failures": {"kubeadm upgrade apply": {
        "exitCode": 1, "stderr": "[upgrade/apply] FATAL: couldn't upgrade control plane.\n"}}})
    assert ok(v119, "controlplane", "kubeadm version -o short") == "v1.19.0\n"
    assert run(v119, "controlplane", "sudo kubeadm upgrade plan").returncode == 0
    failed = run(v119, "controlplane", "sudo kubeadm upgrade apply v1.19.0 -y")
    assert (failed.returncode, failed.stderr) == (1, "[upgrade/apply] FATAL: couldn't upgrade control plane.\n")
    code, answer = v119.request("PUT", "/_lab/machines/controlplane/faults",
                                {"failures": {"kubeadm --force": {"exitCode": 1}}})
    assert (code, answer["message"]) == (400, "failures: 'kubeadm --force': '--force' is not a subcommand word "
                                              "(flags are not matched)")


def test_kubelet_fails_the_node_goes_not_ready_until_the_fault_is_cleared(v119: LabProcess) -> None:
    v119.set_machine_faults("node01", {"kubeletFails": True})
    assert v119.machine("node01")["faults"]["kubeletFails"] is True
    install(v119, "node01", "kubelet=1.19.16-00")
    assert ok(v119, "node01", "sudo systemctl restart kubelet; echo $?") == "0\n"
    assert run(v119, "node01", "systemctl is-active kubelet").stdout == "activating\n"
    wait_until(lambda: not ready(v119, "node01"), GRACE + 10, "node01 NotReady")
    assert kubelet_version(v119, "node01") == "v1.19.0"
    code, answer = v119.request("PUT", "/_lab/machines/node01/faults", {"kubeletFails": "yes"})
    assert (code, answer["message"]) == (400, "kubeletFails must be true or false")
    v119.set_machine_faults("node01", {})
    wait_until(lambda: ready(v119, "node01") and kubelet_version(v119, "node01") == "v1.19.16", 10,
               "node01 Ready with the installed kubelet")
    assert ok(v119, "node01", "systemctl is-active kubelet") == "active\n"


# -- a v1.28 fleet on pkgs.k8s.io -----------------------------------------------------------------


PROBE = ("-o Dir::Etc::SourceList=/tmp/probe.list -o Dir::Etc::SourceParts=- "
         "-o Dir::State::Lists=/tmp/probe-lists")


def test_the_pkgs_repository_offers_its_minor_only_until_it_is_switched(v128: LabProcess) -> None:
    versions = ok(v128, "node01", "apt-cache madison kubeadm").splitlines()
    assert versions[0] == "   kubeadm | 1.28.15-1.1 | https://pkgs.k8s.io/core:/stable:/v1.28/deb  Packages"
    assert all("| 1.28." in line for line in versions) and len(versions) == 16
    refused = run(v128, "node01", "sudo apt-get install -y --allow-change-held-packages kubeadm=1.29.0-1.1")
    assert (refused.returncode, refused.stderr.strip()) == (100, "E: Version '1.29.0-1.1' for 'kubeadm' was not found")

    # A read-only probe of the next minors: its own sources and lists, the machine's untouched.
    own = ok(v128, "node01", "sudo sha256sum /var/lib/kubemaint-lab/lists.json /etc/apt/sources.list.d/*")
    missing = run(v128, "node01", f"apt-get update {PROBE}")
    assert missing.returncode == 100 and "E: List directory /tmp/probe-lists/partial is missing." in missing.stderr
    ok(v128, "node01", "mkdir -p /tmp/probe-lists/partial && printf '%s\\n' "
                       "'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                       "https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /' "
                       "'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                       "https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' > /tmp/probe.list")
    fetched = ok(v128, "node01", f"apt-get update {PROBE}")
    assert "Hit:1 http://archive" not in fetched and "stable:/v1.29/deb  InRelease" in fetched
    probed = ok(v128, "node01", f"apt-cache madison kubeadm {PROBE}").splitlines()
    assert probed[0] == "   kubeadm | 1.30.14-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages"
    assert "   kubeadm | 1.29.15-1.1 | https://pkgs.k8s.io/core:/stable:/v1.29/deb  Packages" in probed
    assert not any("| 1.28." in line for line in probed)
    assert ok(v128, "node01", "sudo sha256sum /var/lib/kubemaint-lab/lists.json /etc/apt/sources.list.d/*") == own
    assert ok(v128, "node01", "apt-cache madison kubeadm").splitlines() == versions

    # The switch, as the upgrade docs do it.
    switch_repo_to_v129(v128, "node01")
    install(v128, "node01", "kubeadm=1.29.0-1.1")
    assert ok(v128, "node01", "kubeadm version -o short") == "v1.29.0\n"


def test_plan_and_apply_on_the_fleet_then_upgrade_node_on_another_control_plane(v128: LabProcess) -> None:
    switch_repo_to_v129(v128, "controlplane-1")
    install(v128, "controlplane-1", "kubeadm=1.29.15-1.1")
    out = ok(v128, "controlplane-1", "sudo kubeadm upgrade plan")
    assert "[upgrade/versions] Target version: v1.29.15\n" in out
    assert "[upgrade/versions] Latest version in the v1.28 series: v1.28.15\n" in out
    assert body(out).split("\n\n\n")[0] == """
Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':
COMPONENT   CURRENT        TARGET
kubelet     5 x v1.28.15   v1.29.15

Upgrade to the latest stable version:

COMPONENT                 CURRENT    TARGET
kube-apiserver            v1.28.15   v1.29.15
kube-controller-manager   v1.28.15   v1.29.15
kube-scheduler            v1.28.15   v1.29.15
kube-proxy                v1.28.15   v1.29.15
CoreDNS                   v1.10.1    v1.11.1
etcd                      3.5.9-0    3.5.10-0

You can now apply the upgrade by executing the following command:

\tkubeadm upgrade apply v1.29.15

_____________________________________________________________________"""
    assert "kubelet.config.k8s.io     v1beta1           v1beta1             no" in out

    ok(v128, "controlplane-1", "sudo kubeadm upgrade apply v1.29.15 -y")
    assert image(v128, "/api/v1/namespaces/kube-system/pods/etcd-controlplane-1") == "registry.k8s.io/etcd:3.5.10-0"
    assert image(v128, "/apis/apps/v1/namespaces/kube-system/deployments/coredns") == \
        "registry.k8s.io/coredns/coredns:v1.11.1"
    assert image(v128, "/api/v1/namespaces/kube-system/pods/kube-apiserver-controlplane-2").endswith(":v1.28.15")

    switch_repo_to_v129(v128, "controlplane-2")
    install(v128, "controlplane-2", "kubeadm=1.29.15-1.1")
    node_out = ok(v128, "controlplane-2", "sudo kubeadm upgrade node")
    assert '[upgrade] Upgrading your Static Pod-hosted control plane instance to version "v1.29.15"...' in node_out
    assert "[upgrade] The control plane instance for this node was successfully updated!" in node_out
    assert node_out.splitlines()[-1] == ("[upgrade] Now you should go ahead and upgrade the kubelet package using "
                                         "your package manager.")
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert image(v128, f"/api/v1/namespaces/kube-system/pods/{component}-controlplane-2") == \
            f"registry.k8s.io/{component}:v1.29.15"
