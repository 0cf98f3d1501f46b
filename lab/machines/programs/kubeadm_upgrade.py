"""`kubeadm upgrade plan|apply|node` on a lab machine: the facts from the machine's files (static
pod manifests, the release table in archive.json) and from the API through the machine's own
kubeconfig (admin.conf on control planes, kubelet.conf on workers), as kubeadm gathers them; what
it prints comes from upgrade_text.py.

What `apply` changes is what kubeadm changes: the static pod manifests' image tags (the lab's
kubelet then shows new mirror pods, whose config.hash kubeadm waits for), the kube-proxy
DaemonSet's and the CoreDNS Deployment's images, the kubeadm-config ConfigMap's
kubernetesVersion, and backups under /etc/kubernetes/tmp that it never cleans up.
"""

from __future__ import annotations

import os
import re
import shutil
import time

from lab.machines.programs import releases, repos, state
from lab.machines.programs import upgrade_text as text
from lab.machines.programs.kubeapi import ADMIN_CONF, KUBELET_CONF, ApiError, Kube, NoKubeconfig
from lab.machines.programs.system import System
from lab.versions import parse

MANIFESTS = "/etc/kubernetes/manifests"
TMP = "/etc/kubernetes/tmp"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
ETCD_DATA = "/var/lib/etcd"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
IMAGE = re.compile(r"^(\s*(?:-\s+)?image:\s*)(\S+)\s*$", re.MULTILINE)
KUBERNETES_VERSION = re.compile(r"^(\s*kubernetesVersion:\s*)(\S+)\s*$", re.MULTILINE)
UPGRADE_TIMEOUT = 300.0  # kubeadm's UpgradeManifestTimeout, 5m0s (scaled by the lab's time scale)
KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
KUBE_PROXY = "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy"
COREDNS = "/apis/apps/v1/namespaces/kube-system/deployments/coredns"
FLAGS = {"-y": "yes", "--yes": "yes", "--dry-run": "dry_run", "--force": "force", "-f": "force",
         "--allow-experimental-upgrades": "", "--allow-release-candidate-upgrades": "", "--print-config": "",
         "--certificate-renewal": "", "--skip-phases": "", "--ignore-preflight-errors": "", "--config": "",
         "--kubeconfig": "", "--patches": "", "--feature-gates": "", "--etcd-upgrade": "etcd_upgrade", "-o": "",
         "--output": "", "--show-managed-fields": "", "--v": "", "-v": ""}
VALUE_FLAGS = ("--skip-phases", "--ignore-preflight-errors", "--config", "--kubeconfig", "--patches", "--feature-gates",
               "-o", "--output", "--v", "-v")


class Failed(Exception):
    """kubeadm stops: this message on stderr, exit 1."""


# -- arguments ----------------------------------------------------------------------------------


def parse_args(args: list[str]) -> tuple[dict, list[str]]:
    options = {"yes": False, "dry_run": False, "force": False, "etcd_upgrade": True}
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if not arg.startswith("-"):
            words.append(arg)
            continue
        name, has_value, value = arg.partition("=")
        if name not in FLAGS:
            raise Failed(f"unknown flag: {name}\n{text.STACK_HINT}")
        if name in VALUE_FLAGS and not has_value:
            skip = True
        key = FLAGS[name]
        if key:  # --etcd-upgrade=false, --yes=true: Go's boolean flags take a value after "="
            options[key] = value.lower() not in ("false", "0") if has_value else True
    return options, words


def normalized(version: str) -> str:
    wanted = version if version.startswith("v") else f"v{version}"
    parse(wanted)
    return wanted


# -- facts --------------------------------------------------------------------------------------


def manifest_path(component: str) -> str:
    return f"{MANIFESTS}/{component}.yaml"


def manifest_tags(system: System) -> dict[str, str]:
    tags = {}
    for component in COMPONENTS:
        content = system.read_text(manifest_path(component))
        match = IMAGE.search(content or "")
        if match:
            tags[component] = releases.image_tag(match[2])
    return tags


def is_control_plane(system: System) -> bool:
    return system.path(manifest_path("kube-apiserver")).is_file()


def client(system: System, path: str) -> Kube:
    try:
        return Kube.from_kubeconfig(system, path)
    except NoKubeconfig as exc:
        raise Failed(f'couldn\'t create a Kubernetes client from file "{path}": failed to load admin kubeconfig: '
                     f'{exc}\n{text.STACK_HINT}') from exc


def api_failure(exc: ApiError) -> Failed:
    return Failed(f"{exc}\n{text.STACK_HINT}")


def repo_kind(system: System) -> str:
    repo, _ = repos.parse_sources(system.read_text(state.KUBERNETES_LIST, "") or "")
    return repo.kind if repo is not None else "legacy"


def time_scale(system: System) -> float:
    return float((system.read_json(state.LAB_SETTINGS, {}) or {}).get("timeScale", 1.0))


def is_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def is_control_plane_node(node: dict) -> bool:
    labels = node["metadata"].get("labels") or {}
    return "node-role.kubernetes.io/control-plane" in labels or "node-role.kubernetes.io/master" in labels


def image_of(obj: dict | None) -> str:
    containers = ((((obj or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return releases.image_tag(containers[0]["image"]) if containers else ""


def cluster_config_version(kube: Kube) -> str | None:
    config = kube.get_or_none(KUBEADM_CONFIG)
    match = KUBERNETES_VERSION.search(((config or {}).get("data") or {}).get("ClusterConfiguration", ""))
    return match[2] if match else None


def gather(system: System, kube: Kube, kubeadm: str) -> tuple[text.Before, list[dict]]:
    """What kubeadm knows before it decides: versions of every part, and the nodes."""
    here = system.hostname()
    local = manifest_tags(system)
    nodes = sorted(kube.get("/api/v1/nodes").get("items") or [], key=lambda n: n["metadata"]["name"])
    kubelets = [(n["metadata"]["name"], n["status"]["nodeInfo"].get("kubeletVersion", "")) for n in nodes]
    control_planes = [text.ControlPlaneNode(here, local)]
    if text.minor(kubeadm) >= 30:  # one row per control-plane node: their mirror pods say what they run
        for node in nodes:
            name = node["metadata"]["name"]
            if name == here or not is_control_plane_node(node):
                continue
            versions = {}
            for component in COMPONENTS:
                pod = kube.get_or_none(f"/api/v1/namespaces/kube-system/pods/{component}-{name}")
                if pod:
                    versions[component] = releases.image_tag(pod["spec"]["containers"][0]["image"])
            control_planes.append(text.ControlPlaneNode(name, versions))
    cluster = local.get("kube-apiserver") or cluster_config_version(kube) or kubeadm
    before = text.Before(cluster, kubeadm, kubelets, control_planes, image_of(kube.get_or_none(KUBE_PROXY)),
                         image_of(kube.get_or_none(COREDNS)))
    return before, nodes


def health(kubeadm_minor: int, nodes: list[dict], here_manifests: dict[str, str]) -> None:
    """The checks of `[upgrade] Running cluster health checks`."""
    errors = []
    not_ready = [n["metadata"]["name"] for n in nodes if is_control_plane_node(n) and not is_ready(n)]
    if not_ready:
        errors.append(f"ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: "
                      f"[{' '.join(not_ready)}]")
    for component in COMPONENTS[1:]:
        if component not in here_manifests:
            errors.append(f"StaticPodManifest]: the manifest for component {component} is missing: "
                          f"open {manifest_path(component)}: no such file or directory")
    if errors:
        raise Failed(text.preflight_failure(kubeadm_minor, errors, "[upgrade/health] FATAL: "))


def klog(message: str) -> str:
    now = time.time()
    return (time.strftime("I%m%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
            f"{os.getpid():>8} version.go:256] {message}")


def releases_seen(system: System, before: text.Before, offline: str | None) -> tuple[str | None, str | None]:
    """(stable, latest of the cluster's series) as kubeadm reads dl.k8s.io: stable.txt, falling back
    to stable-1.<kubeadm's minor>.txt when that is newer than kubeadm's minor, and stable-1.<cluster's>."""
    if offline:
        return offline, offline
    archive = system.read_json(state.ARCHIVE, {}) or {}
    kind = repo_kind(system)
    stable = releases.stable(archive, kind)
    kubeadm_minor = text.minor(before.kubeadm)
    if stable is not None and text.minor(stable) > kubeadm_minor:
        system.err(klog(f"remote version is much newer: {stable}; falling back to: stable-1.{kubeadm_minor}"))
        stable = releases.stable_of(archive, kind, kubeadm_minor) or before.kubeadm
    if stable is not None and text.newer(before.kubeadm, stable):
        stable = before.kubeadm  # a kubeadm newer than the release site knows
    return stable, releases.stable_of(archive, kind, text.minor(before.cluster))


# -- main ---------------------------------------------------------------------------------------


def kubeadm_upgrade(system: System, version: str, args: list[str]) -> int:
    kubeadm_minor = text.minor(version)
    try:
        options, words = parse_args(args)
        command = words[0] if words else ""
        if command not in ("plan", "apply", "node", "diff"):
            if command:
                raise Failed(f'unknown command "{command}" for "kubeadm upgrade"\n{text.STACK_HINT}')
            system.out("Upgrade your cluster smoothly to a newer version with this command\n\nUsage:\n  kubeadm "
                       "upgrade [flags]\n  kubeadm upgrade [command]\n\nAvailable Commands:\n  apply       Upgrade "
                       "your Kubernetes cluster to the specified version\n  diff        Show what differences "
                       "would be applied to existing static pod manifests. See also: kubeadm upgrade apply "
                       "--dry-run\n  node        Upgrade commands for a node in the cluster\n  plan        Check "
                       "which versions are available to upgrade to and validate whether your current cluster is "
                       "upgradeable.")
            return 0
        if command == "diff":
            raise Failed("kubeadm upgrade diff: not simulated by the lab's machines")
        if not system.is_root:
            if kubeadm_minor < 32:
                system.out("[preflight] Running pre-flight checks.")
            raise Failed(text.not_root(kubeadm_minor))
        if command == "plan":
            return plan(system, version, words[1:])
        if command == "apply":
            return apply(system, version, words[1:], options)
        return node(system, version, options)
    except Failed as failure:
        system.err(str(failure))
        return 1
    except ApiError as exc:
        system.err(f"{exc}\n{text.STACK_HINT}")
        return 1


def plan(system: System, kubeadm: str, words: list[str]) -> int:
    kubeadm_minor = text.minor(kubeadm)
    try:
        offline = normalized(words[0]) if words else None
    except ValueError as exc:
        raise Failed(f"{exc}\n{text.STACK_HINT}") from exc
    kube = client(system, ADMIN_CONF)
    for line in text.plan_preamble(kubeadm_minor)[:-2]:
        system.out(line)
    before, nodes = gather(system, kube, kubeadm)
    system.out("[upgrade] Running cluster health checks")
    health(kubeadm_minor, nodes, manifest_tags(system))
    system.out("[upgrade] Fetching available versions to upgrade to")
    stable, series = releases_seen(system, before, offline)
    found = text.compute(before, stable, series, releases.etcd_version, releases.coredns_version)
    for line in text.plan_versions(kubeadm_minor, before, found, offline is not None):
        system.out(line)
    for line in text.plan_body(kubeadm_minor, before, found):
        system.out(line)
    return 0


def _apply_preamble(kubeadm_minor: int) -> list[str]:
    if kubeadm_minor >= 32:
        return text.plan_preamble(kubeadm_minor)[:3]
    return text.plan_preamble(kubeadm_minor)[:4]


def apply(system: System, kubeadm: str, words: list[str], options: dict) -> int:
    kubeadm_minor = text.minor(kubeadm)
    if not words:
        raise Failed(f"[upgrade/version] FATAL: missing one or more required arguments. Required arguments: "
                     f"[version]\n{text.STACK_HINT}")
    try:
        target = normalized(words[0])
    except ValueError as exc:
        raise Failed(f"[upgrade/version] FATAL: {exc}\n{text.STACK_HINT}") from exc
    kube = client(system, ADMIN_CONF)
    for line in _apply_preamble(kubeadm_minor):
        system.out(line)
    before, nodes = gather(system, kube, kubeadm)
    system.out("[upgrade] Running cluster health checks")
    health(kubeadm_minor, nodes, manifest_tags(system))
    system.out(f'[upgrade/version] You have chosen to change the cluster version to "{target}"')
    system.out(f"[upgrade/versions] Cluster version: {before.cluster}")
    system.out(f"[upgrade/versions] kubeadm version: {kubeadm}")
    mandatory, skippable = text.policy(target, before)
    if mandatory:
        raise Failed(text.policy_failure(kubeadm_minor, mandatory, fatal=True))
    if skippable and not options["force"]:
        raise Failed(text.policy_failure(kubeadm_minor, skippable, fatal=False))
    if skippable:
        for line in text.forced(skippable):
            system.out(line)
    if not options["yes"] and not options["dry_run"]:
        answer = system.ask(text.prompt(kubeadm_minor))
        if answer is None or answer.lower() not in ("y", "yes"):
            raise Failed(text.declined(kubeadm_minor))
    system.out("[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster")
    system.out("[upgrade/prepull] This might take a minute or two, depending on the speed of your internet connection")
    system.out("[upgrade/prepull] You can also perform this action in beforehand using 'kubeadm config images pull'")
    system.out(f'[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "{target}" '
               f"(timeout: 5m0s)...")
    if options["dry_run"]:
        return dry_run(system, target, options)
    upgrade_static_pods(system, kube, kubeadm_minor, target, options["etcd_upgrade"], "[upgrade/apply] FATAL: ")
    record_cluster_version(system, kube, target)
    write_kubelet_config(system)
    upgrade_addons(system, kube, target)
    for line in text.apply_success(kubeadm_minor, target):
        system.out(line)
    return 0


def dry_run(system: System, target: str, options: dict) -> int:
    for component in COMPONENTS if options["etcd_upgrade"] else COMPONENTS[1:]:
        system.out(f'[dryrun] Would write the new manifest of {component} to "{manifest_path(component)}" with '
                   f'image tag "{target if component != "etcd" else releases.etcd_version(target)}"')
    system.out('[dryrun] Would update the ClusterConfiguration in ConfigMap "kubeadm-config" in namespace '
               '"kube-system"')
    system.out(f'[dryrun] Would write kubelet configuration to file "{KUBELET_CONFIG}"')
    system.out("[dryrun] Would apply the essential addons CoreDNS and kube-proxy")
    system.out("[dryrun] Finished dryrunning successfully!")
    return 0


def node(system: System, kubeadm: str, options: dict) -> int:
    kubeadm_minor = text.minor(kubeadm)
    control_plane = is_control_plane(system)
    kube = client(system, ADMIN_CONF if control_plane else KUBELET_CONF)
    system.out("[upgrade] Reading configuration from the cluster...")
    system.out("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config "
               "-o yaml'")
    target = cluster_config_version(kube) or manifest_tags(system).get("kube-apiserver") or kubeadm
    system.out("[preflight] Running pre-flight checks")
    if control_plane:
        system.out("[preflight] Pulling images required for setting up a Kubernetes cluster")
        system.out("[preflight] This might take a minute or two, depending on the speed of your internet connection")
        system.out("[preflight] You can also perform this action in beforehand using 'kubeadm config images pull'")
        system.out(f'[upgrade] Upgrading your Static Pod-hosted control plane instance to version "{target}"...')
        if not options["dry_run"]:
            upgrade_static_pods(system, kube, kubeadm_minor, target, options["etcd_upgrade"],
                                "[upgrade/node] FATAL: ")
        system.out("[upgrade] The control plane instance for this node was successfully updated!")
    else:
        system.out("[preflight] Skipping prepull. Not a control plane node.")
        system.out("[upgrade] Skipping phase. Not a control plane node.")
    if not options["dry_run"]:
        write_kubelet_config(system)
    for line in text.node_success(kubeadm_minor):
        system.out(line)
    return 0


# -- what apply and node change -----------------------------------------------------------------


def timestamp() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S")


def copy_sparse(source: str, destination: str) -> None:
    """Copy a file, leaving holes where it is zeros: etcd preallocates its WAL files (64 MB each)."""
    chunk = 1 << 20
    with open(source, "rb") as src, open(destination, "wb") as dst:
        while True:
            block = src.read(chunk)
            if not block:
                break
            if block.count(0) == len(block):
                dst.seek(len(block), os.SEEK_CUR)
            else:
                dst.write(block)
        dst.truncate()
    shutil.copymode(source, destination)


def back_up_etcd(system: System, stamp: str) -> str:
    """A copy of the etcd data directory while etcd runs, as kubeadm takes it (kubeadmutil.CopyDir,
    `cp -r`): reading etcd's files does not disturb it; a member being written may be caught mid-write,
    which is why kubeadm's copy is a last resort and the seeds take a snapshot first."""
    backup = f"{TMP}/kubeadm-backup-etcd-{stamp}"
    source_root = system.path(ETCD_DATA)
    target_root = system.path(backup)
    target_root.mkdir(parents=True, exist_ok=True)
    os.chmod(target_root, 0o700)
    for directory, subdirs, files in os.walk(source_root):
        relative = os.path.relpath(directory, source_root)
        here = target_root / relative if relative != "." else target_root
        here.mkdir(parents=True, exist_ok=True)
        for name in subdirs:
            (here / name).mkdir(exist_ok=True)
            shutil.copymode(os.path.join(directory, name), here / name)
        for name in files:
            try:
                copy_sparse(os.path.join(directory, name), str(here / name))
            except FileNotFoundError:
                continue  # etcd removed it meanwhile (a purged WAL or snapshot)
    return backup


def mirror_hash(kube: Kube, component: str, node_name: str) -> str:
    pod = kube.get_or_none(f"/api/v1/namespaces/kube-system/pods/{component}-{node_name}")
    return ((pod or {}).get("metadata", {}).get("annotations") or {}).get("kubernetes.io/config.hash", "")


def wait_for_new_hash(system: System, kube: Kube, component: str, old_hash: str, deadline: float) -> bool:
    node_name = system.hostname()
    while time.monotonic() < deadline:
        try:
            current = mirror_hash(kube, component, node_name)
        except ApiError:
            current = ""  # the API restarting with its new manifest
        if current and current != old_hash:
            return True
        time.sleep(0.05)
    return False


def upgrade_static_pods(system: System, kube: Kube, kubeadm_minor: int, target: str, etcd_upgrade: bool,
                        fatal: str) -> None:
    stamp = timestamp()
    backup = f"{TMP}/kubeadm-backup-manifests-{stamp}"
    system.path(backup).mkdir(parents=True, exist_ok=True)
    node_name = system.hostname()
    timeout = UPGRADE_TIMEOUT * time_scale(system)
    components = COMPONENTS if etcd_upgrade else COMPONENTS[1:]
    if etcd_upgrade:
        system.out("[upgrade/etcd] Upgrading to TLS for etcd")
    changed: list[str] = []
    for component in components:
        path = manifest_path(component)
        old = system.read_text(path)
        if old is None:
            continue
        tag = releases.etcd_version(target) if component == "etcd" else target
        new = IMAGE.sub(lambda m, tag=tag: m[1] + releases.upgraded_image(m[2], tag, target), old, count=1)
        system.out(f'[upgrade/staticpods] Preparing for "{component}" upgrade')
        if component == "etcd":  # before kubeadm compares the manifests: taken at every upgrade of etcd
            back_up_etcd(system, stamp)
        if new == old:
            system.out(f"[upgrade/staticpods] Current and new manifests of {component} are equal, skipping upgrade")
            continue
        old_hash = mirror_hash(kube, component, node_name)
        system.write_text(f"{backup}/{component}.yaml", old, 0o600)
        system.write_text(path, new, 0o600)
        changed.append(component)
        system.out(f'[upgrade/staticpods] Moved new manifest to "{path}" and backed up old manifest to '
                   f'"{backup}/{component}.yaml"')
        system.out("[upgrade/staticpods] Waiting for the kubelet to restart the component")
        system.out("[upgrade/staticpods] This might take a minute or longer depending on the component/version gap "
                   "(timeout 5m0s)")
        if not wait_for_new_hash(system, kube, component, old_hash, time.monotonic() + timeout):
            for undone in changed:  # kubeadm rolls every changed component back
                system.write_text(manifest_path(undone), system.read_text(f"{backup}/{undone}.yaml") or "", 0o600)
            raise Failed(f"{fatal}couldn't upgrade control plane. kubeadm has tried to recover everything into the "
                         f"earlier state. Errors faced: failed to obtain static Pod hash for component {component} "
                         f"on Node {node_name}: timed out waiting for the condition\n{text.STACK_HINT}")
        system.out(f"[apiclient] Found 1 Pods for label selector component={component}")
        system.out(f'[upgrade/staticpods] Component "{component}" upgraded successfully!')
        if component == "etcd":
            system.out("[upgrade/etcd] Waiting for etcd to become available")


def record_cluster_version(system: System, kube: Kube, target: str) -> None:
    system.out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" '
               'Namespace')
    config = kube.get_or_none(KUBEADM_CONFIG)
    if config is None:
        kube.create("/api/v1/namespaces/kube-system/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": f"apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n"
                                             f"kubernetesVersion: {target}\n"}})
        return
    data = config.setdefault("data", {})
    cluster = data.get("ClusterConfiguration", "")
    if KUBERNETES_VERSION.search(cluster):
        data["ClusterConfiguration"] = KUBERNETES_VERSION.sub(lambda m: m[1] + target, cluster, count=1)
    else:
        data["ClusterConfiguration"] = cluster + f"kubernetesVersion: {target}\n"
    kube.put(KUBEADM_CONFIG, config)


def write_kubelet_config(system: System) -> None:
    """kubeadm writes the kubelet's configuration from the cluster's kubelet-config ConfigMap again;
    the lab's is the same each time, so the file is rewritten as it was (a new mtime), after a backup."""
    current = system.read_text(KUBELET_CONFIG, "") or ""
    backup = f"{TMP}/kubeadm-kubelet-config-{timestamp()}/config.yaml"
    system.out(f"[upgrade] Backing up kubelet config file to {backup}")
    system.write_text(backup, current)
    system.out(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_CONFIG}"')
    system.write_text(KUBELET_CONFIG, current)


def _set_image(obj: dict, image: str) -> dict:
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return obj


def upgrade_addons(system: System, kube: Kube, target: str) -> None:
    coredns = kube.get_or_none(COREDNS)
    if coredns is not None:
        kube.put(COREDNS, _set_image(coredns, releases.coredns_image(target)))
        system.out("[addons] Applied essential addon: CoreDNS")
    proxy = kube.get_or_none(KUBE_PROXY)
    if proxy is not None:
        current = proxy["spec"]["template"]["spec"]["containers"][0]["image"]
        kube.put(KUBE_PROXY, _set_image(proxy, releases.upgraded_image(current, target, target)))
        system.out("[addons] Applied essential addon: kube-proxy")
