"""The plan of a reboot or an OS upgrade, of one node or a rollout: which nodes, what changes on each
(packages, kernel, whether a reboot follows), what each drain moves and what blocks it, the window, the
blockers and gates checked around each node, the order and waves, and the job's steps. Pure: everything
here works on `MaintenanceFacts`.

A step per control plane (one at a time, never with workers), then a step per wave of workers; each
runs the node phases in run.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bot.cluster.snapshot import ClusterSnapshot
from bot.contract import COUNT, DURATION, Plan, choice, flag
from bot.contract.words import narrow
from bot.domain.blockers import blocking_pods
from bot.domain.durations import format_duration
from bot.domain.upgrade_path import waves
from bot.domain.windows import clock_time, next_opening, open_until
from bot.engine import Step
from bot.nodes.facts import KUBE_PACKAGES, MachineFacts
from handlers.common import unknown_node
from handlers.drain.plan import DrainCommand, DrainOptions, blocked_reasons, drain_decisions, plan_drain
from handlers.os_upgrade.facts import MaintenanceFacts
from handlers.upgrade.plan import is_control_plane

Kind = Literal["reboot", "os-upgrade"]
REBOOT_MODES = ("auto", "always", "never")
# Debian asks for a reboot after these (notify-reboot-required), as after any new kernel.
REBOOT_PACKAGES = ("libc6", "libc-bin", "systemd", "dbus", "linux-base")
KERNEL_PREFIXES = ("linux-image", "linux-modules")
DEFAULT_BOOT_TIMEOUT = 600
MAX_NODE_LINES = 12  # nodes described one by one; a fleet is summed up beyond that
MAX_PACKAGES_SHOWN = 8


@dataclass(frozen=True, kw_only=True)
class MaintenanceOptions(DrainOptions):
    """The drain's flags (each node's drain), plus how long a node may take to come back and when to start."""

    boot_timeout: int = flag(DURATION, default=DEFAULT_BOOT_TIMEOUT,
                             help="how long a node may take to come back Ready after its reboot")
    at_window: bool = flag(help="outside the maintenance window: queue it to start when the next window opens")
    dry_run: bool = flag(help="show the plan only; change nothing")


@dataclass(frozen=True, kw_only=True)
class RebootNode(MaintenanceOptions):
    """`reboot NODE`."""

    node: str


@dataclass(frozen=True, kw_only=True)
class OsUpgradeNode(MaintenanceOptions):
    """`os-upgrade NODE`."""

    node: str
    reboot: str = flag(choice(*REBOOT_MODES), default="auto",
                       help="auto: when the upgrade asks for one (/var/run/reboot-required); always; never")


@dataclass(frozen=True, kw_only=True)
class RebootNeeded(MaintenanceOptions):
    """`reboot --needed`: every node whose machine asks for a reboot."""

    needed: bool = flag(help="every node with /var/run/reboot-required")
    max_unavailable: int = flag(COUNT, default=1, help="workers rebooted at once (a wave)")


@dataclass(frozen=True, kw_only=True)
class OsUpgradeAll(MaintenanceOptions):
    """`os-upgrade --all`: every node with pending updates or a reboot required."""

    all: bool = flag(help="every node with pending updates or a reboot required")
    max_unavailable: int = flag(COUNT, default=1, help="workers upgraded at once (a wave)")
    reboot: str = flag(choice(*REBOOT_MODES), default="auto",
                       help="auto: when the upgrade asks for one (/var/run/reboot-required); always; never")


AnyOptions = RebootNode | OsUpgradeNode | RebootNeeded | OsUpgradeAll


def kind_of(options: AnyOptions) -> Kind:
    return "os-upgrade" if isinstance(options, OsUpgradeNode | OsUpgradeAll) else "reboot"


def reboot_mode(options: AnyOptions) -> str:
    return getattr(options, "reboot", "always")  # `reboot` always reboots


# -- what each node needs -----------------------------------------------------------------------------------


def changing(machine: MachineFacts) -> list[tuple[str, str, str]]:
    """The packages `apt-get upgrade` changes: (name, installed, candidate); Kubernetes packages stay held."""
    return [(p.package, p.installed, p.candidate) for p in machine.pending if p.package not in KUBE_PACKAGES]


def reboot_reasons(machine: MachineFacts, kind: Kind) -> list[str]:
    """Why the machine will ask for a reboot: already asking, or packages that make it ask."""
    reasons = []
    if machine.reboot_required:
        asked_by = ", ".join(machine.reboot_packages)
        reasons.append(f"it already asks for one{f' ({asked_by})' if asked_by else ''}")
    if kind == "os-upgrade":
        kernels = [name for name, _, _ in changing(machine) if name.startswith(KERNEL_PREFIXES)]
        others = [name for name, _, _ in changing(machine) if name in REBOOT_PACKAGES]
        if kernels:
            reasons.append(f"new kernel ({', '.join(kernels)})")
        if others:
            reasons.append(f"{', '.join(others)} ask{'s' if len(others) == 1 else ''} for one")
    return reasons


def needs_work(machine: MachineFacts, kind: Kind) -> bool:
    if kind == "reboot":
        return machine.reboot_required
    return bool(changing(machine)) or machine.reboot_required


def unheld(machine: MachineFacts) -> list[str]:
    return sorted(p for p in machine.packages if p not in machine.held)


# -- the plan -----------------------------------------------------------------------------------------------


def plan_maintenance(facts: MaintenanceFacts, options: AnyOptions) -> Plan:
    kind = kind_of(options)
    snapshot = facts.snapshot
    single = getattr(options, "node", None)
    if single is None and not (getattr(options, "needed", False) or getattr(options, "all", False)):
        verb, rollout = ("reboot", "reboot --needed") if kind == "reboot" else ("os-upgrade", "os-upgrade --all")
        what = "needs a reboot" if kind == "reboot" else "has pending updates or needs a reboot"
        return Plan((), refusal=f"say which node: `{verb} NODE`, or `{rollout}` for every node that {what}")
    if single is not None and single not in snapshot.nodes:
        return unknown_node(snapshot, single)
    if facts.cluster_holder:
        return Plan((), refusal=f"the cluster is busy: {facts.cluster_holder} holds it, and maintenance runs one at "
                                "a time per cluster. Try again when it has ended (`jobs` shows it), or `cancel` it")
    chosen, refusal = _choose(facts, options, kind)
    if refusal:
        return Plan((), refusal=refusal)
    planes = [n for n in chosen if is_control_plane(snapshot.nodes[n])]
    workers = [n for n in chosen if n not in planes]
    grouped = [(n,) for n in planes] + waves(workers, getattr(options, "max_unavailable", 1))
    drains = {name: drain_decisions(snapshot, name, options) for name in chosen}
    refusal = _refusal(facts, options, chosen, drains)
    lines = _lines(facts, options, kind, chosen, grouped, drains)
    start_at, window_refusal = _start(facts, options)
    if refusal or window_refusal:
        return Plan(tuple(lines), refusal=refusal or window_refusal)
    steps = _steps(snapshot, options, kind, grouped, planes)
    locks = ("cluster", *(f"node:{name}" for name in sorted(chosen)))
    return Plan(tuple(lines), steps=tuple(steps), locks=locks, next_command="status", start_at=start_at)


def _choose(facts: MaintenanceFacts, options: AnyOptions, kind: Kind) -> tuple[list[str], str | None]:
    snapshot = facts.snapshot
    single = getattr(options, "node", None)
    names = [single] if single is not None else sorted(snapshot.nodes)
    unread = {n: why for n, why in facts.unreadable.items() if n in names}
    if unread:
        named = "; ".join(why if why.startswith(n) else f"{n}: {why}" for n, why in sorted(unread.items()))
        return [], (f"{', '.join(sorted(unread))} could not be read over SSH ({named}); "
                    f"{'a reboot' if kind == 'reboot' else 'an OS upgrade'} needs the machine")
    if single is not None:
        machine = facts.machines[single]
        if kind == "os-upgrade" and not needs_work(machine, kind) and reboot_mode(options) != "always":
            return [], (f"{single} is up to date: no pending updates and no reboot required (`os-upgrade {single} "
                        "--reboot always` reboots it anyway)")
        return [single], None
    chosen = [n for n in names if needs_work(facts.machines[n], kind)]
    if not chosen:
        what = ("/var/run/reboot-required is on none of them" if kind == "reboot"
                else "no pending updates and no reboot required on any of them")
        return [], f"nothing to do on the {len(names)} nodes: {what}"
    return chosen, None


def _refusal(facts: MaintenanceFacts, options: AnyOptions, chosen: list[str], drains: dict) -> str | None:
    snapshot = facts.snapshot
    single = getattr(options, "node", None)
    not_ready = sorted(n for n in (chosen if single else snapshot.nodes) if not snapshot.nodes[n].ready)
    if not_ready:
        return (f"{', '.join(not_ready)} {'is' if len(not_ready) == 1 else 'are'} NotReady: maintenance starts on "
                "healthy nodes only (a drain may hang, and its return cannot be judged); bring it back first")
    blocking = {node: pods for node in chosen if (pods := blocking_pods(facts.blocker_selector,
                                                                        snapshot.pods_on(node)))}
    if blocking:
        return (f"blocked: pods matching {facts.blocker_selector} (maintenance.blockers) run on "
                + "; ".join(f"{node}: {', '.join(pods)}" for node, pods in blocking.items())
                + ". Try again when they have finished")
    blocked = []
    for name in chosen:
        blocked += [f"{name}: {what}; add {flag} to delete {'it' if count == 1 else 'them'} anyway"
                    for what, flag, count in blocked_reasons(drains[name])]
    if blocked:
        return "refused: the drain would be blocked: " + "; ".join(blocked)
    return None


def _start(facts: MaintenanceFacts, options: AnyOptions) -> tuple[float | None, str | None]:
    """When the job starts (None: now), or why it is refused (outside the window without --at-window)."""
    if not facts.windows:
        return None, None
    now = datetime.fromtimestamp(facts.now, UTC)
    if open_until(facts.windows, now) is not None:
        return None, None
    opening = next_opening(facts.windows, now)
    assert opening is not None
    if options.at_window:
        return opening.timestamp(), None
    return None, (f"outside the maintenance window: the next one opens {when_text(opening, facts.now)}. "
                  "Add `--at-window` to queue it to start then")


def when_text(moment: datetime, now: float) -> str:
    """"Thu 2026-12-03 22:00 Europe/Berlin (21:00 UTC, in 5h3m)"."""
    utc = moment.astimezone(UTC)
    local = f"{moment:%a %Y-%m-%d} {clock_time(moment)} {moment.tzinfo}"
    ahead = max(0, int(moment.timestamp() - now))
    in_utc = f"{clock_time(utc)} UTC, " if str(moment.tzinfo) != "UTC" else ""
    return f"{local} ({in_utc}in {format_duration(ahead) if ahead else 'a moment'})"


# -- what the approver reads ----------------------------------------------------------------------------------


def _lines(facts: MaintenanceFacts, options: AnyOptions, kind: Kind, chosen: list[str],
           grouped: list[tuple[str, ...]], drains: dict) -> list[str]:
    snapshot = facts.snapshot
    mode = reboot_mode(options)
    if kind == "reboot":
        lines = [f"Reboot {_count(chosen)}: drain, reboot, wait for a new boot and Ready (at most "
                 f"{format_duration(options.boot_timeout)}), uncordon what this job cordoned."]
    else:
        follow = {"auto": "reboot when it asks for one (/var/run/reboot-required)", "always": "reboot",
                  "never": "no reboot (--reboot never)"}[mode]
        lines = [f"OS upgrade of {_count(chosen)}: drain, `apt-get update` and `apt-get -y upgrade` (Kubernetes "
                 f"packages stay held), {follow}, back Ready, verify (nothing pending), uncordon what this job "
                 "cordoned."]
    if options.dry_run:
        lines.append("Dry run: this is the plan only; nothing will be changed.")
    for index, name in enumerate(chosen):
        if index >= MAX_NODE_LINES:
            lines.append(f"… and {len(chosen) - index} more nodes the same way.")
            break
        lines += _node_lines(facts, options, kind, name, drains[name], single=len(chosen) == 1)
    planes = [n for n in chosen if is_control_plane(snapshot.nodes[n])]
    all_planes = [n.name for n in snapshot.nodes.values() if is_control_plane(n)]
    if planes and len(all_planes) == 1 and (kind == "reboot" or mode != "never"):
        lines.append(f"⚠️ {planes[0]} is the only control plane: the cluster's API is down while it reboots.")
    lines += _window_lines(facts, options)
    lines.append(_checks_line(facts))
    if len(chosen) > 1:
        order = " → ".join(f"[{', '.join(w)}]" if len(w) > 1 else w[0] for w in grouped)
        lines.append(f"Order: {order} (control planes one at a time, then workers in waves of at most "
                     f"{getattr(options, 'max_unavailable', 1)}). `pause ID` lets the current nodes finish and "
                     "starts no new one.")
    lines.append("On any failure it stops: no further node is touched and the node stays as it is (cordoned); "
                 "the message says what was done and how to `resume`, `cancel` or `uncordon`. A node someone "
                 "else cordoned stays cordoned.")
    return lines


def _count(nodes: list[str]) -> str:
    return nodes[0] if len(nodes) == 1 else f"{len(nodes)} nodes"


def _node_lines(facts: MaintenanceFacts, options: AnyOptions, kind: Kind, name: str, decisions: list,
                single: bool) -> list[str]:
    machine = facts.machines[name]
    node = facts.snapshot.nodes[name]
    role = " (control plane)" if is_control_plane(node) else ""
    lines = [f"{name}{role}: {machine.os_image}, kernel {machine.kernel}"
             + (", cordoned before this job: it stays cordoned afterwards" if not node.schedulable else "")]
    if kind == "os-upgrade":
        changes = changing(machine)
        if changes:
            shown = ", ".join(f"{p} {old} → {new}" for p, old, new in changes[:MAX_PACKAGES_SHOWN])
            more = f" and {len(changes) - MAX_PACKAGES_SHOWN} more" if len(changes) > MAX_PACKAGES_SHOWN else ""
            lines.append(f"  {len(changes)} package{'s' if len(changes) != 1 else ''} change: {shown}{more}")
        else:
            lines.append("  no package changes")
        held = sorted(p for p in machine.packages if p in machine.held)
        if held:
            lines.append(f"  held, not upgraded: {', '.join(held)}")
        if unheld(machine):
            lines.append(f"  {', '.join(unheld(machine))} not held: held first, so the OS upgrade leaves Kubernetes "
                         "alone")
    lines.append(f"  {_reboot_line(machine, kind, reboot_mode(options))}")
    if single:
        drain = plan_drain(facts.snapshot, DrainCommand(node=name, **vars(narrow(options, DrainOptions))))
        lines += [f"  {line}" for line in _flattened(drain.lines)]
    else:
        evicted = [d for d in decisions if d.action == "evict"]  # planned once, in plan_maintenance
        lines.append(f"  drain: {len(evicted)} pod{'s' if len(evicted) != 1 else ''} to evict"
                     + (f" ({', '.join(d.pod.ref for d in evicted[:4])}{' …' if len(evicted) > 4 else ''})"
                        if evicted else ""))
    return lines


def _flattened(lines: tuple[str, ...]) -> list[str]:
    """The drain plan's sub-lines joined to their line: here the drain is itself a sub-line of the node."""
    joined: list[str] = []
    for line in lines:
        if line.startswith("  ") and joined:
            joined[-1] += (" " if joined[-1].endswith(":") else "; ") + line.strip()
        else:
            joined.append(line)
    return joined


def _reboot_line(machine: MachineFacts, kind: Kind, mode: str) -> str:
    reasons = reboot_reasons(machine, kind)
    if kind == "reboot":
        return f"reboot: {'; '.join(reasons)}" if reasons else "reboot (it does not ask for one)"
    if mode == "never":
        return "no reboot (--reboot never)" + (f", though {'; '.join(reasons)}" if reasons else "")
    if mode == "always":
        return "then a reboot (--reboot always)"
    if reasons:
        return f"a reboot follows: {'; '.join(reasons)}"
    return "no reboot expected (only if /var/run/reboot-required appears)"


def _window_lines(facts: MaintenanceFacts, options: AnyOptions) -> list[str]:
    if not facts.windows:
        return ["No maintenance window is configured: it may run at any time."]
    now = datetime.fromtimestamp(facts.now, UTC)
    until = open_until(facts.windows, now)
    if until is not None:
        return [f"Maintenance window open until {clock_time(until)} {until.tzinfo}: a rollout still running then "
                "finishes its current nodes, pauses, and continues at the next window."]
    opening = next_opening(facts.windows, now)
    assert opening is not None
    return [f"Starts at {when_text(opening, facts.now)}, when the next maintenance window opens (--at-window); "
            "`jobs` shows it scheduled."]


def _checks_line(facts: MaintenanceFacts) -> str:
    checks = ["every node Ready", "the moved workloads available again"]
    if facts.blocker_selector:
        checks.insert(0, f"no pod matching {facts.blocker_selector} on the node")
    checks += list(facts.gates)
    return "Before each node and after it: " + "; ".join(checks) + "."


# -- the steps ------------------------------------------------------------------------------------------------


def _steps(snapshot: ClusterSnapshot, options: AnyOptions, kind: Kind, grouped: list[tuple[str, ...]],
           planes: list[str]) -> list[Step]:
    drain = narrow(options, DrainOptions)
    worker_waves = [wave for wave in grouped if wave[0] not in planes]  # control planes go alone, unnumbered
    steps = []
    for wave in grouped:
        targets = [{"node": n, "address": snapshot.nodes[n].address,
                    "role": "control-plane" if n in planes else "worker"} for n in wave]
        if len(wave) > 1:
            label = f"wave {worker_waves.index(wave) + 1}/{len(worker_waves)}: {', '.join(wave)}"
        else:
            label = f"{wave[0]}{' (control plane)' if wave[0] in planes else ''}"
        steps.append(Step(f"{kind} {label}", "maintain.nodes",
                          {"nodes": targets, "kind": kind, "reboot": reboot_mode(options), "options": drain,
                           "boot_timeout": options.boot_timeout}))
    return steps
