"""Which nodes of a scenario are machines, and what each machine is: its address, OS,
Kubernetes packages and pending updates. Pure: from the scenario's YAML to MachineSpecs.

Scenario keys (docs/lab.md): a top-level `machines:` block with defaults for every node, and a
`machine:` block per node overriding them (`machine: false`: that node has no machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.machines import catalogue
from lab.machines.programs.repos import Repo
from lab.versions import parse

KEYS = ("enabled", "osImage", "kernel", "bootSeconds", "packageRepo", "holds", "latestPatch", "updates")
NODE_KEYS = tuple(k for k in KEYS if k != "enabled")
DEFAULT_BOOT_SECONDS = 30.0
DEFAULT_HOLDS = ("kubeadm", "kubelet", "kubectl")


class MachineSpecError(ValueError):
    pass


@dataclass(frozen=True)
class MachineSpec:
    name: str
    index: int  # the node's position in the scenario
    address: str
    control_plane: bool
    version: str  # the Kubernetes packages installed (vX.Y.Z)
    image: catalogue.OsImage
    kernel: str
    repo: Repo
    holds: tuple[str, ...]
    updates: dict[str, dict] = field(default_factory=dict)  # package -> {"version", "kernel"?, "reboot"?}
    latest_patch: dict[str, dict[str, int]] = field(default_factory=dict)  # "legacy"/"pkgs" -> {minor: patch}
    boot_seconds: float = DEFAULT_BOOT_SECONDS
    kubelet_running: bool = True


def machine_nodes(scenario_machines: dict | bool | None, nodes: list[dict]) -> list[dict]:
    """The node entries that get a machine."""
    defaults = _block(scenario_machines, "machines", KEYS)
    if not defaults.get("enabled", True):
        return []
    return [node for node in nodes if node.get("machine", {}) is not False]


def build(scenario_machines: dict | bool | None, nodes: list[dict], scenario_version: str,
          addresses: dict[str, str]) -> list[MachineSpec]:
    defaults = _block(scenario_machines, "machines", KEYS)
    chosen = {id(n) for n in machine_nodes(scenario_machines, nodes)}
    specs = []
    for index, node in enumerate(nodes):
        if id(node) not in chosen:
            continue
        own = _block(node.get("machine"), f"nodes[{node['name']}].machine", NODE_KEYS)
        settings = {**defaults, **own}
        specs.append(_spec(node, index, settings, node.get("version", scenario_version), addresses[node["name"]]))
    return specs


def _block(value: dict | bool | None, where: str, keys: tuple[str, ...]) -> dict:
    if value is None or value is True:
        return {}
    if value is False:
        return {"enabled": False}
    if not isinstance(value, dict):
        raise MachineSpecError(f"{where} must be a mapping (keys: {', '.join(keys)}) or false")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise MachineSpecError(f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(keys)}")
    return value


def _spec(node: dict, index: int, settings: dict, version: str, address: str) -> MachineSpec:
    name = node["name"]
    image_name = settings.get("osImage", catalogue.DEFAULT_IMAGE)
    image = catalogue.IMAGES.get(image_name)
    if image is None:
        raise MachineSpecError(f"{name}: unknown osImage {image_name!r}; known: {', '.join(catalogue.IMAGES)}")
    minor = parse(version)[1]
    repo_kind = settings.get("packageRepo") or ("pkgs" if minor >= catalogue.FIRST_PKGS_MINOR else "legacy")
    if repo_kind not in ("legacy", "pkgs"):
        raise MachineSpecError(f"{name}: packageRepo must be legacy (apt.kubernetes.io) or pkgs (pkgs.k8s.io), "
                               f"got {repo_kind!r}")
    latest = {"legacy": dict(catalogue.LEGACY_LATEST_PATCH), "pkgs": dict(catalogue.PKGS_LATEST_PATCH)}
    for kind, overrides in (settings.get("latestPatch") or {}).items():
        if kind not in latest or not isinstance(overrides, dict):
            raise MachineSpecError(f"{name}: latestPatch takes legacy: {{'1.19': 16}} and/or pkgs: {{...}}")
        latest[kind].update({str(k): int(v) for k, v in overrides.items()})
    repo = Repo(repo_kind, "" if repo_kind == "legacy" else f"1.{minor}")
    if f"1.{minor}" not in latest[repo_kind]:
        raise MachineSpecError(f"{name}: the {repo_kind} repository offers no v1.{minor} packages "
                               f"(minors: {', '.join(latest[repo_kind])})")
    holds = tuple(settings.get("holds", DEFAULT_HOLDS))
    boot_seconds = float(settings.get("bootSeconds", DEFAULT_BOOT_SECONDS))
    if boot_seconds < 0:
        raise MachineSpecError(f"{name}: bootSeconds must not be negative")
    return MachineSpec(
        name=name, index=index, address=address, control_plane=bool(node.get("controlPlane")), version=version,
        image=image, kernel=settings.get("kernel", image.kernel), repo=repo, holds=holds,
        updates=_updates(name, settings.get("updates") or []), latest_patch=latest,
        boot_seconds=boot_seconds, kubelet_running=node.get("ready", True) is not False,
    )


def _updates(name: str, entries: list) -> dict[str, dict]:
    updates = {}
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("package") or not entry.get("version"):
            raise MachineSpecError(f"{name}: each update needs package and version, e.g. "
                                   f"{{package: libc6, version: 2.27-3ubuntu1.6}}; got {entry!r}")
        update = {"version": str(entry["version"])}
        if entry.get("kernel"):
            update["kernel"] = str(entry["kernel"])
        if entry.get("reboot", bool(entry.get("kernel")) or entry["package"] in catalogue.REBOOT_PACKAGES):
            update["reboot"] = True
        updates[str(entry["package"])] = update
    return updates
