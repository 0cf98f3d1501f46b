"""The machines' programs (lab/machines/programs) answer as Debian's apt, dpkg, systemd and the
Kubernetes binaries do: same messages, same exit codes. Run here in-process over a machine's
state in a temporary directory; tests/test_machines.py runs them on real machines over SSH."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lab.machines import disk, layout
from lab.machines import spec as machine_spec
from lab.machines.programs import PROGRAMS, load, state
from lab.machines.programs.boot import boot
from lab.machines.programs.debversion import compare
from lab.machines.programs.repos import Repo, parse_sources
from lab.machines.programs.system import System
from lab.scenario import load as load_scenario

HELD = "E: Held packages were changed and -y was used without --allow-change-held-packages."


class Machine:
    """A machine's files without the machine: its state and apt source under a temporary root."""

    def __init__(self, root: Path, scenario: str = "seeds-os-upgrade", node: str = "node01") -> None:
        scn = load_scenario(scenario)
        addresses = {n["name"]: f"127.9.9.{i + 1}" for i, n in enumerate(scn.nodes)}
        spec = next(s for s in machine_spec.build(scn.machines, scn.nodes, scn.version, addresses) if s.name == node)
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        disk.write(root, [*layout.machine_state(spec),
                          layout.Entry(state.KUBERNETES_LIST, (spec.repo.source_line() + "\n").encode()),
                          layout.Entry("/etc/hostname", f"{node}\n".encode())])
        self.clock = 1_700_000_000.0
        boot(self.system(), "boot-1")

    def system(self, euid: int = 0, stdin: str = "") -> System:
        self.out, self.err = io.StringIO(), io.StringIO()
        return System(self.root, euid=euid, stdin=io.StringIO(stdin), stdout=self.out, stderr=self.err,
                      clock=lambda: self.clock)

    def run(self, command: str, *, user: bool = False, stdin: str = "") -> tuple[int, str, str]:
        name, *args = command.split()
        code = load(name)(self.system(euid=1000 if user else 0, stdin=stdin), args)
        return code, self.out.getvalue(), self.err.getvalue()

    def packages(self) -> dict:
        return state.packages(System(self.root))["packages"]


@pytest.fixture
def node(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


# -- apt-get install and held packages ------------------------------------------------------------


def test_installing_a_held_package_with_yes_fails_with_apts_message_and_exit_100(node: Machine) -> None:
    code, out, err = node.run("apt-get install -y kubeadm=1.20.0-00")
    assert (code, err.strip()) == (100, HELD)
    assert "The following held packages will be changed:\n  kubeadm\n" in out
    assert node.packages()["kubeadm"]["version"] == "1.19.0-00"


def test_allow_change_held_packages_installs_and_the_hold_stays(node: Machine) -> None:
    code, out, _ = node.run("apt-get install -y --allow-change-held-packages kubeadm=1.20.0-00")
    assert code == 0
    assert "Unpacking kubeadm (1.20.0-00) over (1.19.0-00) ...\n" in out
    assert "Setting up kubeadm (1.20.0-00) ...\n" in out
    assert node.packages()["kubeadm"] == {**node.packages()["kubeadm"], "version": "1.20.0-00", "held": True}


def test_without_yes_apt_asks_and_aborts_when_nobody_answers(node: Machine) -> None:
    code, out, _ = node.run("apt-get install kubeadm=1.20.0-00")
    assert code == 1
    assert out.endswith("Do you want to continue? [Y/n] Abort.\n")
    assert node.run("apt-get install kubeadm=1.20.0-00", stdin="y\n")[0] == 0
    assert node.packages()["kubeadm"]["version"] == "1.20.0-00"


def test_the_unhold_install_hold_sequence_of_the_upgrade_docs(node: Machine) -> None:
    assert node.run("apt-mark unhold kubeadm")[1] == "Canceled hold on kubeadm.\n"
    assert node.run("apt-get update")[0] == 0
    assert node.run("apt-get install -y kubeadm=1.20.0-00")[0] == 0
    assert node.run("apt-mark hold kubeadm")[1] == "kubeadm set on hold.\n"
    assert node.run("apt-mark showhold")[1] == "kubeadm\nkubectl\nkubelet\n"


@pytest.mark.parametrize(("command", "message"), [
    ("apt-get install -y kubeadm=1.99.0-00", "E: Version '1.99.0-00' for 'kubeadm' was not found"),
    ("apt-get install -y nosuch", "E: Unable to locate package nosuch"),
    ("apt-get --frob install kubeadm", "E: Command line option --frob is not understood in combination with the "
                                       "other options"),
    ("apt-get frob", "E: Invalid operation frob"),
    ("apt-mark hold nosuch", "E: Unable to locate package nosuch\nE: No packages found"),
    ("apt-mark hold", "E: No packages found"),
    ("apt-mark frob kubeadm", "E: Invalid operation frob"),
], ids=["no-version", "no-package", "bad-option", "bad-operation", "mark-unknown", "mark-nothing", "mark-bad-op"])
def test_bad_input_gets_apts_message_and_exit_100(node: Machine, command: str, message: str) -> None:
    before = node.packages()
    code, _, err = node.run(command)
    assert (code, err.strip()) == (100, message)
    assert node.packages() == before


def test_a_glob_version_picks_the_newest_match(node: Machine) -> None:
    code, out, _ = node.run("apt-get install -y --allow-change-held-packages kubelet=1.19.*")
    assert code == 0 and "Unpacking kubelet (1.19.16-00) over (1.19.0-00)" in out


def test_a_downgrade_needs_allow_downgrades(node: Machine) -> None:
    code, _, err = node.run("apt-get install -y --allow-change-held-packages kubectl=1.18.0-00")
    assert (code, err.strip()) == (100, "E: Packages were downgraded and -y was used without --allow-downgrades.")
    assert node.run("apt-get install -y --allow-change-held-packages --allow-downgrades kubectl=1.18.0-00")[0] == 0


def test_asking_for_the_installed_version_changes_nothing(node: Machine) -> None:
    code, out, _ = node.run("apt-get install -y kubeadm=1.19.0-00")
    assert code == 0
    assert "kubeadm is already the newest version (1.19.0-00).\n" in out


def test_not_root_apt_cannot_take_its_locks(node: Machine) -> None:
    code, _, err = node.run("apt-get install -y kubeadm", user=True)
    assert code == 100
    assert err.splitlines() == [
        "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)",
        "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?"]
    code, _, err = node.run("apt-get update", user=True)
    assert (code, err.splitlines()[-1]) == (100, "E: Unable to lock directory /var/lib/apt/lists/")
    assert node.run("apt-mark hold kubeadm", user=True)[1] == "kubeadm was already set on hold.\n"
    code, _, err = node.run("apt-mark unhold kubeadm", user=True)
    assert code == 100 and err.strip().endswith("E: Executing dpkg failed. Are you root?")


# -- updates, upgrades and reboot-required ------------------------------------------------------


def test_upgrade_keeps_held_packages_back_and_a_kernel_or_libc_asks_for_a_reboot(node: Machine) -> None:
    code, out, _ = node.run("apt-get upgrade -y")
    assert code == 0
    assert "The following packages have been kept back:\n  kubeadm kubectl kubelet\n" in out
    assert "The following packages will be upgraded:\n  libc6 linux-image-gcp openssl\n" in out
    assert "3 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.\n" in out
    assert (node.root / "var/run/reboot-required").read_text() == "*** System restart required ***\n"
    assert (node.root / "var/run/reboot-required.pkgs").read_text() == "libc6\nlinux-image-gcp\n"
    assert node.packages()["kubeadm"]["version"] == "1.19.0-00"
    assert boot(node.system(), "boot-2")["kernel"] == "5.4.0-1040-gcp", "the new kernel runs after a reboot"


def test_apt_list_upgradable_and_a_simulated_upgrade_change_nothing(node: Machine) -> None:
    code, out, err = node.run("apt list --upgradable")
    assert code == 0 and "WARNING: apt does not have a stable CLI interface" in err
    assert "libc6/bionic-updates 2.27-3ubuntu1.6 amd64 [upgradable from: 2.27-3ubuntu1.4]" in out.splitlines()
    before = node.packages()
    code, out, _ = node.run("apt-get -s upgrade", user=True)
    assert code == 0 and "Inst libc6 [2.27-3ubuntu1.4] (2.27-3ubuntu1.6 bionic-updates [amd64])" in out
    assert node.packages() == before


def test_madison_lists_what_the_configured_repo_offered_at_the_last_update(tmp_path: Path) -> None:
    node = Machine(tmp_path, "three-workers", "node01")
    rows = node.run("apt-cache madison kubeadm", user=True)[1].splitlines()
    assert rows[0] == "   kubeadm | 1.27.16-1.1 | https://pkgs.k8s.io/core:/stable:/v1.27/deb  Packages"
    assert len(rows) == 17
    sources = node.root / state.KUBERNETES_LIST.lstrip("/")
    sources.write_text(sources.read_text().replace("v1.27", "v1.28"))
    assert node.run("apt-cache madison kubeadm")[1].splitlines()[0].split("|")[1].strip() == "1.27.16-1.1", \
        "apt knows the new repo only after apt-get update"
    code, out, _ = node.run("apt-get update")
    fetched = "Get:3 https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:/v1.28/deb  InRelease"
    assert code == 0 and fetched in out
    assert node.run("apt-cache madison kubeadm")[1].splitlines()[0] == \
        "   kubeadm | 1.28.15-1.1 | https://pkgs.k8s.io/core:/stable:/v1.28/deb  Packages"


def test_a_repo_for_a_minor_that_does_not_exist_fails_the_update(tmp_path: Path) -> None:
    node = Machine(tmp_path, "three-workers", "node01")
    sources = node.root / state.KUBERNETES_LIST.lstrip("/")
    sources.write_text(sources.read_text().replace("v1.27", "v1.99"))
    code, _, err = node.run("apt-get update")
    assert code == 100
    assert "E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.99/deb/ InRelease' is not signed." in err
    assert node.run("apt-cache madison kubeadm")[1] == ""


# -- dpkg ------------------------------------------------------------------------------------------


def test_dpkg_list_marks_held_packages_and_sizes_its_columns(node: Machine) -> None:
    code, out, _ = node.run("dpkg -l kube*", user=True)
    lines = out.splitlines()
    assert code == 0
    assert lines[3] == "||/ Name           Version      Architecture Description"
    assert lines[5].split() == ["hi", "kubeadm", "1.19.0-00", "amd64", "Kubernetes", "Cluster", "Bootstrapping", "Tool"]
    assert lines[8].split()[:3] == ["ii", "kubernetes-cni", "0.8.7-00"]
    code, _, err = node.run("dpkg -l nosuch")
    assert (code, err) == (1, "dpkg-query: no packages found matching nosuch\n")


def test_dpkg_status_and_compare_versions(node: Machine) -> None:
    assert "Status: hold ok installed\n" in node.run("dpkg -s kubelet")[1]
    assert node.run("dpkg --compare-versions 1.20.0-00 gt 1.19.16-00")[0] == 0
    assert node.run("dpkg --compare-versions 1:1.0 lt 2.0")[0] == 1
    assert node.run("dpkg")[0] == 2


def test_dpkg_query_shows_installed_versions_in_the_format_asked(node: Machine) -> None:
    code, out, err = node.run("dpkg-query -W -f=${Package}=${Version}|${db:Status-Abbrev}\\n kubeadm kubelet nosuch",
                              user=True)
    assert (code, err) == (1, "dpkg-query: no packages found matching nosuch\n")
    assert out == "kubeadm=1.19.0-00|hi \nkubelet=1.19.0-00|hi \n"
    assert node.run("dpkg-query -W kubectl")[1] == "kubectl\t1.19.0-00\n"
    assert node.run("dpkg-query")[0] == 2


@pytest.mark.parametrize(("a", "b", "sign"), [
    ("1.20.0-00", "1.19.16-00", 1), ("1.27.3-1.1", "1.27.3-1.1", 0), ("1.0~rc1", "1.0", -1), ("1:0.1", "9.9", 1),
    ("2.27-3ubuntu1.6", "2.27-3ubuntu1.4", 1), ("1.1.1-1ubuntu2.1~18.04.23", "1.1.1-1ubuntu2.1~18.04.7", 1),
    ("5.4.0.1040", "5.4.0.1036", 1), ("1.0a", "1.0", 1), ("1.0", "1.0.0", -1),
])
def test_debian_version_order(a: str, b: str, sign: int) -> None:
    result = compare(a, b)
    assert (result > 0) - (result < 0) == sign


# -- systemctl and the kubelet -------------------------------------------------------------------


def test_a_restarted_kubelet_runs_the_installed_version(node: Machine) -> None:
    node.run("apt-get install -y --allow-change-held-packages kubelet=1.20.0-00")
    assert node.run("kubelet --version")[1] == "Kubernetes v1.20.0\n"
    services = state.services(System(node.root))
    assert services["kubelet"]["version"] == "v1.19.0", "installing does not restart the kubelet"
    assert node.run("systemctl daemon-reload")[0] == 0
    assert node.run("systemctl restart kubelet")[0] == 0
    assert state.services(System(node.root))["kubelet"]["version"] == "v1.20.0"


def test_systemctl_stop_is_active_and_its_errors(node: Machine) -> None:
    assert node.run("systemctl is-active kubelet") == (0, "active\n", "")
    assert node.run("systemctl stop kubelet")[0] == 0
    assert node.run("systemctl is-active kubelet") == (3, "inactive\n", "")
    assert node.run("systemctl status kubelet")[0] == 3
    assert node.run("systemctl restart nosuch") == (5, "", "Failed to restart nosuch.service: Unit nosuch.service "
                                                         "not found.\n")
    assert node.run("systemctl restart kubelet", user=True) == (1, "", "Failed to restart kubelet.service: "
                                                                   "Interactive authentication required.\nSee system "
                                                                   "logs and 'systemctl status kubelet.service' for "
                                                                   "details.\n")
    assert node.run("systemctl frob") == (1, "", "Unknown operation frob.\n")
    assert node.run("systemctl show -p ActiveState --value kubelet") == (0, "inactive\n", "")


def test_reboot_needs_root_and_leaves_a_request_for_the_lab(node: Machine) -> None:
    code, _, err = node.run("reboot", user=True)
    assert code == 1 and err.splitlines()[1] == "Failed to reboot system via logind: Interactive authentication " \
                                                "required."
    assert not (node.root / "run/kubemaint-lab/power").exists()
    assert node.run("systemctl reboot")[0] == 0
    assert (node.root / "run/kubemaint-lab/power").read_text() == "reboot\n"


# -- versions and the kernel ---------------------------------------------------------------------


def test_the_kubernetes_binaries_report_their_packages_versions(tmp_path: Path) -> None:
    node = Machine(tmp_path, "seeds-upgrade")
    assert node.run("kubeadm version -o short", user=True)[1] == "v1.19.0\n"
    assert node.run("kubeadm version")[1].startswith('kubeadm version: &version.Info{Major:"1", Minor:"19", '
                                                     'GitVersion:"v1.19.0"')
    assert node.run("kubectl version --client")[1].startswith('Client Version: version.Info{Major:"1", Minor:"19"')
    assert node.run("kubectl version --client --short")[1] == "Client Version: v1.19.0\n"
    assert node.run("kubeadm frob")[2].startswith('unknown command "frob" for "kubeadm"')
    newer = Machine(tmp_path / "newer", "three-workers", "node02")
    code, out, err = newer.run("kubectl version --client")
    assert code == 0
    assert out.splitlines()[0].startswith('Client Version: version.Info{Major:"1", Minor:"27", GitVersion:"v1.27.3"')
    assert out.splitlines()[1] == "Kustomize Version: v5.0.1"
    assert err.startswith("WARNING: This version information is deprecated")


def test_uname_and_uptime_read_the_boot_record(node: Machine) -> None:
    assert node.run("uname -r")[1] == "5.4.0-1036-gcp\n"
    assert node.run("uname")[1] == "Linux\n"
    assert node.run("uname -snr")[1] == "Linux node01 5.4.0-1036-gcp\n"
    assert node.run("uname -x")[0] == 1
    node.clock += 3 * 3600 + 5 * 60
    assert node.run("uptime -p")[1] == "up 3 hours, 5 minutes\n"
    assert " up  3:05,  1 user," in node.run("uptime")[1]


def test_the_lab_fault_file_makes_a_program_fail(node: Machine) -> None:
    System(node.root).write_json(state.FAULTS, {"failures": {"apt-get": {"exitCode": 100, "stderr": "E: boom\n"}}})
    assert state.failure(System(node.root), "apt-get") == {"exitCode": 100, "stderr": "E: boom\n"}
    assert state.failure(System(node.root), "dpkg") is None


def test_every_program_has_a_module_and_a_debian_path() -> None:
    for name, (_, _, path) in PROGRAMS.items():
        assert callable(load(name)) and path.startswith(("/usr/bin/", "/usr/sbin/"))


def test_the_sources_line_names_the_repo_and_its_minor() -> None:
    assert parse_sources(Repo("pkgs", "1.30").source_line()) == (Repo("pkgs", "1.30"), "")
    assert parse_sources(Repo("legacy").source_line()) == (Repo("legacy"), "")
    assert parse_sources("deb http://example.com/ stable main\n") == (None, "deb http://example.com/ stable main")
