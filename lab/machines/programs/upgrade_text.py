"""What `kubeadm upgrade` computes and prints, per kubeadm minor. Pure: the machine's kubeadm
(kubeadm_upgrade.py) gathers the facts and writes the files.

- Which upgrades `plan` offers: cmd/kubeadm/app/phases/upgrade/compute.go (the latest patch of
  the cluster's minor, then the latest stable release kubeadm's own minor allows).
- The tables: Go's tabwriter as kubeadm sets it up (min width 10, padding 3); before v1.18 the
  components had display names (`API Server`), before v1.21 the last column was AVAILABLE, from
  v1.30 a NODE column lists each node.
- The version policy of `apply`: phases/upgrade/policy.go, mandatory and skippable (--force) errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.versions import parse

SEPARATOR = "_" * 69
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
CONFIG_HINT_OLD = ("[upgrade/config] FYI: You can look at this config file with "
                   "'kubectl -n kube-system get cm kubeadm-config -oyaml'")
CONFIG_HINT = CONFIG_HINT_OLD.replace("-oyaml", "-o yaml")
OLD_NAMES = {"kubelet": "Kubelet", "kube-apiserver": "API Server", "kube-controller-manager": "Controller Manager",
             "kube-scheduler": "Scheduler", "kube-proxy": "Kube Proxy", "CoreDNS": "CoreDNS", "etcd": "Etcd"}
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
COMPONENT_CONFIGS = (
    "The table below shows the current state of component configs as understood by this version of kubeadm.\n"
    """Configs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED" column require manual config upgrade or
resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually
upgrade to is denoted in the "PREFERRED VERSION" column.""")


def minor(version: str) -> int:
    return parse(version)[1]


def newer(a: str, b: str) -> bool:
    return parse(a) > parse(b)


@dataclass(frozen=True)
class ControlPlaneNode:
    node: str
    versions: dict[str, str]  # component (kube-apiserver, ..., etcd) -> image tag


@dataclass(frozen=True)
class Before:
    cluster: str  # the cluster's version (kube-apiserver)
    kubeadm: str  # kubeadm's own version
    kubelets: list[tuple[str, str]]  # (node, kubeletVersion), by node name
    control_planes: list[ControlPlaneNode]  # this node first
    kube_proxy: str = ""  # the kube-proxy DaemonSet's image tag ("" without one)
    coredns: str = ""  # the CoreDNS Deployment's image tag

    def kubelet_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, version in self.kubelets:
            counts[version] = counts.get(version, 0) + 1
        return counts


@dataclass(frozen=True)
class Upgrade:
    description: str  # "version in the v1.28 series" or "stable version"
    target: str
    kubeadm: str  # the kubeadm version it takes
    etcd: str
    coredns: str


@dataclass
class Findings:
    """The version lines kubeadm printed while it looked, and what it offers."""

    stable: str | None
    series: str | None  # the latest patch of the cluster's minor, when that branch exists
    upgrades: list[Upgrade] = field(default_factory=list)


def compute(before: Before, stable: str | None, series: str | None, etcd_of, coredns_of) -> Findings:
    """compute.go's GetAvailableUpgrades over the versions the release site gave."""
    found = Findings(stable, None)
    if stable is None:
        return found
    can_minor = newer(stable, before.cluster)
    if not newer(before.cluster, stable) and series is not None:  # the cluster's branch has a stable patch
        found.series = series
        can_minor = newer(stable, series)
        if newer(series, before.cluster):
            kubeadm = before.kubeadm if not newer(series, before.kubeadm) else series
            found.upgrades.append(Upgrade(f"version in the v1.{minor(before.cluster)} series", series, kubeadm,
                                          etcd_of(series), coredns_of(before.kubeadm)))
    if can_minor:
        found.upgrades.append(Upgrade("stable version", stable, stable, etcd_of(stable), coredns_of(before.kubeadm)))
    return found


# -- tables ---------------------------------------------------------------------------------------


def tabulate(rows: list[list[str]]) -> list[str]:
    """Go's text/tabwriter with kubeadm's settings (minwidth 10, padding 3, no trailing cell padding)."""
    widths: list[int] = []
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            width = max(10, len(cell) + 3)
            if index == len(widths):
                widths.append(width)
            else:
                widths[index] = max(widths[index], width)
    return ["".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + row[-1] for row in rows]


def _name(kubeadm_minor: int, component: str) -> str:
    return OLD_NAMES[component] if kubeadm_minor < 18 else component


def _last_column(kubeadm_minor: int) -> str:
    return "AVAILABLE" if kubeadm_minor < 21 else "TARGET"


def kubelet_table(kubeadm_minor: int, before: Before, target: str) -> list[str]:
    last = _last_column(kubeadm_minor)
    if kubeadm_minor >= 30:
        rows = [["COMPONENT", "NODE", "CURRENT", last]]
        rows += [["kubelet", node, version, target] for node, version in before.kubelets]
        return tabulate(rows)
    rows = [["COMPONENT", "CURRENT", last]]
    for index, (version, count) in enumerate(sorted(before.kubelet_counts().items())):
        rows.append([_name(kubeadm_minor, "kubelet") if index == 0 else "", f"{count} x {version}", target])
    return tabulate(rows)


def control_plane_table(kubeadm_minor: int, before: Before, upgrade: Upgrade) -> list[str]:
    last = _last_column(kubeadm_minor)
    proxy = before.kube_proxy or before.cluster
    coredns = before.coredns or upgrade.coredns
    if kubeadm_minor >= 30:
        rows = [["COMPONENT", "NODE", "CURRENT", last]]
        for component in CONTROL_PLANE:
            rows += [[component, cp.node, cp.versions.get(component, ""), upgrade.target]
                     for cp in before.control_planes]
        rows.append(["kube-proxy", "", proxy, upgrade.target])
        rows.append(["CoreDNS", "", coredns, upgrade.coredns])
        rows += [["etcd", cp.node, cp.versions.get("etcd", ""), upgrade.etcd] for cp in before.control_planes]
        return tabulate(rows)
    here = before.control_planes[0].versions if before.control_planes else {}
    rows = [["COMPONENT", "CURRENT", last]]
    rows += [[_name(kubeadm_minor, c), here.get(c, before.cluster), upgrade.target] for c in CONTROL_PLANE]
    rows.append([_name(kubeadm_minor, "kube-proxy"), proxy, upgrade.target])
    rows.append([_name(kubeadm_minor, "CoreDNS"), coredns, upgrade.coredns])
    rows.append([_name(kubeadm_minor, "etcd"), here.get("etcd", ""), upgrade.etcd])
    return tabulate(rows)


# -- plan -----------------------------------------------------------------------------------------


def plan_preamble(kubeadm_minor: int) -> list[str]:
    if kubeadm_minor >= 32:
        return ["[preflight] Running pre-flight checks.",
                '[upgrade/config] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
                '"kube-system"...',
                "[upgrade/config] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.",
                "[upgrade] Running cluster health checks", "[upgrade] Fetching available versions to upgrade to"]
    return ["[upgrade/config] Making sure the configuration is correct:",
            "[upgrade/config] Reading configuration from the cluster...",
            CONFIG_HINT_OLD if kubeadm_minor < 21 else CONFIG_HINT,
            "[preflight] Running pre-flight checks.", "[upgrade] Running cluster health checks",
            "[upgrade] Fetching available versions to upgrade to"]


def plan_versions(kubeadm_minor: int, before: Before, found: Findings, offline: bool) -> list[str]:
    """The [upgrade/versions] lines. kubeadm before v1.21 printed each fetched version twice (once
    where it fetched it, once where it used it), except a version given on the command line."""
    lines = [f"[upgrade/versions] Cluster version: {before.cluster}",
             f"[upgrade/versions] kubeadm version: {before.kubeadm}"]
    times = 1 if kubeadm_minor >= 21 or offline else 2
    if found.stable is not None:
        label = "Target version" if kubeadm_minor >= 21 else "Latest stable version"
        lines += [f"[upgrade/versions] {label}: {found.stable}"] * times
    if found.series is not None:
        lines += [f"[upgrade/versions] Latest version in the v1.{minor(before.cluster)} series: {found.series}"] * times
    return lines


def plan_body(kubeadm_minor: int, before: Before, found: Findings) -> list[str]:
    if not found.upgrades:
        return ["", "Awesome, you're up-to-date! Enjoy!"] if kubeadm_minor < 21 else []
    lines: list[str] = [""]
    for upgrade in found.upgrades:
        if before.kubelets:
            lines.append("Components that must be upgraded manually after you have upgraded the control plane with "
                         "'kubeadm upgrade apply':")
            lines += kubelet_table(kubeadm_minor, before, upgrade.target)
            lines.append("")
        lines += [f"Upgrade to the latest {upgrade.description}:", ""]
        lines += control_plane_table(kubeadm_minor, before, upgrade)
        lines += ["", "You can now apply the upgrade by executing the following command:", "",
                  f"\tkubeadm upgrade apply {upgrade.target}", ""]
        if upgrade.kubeadm != before.kubeadm:
            lines += [f"Note: Before you can perform this upgrade, you have to update kubeadm to {upgrade.kubeadm}.",
                      ""]
        lines += [SEPARATOR, ""]
    if kubeadm_minor >= 21:
        lines += ["", COMPONENT_CONFIGS, ""]
        lines += tabulate([["API GROUP", "CURRENT VERSION", "PREFERRED VERSION", "MANUAL UPGRADE REQUIRED"],
                           ["kubeproxy.config.k8s.io", "v1alpha1", "v1alpha1", "no"],
                           ["kubelet.config.k8s.io", "v1beta1", "v1beta1", "no"]])
        lines += [SEPARATOR, ""]
    return lines


def remote_newer(kubeadm: str, stable: str | None) -> bool:
    return stable is not None and minor(stable) > minor(kubeadm)


# -- apply: version policy --------------------------------------------------------------------------


# From when kubeadm refuses (unless --force) to take a cluster to an older minor than its own.
KUBEADM_SKEW_CHECK_FROM = 25


def kubelet_skew(kubeadm_minor: int) -> int:
    return 1 if kubeadm_minor <= 28 else 3


def policy(target: str, before: Before) -> tuple[list[str], list[str]]:
    """(mandatory errors, errors --force skips), as policy.go words them."""
    mandatory: list[str] = []
    skippable: list[str] = []
    new_minor, cluster_minor, kubeadm_minor = minor(target), minor(before.cluster), minor(before.kubeadm)
    if new_minor > cluster_minor + 1:
        mandatory.append(f'Specified version to upgrade to "{target}" is too high; kubeadm can upgrade only 1 minor '
                         f'version at a time')
    if new_minor < cluster_minor - 1:
        mandatory.append(f'Specified version to downgrade to "{target}" is too low; kubeadm can downgrade only 1 minor '
                         f'version at a time')
    if newer(target, before.kubeadm):
        if new_minor > kubeadm_minor:
            mandatory.append(f'Specified version to upgrade to "{target}" is at least one minor release higher than '
                             f'the kubeadm minor release ({new_minor} > {kubeadm_minor}). Such an upgrade is not '
                             f'supported')
        else:
            skippable.append(f'Specified version to upgrade to "{target}" is higher than the kubeadm version '
                             f'"{before.kubeadm}". Upgrade kubeadm first using the tool you used to install kubeadm')
    if kubeadm_minor > new_minor and kubeadm_minor >= KUBEADM_SKEW_CHECK_FROM:
        skippable.append(f'kubeadm version "{before.kubeadm}" can only be used to upgrade to Kubernetes version '
                         f'"v1.{kubeadm_minor}"')
    limit = kubelet_skew(kubeadm_minor)
    too_old = sorted({v for _, v in before.kubelets if new_minor > minor(v) + limit})
    if too_old:
        skippable.append(f"There are kubelets in this cluster that are too old that have these versions "
                         f"[{' '.join(too_old)}]")
    return mandatory, skippable


def policy_failure(kubeadm_minor: int, errors: list[str], fatal: bool) -> str:
    """The error kubeadm exits 1 with (stderr)."""
    what = "fatal errors" if fatal else "errors"
    listed = "".join(f"\t- {e}\n" for e in errors)
    tail = "Please fix the misalignments highlighted above and try upgrading again" if fatal \
        else "Can be bypassed if you pass the --force flag"
    if kubeadm_minor >= 32:
        head = f"error execution phase preflight: the version argument is invalid due to these {what}:"
    else:
        head = f"[upgrade/version] FATAL: the --version argument is invalid due to these {what}:"
    return f"{head}\n\n{listed}\n{tail}\n{STACK_HINT}"


def forced(errors: list[str]) -> list[str]:
    return [f"[upgrade/version] Found {len(errors)} potential version compatibility errors but skipping since the "
            f"--force flag is set: ", "", *[f"\t- {e}" for e in errors]]


def preflight_failure(kubeadm_minor: int, errors: list[str], phase_prefix: str) -> str:
    listed = "".join(f"\t[ERROR {e}\n" for e in errors)
    head = "error execution phase preflight: " if kubeadm_minor >= 32 else phase_prefix
    return (f"{head}[preflight] Some fatal errors occurred:\n{listed}"
            f"[preflight] If you know what you are doing, you can make a check non-fatal with "
            f"`--ignore-preflight-errors=...`\n{STACK_HINT}")


def not_root(kubeadm_minor: int) -> str:
    return preflight_failure(kubeadm_minor, ["IsPrivilegedUser]: user is not running as root"], "")


def prompt(kubeadm_minor: int) -> str:
    if kubeadm_minor >= 29:
        return "[upgrade] Are you sure you want to proceed? [y/N]: "
    return "[upgrade/confirm] Are you sure you want to proceed with the upgrade? [y/N]: "


def declined(kubeadm_minor: int) -> str:
    reason = "won't proceed; the user didn't answer (Y|y) in order to continue"
    head = "error execution phase preflight: " if kubeadm_minor >= 32 else "[upgrade/confirm] FATAL: "
    return f"{head}{reason}\n{STACK_HINT}"


def apply_success(kubeadm_minor: int, target: str) -> list[str]:
    if kubeadm_minor >= 32:
        return ["", f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".', "",
                "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order."]
    return ["", f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!', "",
            "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets "
            "if you haven't already done so."]


def node_success(kubeadm_minor: int) -> list[str]:
    if kubeadm_minor >= 32:
        return ["[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!",
                "[upgrade] SUCCESS! A node of your cluster was upgraded."]
    return ["[upgrade] The configuration for this node was successfully updated!",
            "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."]
