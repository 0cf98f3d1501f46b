"""The worker's step of reboots and OS upgrades: `maintain.nodes` takes one node, or a wave of workers at
once, through the phases (handlers/node_cycle.py runs them, checkpointed per node):

    check     the blockers and gates before the node (nothing done yet if they hold it back)
    cordon    noting whether this job did it
    drain     the drain's own evict and wait
    packages  (OS upgrade) Kubernetes packages held, `apt-get update`, `apt-get -y upgrade`
    reboot    when asked (--reboot auto: /var/run/reboot-required), with the boot id seen before it
    back      a new boot id and Ready within --boot-timeout, and SSH answering again
    verify    (OS upgrade) nothing pending, no reboot required (unless --reboot never)
    uncordon  only if this job cordoned it

then the health gate (every node Ready, the moved workloads available again) and the configured gates.
The reboot's boot id and time are kept in the step's checkpoint, so a worker killed while the node
reboots is followed by one that waits for the same boot, with the same deadline.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from bot.cluster import kube
from bot.cluster.gates import check_gates
from bot.cluster.snapshot import node_from_api
from bot.domain.blockers import blocking_pods
from bot.domain.durations import format_duration
from bot.domain.windows import next_opening, open_until
from bot.engine import JobCancelled, JobPaused, StepContext, action
from bot.nodes.facts import KUBE_PACKAGES, facts_script, parse_facts
from handlers.drain.plan import DrainOptions, drain_decisions
from handlers.node_cycle import (
    COMMAND_SECONDS,
    POLL_SECONDS,
    StepFailed,
    Target,
    command,
    cordon,
    done_phases,
    drain,
    health_gate,
    run_nodes,
    run_on,
    uncordon,
)

CHECK_SECONDS = 2.0  # how often a held-back node's blockers and gates are asked again
PACKAGE_SECONDS = 1800  # a kernel and its initramfs on a slow mirror
REBOOT_COMMAND_SECONDS = 30
PHASES = {
    "reboot": ("check", "cordon", "drain", "reboot", "back", "uncordon"),
    "os-upgrade": ("check", "cordon", "drain", "packages", "reboot", "back", "verify", "uncordon"),
}
# Answers the upgrade without questions; a changed config file keeps the node's own version.
APT_UPGRADE = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
               "-o", "Dpkg::Options::=--force-confold", "upgrade"]


class RebootFailed(StepFailed):
    pass


class OsUpgradeFailed(StepFailed):
    pass


@action("maintain.nodes")
def maintain_nodes(ctx: StepContext, nodes: list[dict], kind: str, reboot: str, options: DrainOptions,
                   boot_timeout: int) -> str:
    targets = [Target(**n) for n in nodes]
    if not any(done_phases(ctx, t.node) for t in targets):  # nodes under way finish, window or not
        _wait_for_window(ctx)

    def phases(node_ctx: Any, target: Target) -> dict:
        return {
            "check": lambda: _wait_clear(node_ctx, target, options, failure),
            "cordon": lambda: cordon(node_ctx, target),
            "drain": lambda: drain(node_ctx, target, options),
            "packages": lambda: _upgrade_packages(node_ctx, target),
            "reboot": lambda: _reboot(node_ctx, target, kind, reboot),
            "back": lambda: _back(node_ctx, target, boot_timeout),
            "verify": lambda: _verify(node_ctx, target, reboot),
            "uncordon": lambda: uncordon(node_ctx, target, "before this job"),
        }

    goal = "during its reboot" if kind == "reboot" else "during its OS upgrade"
    failure = RebootFailed if kind == "reboot" else OsUpgradeFailed
    results = run_nodes(ctx, targets, PHASES[kind], phases, goal=goal, failure=failure)
    health_gate(ctx, targets, options.timeout, failure)
    _gates_after(ctx, targets, options.timeout, failure)
    return "; ".join(results[t.node] for t in targets)


def _wait_for_window(ctx: StepContext) -> None:
    """Outside the maintenance windows, no node starts: the job pauses until the next window opens."""
    windows = ctx.resources["maintenance"].parsed_windows()
    now = datetime.now(UTC)
    if not windows or open_until(windows, now) is not None:
        return
    opening = next_opening(windows, now)
    assert opening is not None
    raise JobPaused("the maintenance window has closed: the nodes under way finished and no further node starts "
                    "until the next window", until=opening.timestamp())


# -- blockers and gates ---------------------------------------------------------------------------------------


def held_back(ctx: Any, node: str, options: DrainOptions) -> list[str]:
    """What holds the node back now: pods matching the blocker selector on it, PDBs that allow none of its
    pods to go, failing health gates."""
    settings = ctx.resources["maintenance"]
    snapshot = kube.read_snapshot(ctx.resources["kube"], budgets=True)
    problems = []
    selector = settings.blockers.pod_selector
    pods = blocking_pods(selector, snapshot.pods_on(node))
    if pods:
        problems.append(f"pods matching {selector} (maintenance.blockers) run on {node}: {', '.join(pods)}")
    stuck: dict[str, list[str]] = {}
    for decision in drain_decisions(snapshot, node, options):
        if decision.action == "evict" and decision.pod.phase == "Running" and not decision.pod.terminating:
            for budget in snapshot.pdbs_covering(decision.pod):
                if budget.disruptions_allowed == 0:
                    stuck.setdefault(budget.ref, []).append(decision.pod.name)
    problems += [f"PodDisruptionBudget {ref} allows no disruption now ({', '.join(names)} on {node})"
                 for ref, names in sorted(stuck.items())]
    return problems + check_gates(settings)


def _wait_clear(ctx: Any, target: Target, options: DrainOptions, failure: type[StepFailed]) -> None:
    """Before the node is touched: wait (at most --timeout) until nothing holds it back."""
    deadline = time.monotonic() + options.timeout
    said = ""
    while problems := held_back(ctx, target.node, options):
        if time.monotonic() > deadline:
            raise failure(f"held back for {format_duration(options.timeout)}, nothing was done on it: "
                          + "; ".join(problems))
        if problems[0] != said:
            said = problems[0]
            ctx.progress(f"held back: {said}")
        if ctx.cancelled():
            raise JobCancelled()
        time.sleep(CHECK_SECONDS)


def _gates_after(ctx: StepContext, targets: list[Target], timeout: int, failure: type[StepFailed]) -> None:
    """After the nodes, before the next: the health gates pass again (at most --timeout)."""
    settings = ctx.resources["maintenance"]
    deadline = time.monotonic() + timeout
    while problems := check_gates(settings):
        if time.monotonic() > deadline:
            nodes = ", ".join(t.node for t in targets)
            raise failure(f"health gates after {nodes} still fail after {format_duration(timeout)}: "
                          f"{'; '.join(problems)}. {nodes} {'is' if len(targets) == 1 else 'are'} done; no further "
                          "node was touched")
        ctx.progress(f"health gates: {problems[0]}")
        if ctx.cancelled():
            raise JobCancelled()
        time.sleep(CHECK_SECONDS)


# -- packages -------------------------------------------------------------------------------------------------


def _upgrade_packages(ctx: Any, target: Target) -> str:
    machine = parse_facts(command(ctx, target, facts_script(), COMMAND_SECONDS, sudo=False))
    unheld = sorted(p for p in machine.packages if p in KUBE_PACKAGES and p not in machine.held)
    if unheld:
        # Kubernetes moves with `upgrade to`, never as a side effect of an OS upgrade.
        command(ctx, target, ["apt-mark", "hold", *unheld], COMMAND_SECONDS)
    ctx.progress("apt-get update")
    command(ctx, target, ["apt-get", "update", "-qq"], PACKAGE_SECONDS)
    ctx.progress("apt-get -y upgrade")
    out = command(ctx, target, APT_UPGRADE, PACKAGE_SECONDS)
    # dpkg's "Setting up libc6:amd64 (2.27-3ubuntu1.6) ..." per package it installed.
    upgraded = [line.split()[2].split(":")[0] for line in out.splitlines() if line.startswith("Setting up ")]
    note = f"{len(upgraded)} package{'s' if len(upgraded) != 1 else ''} upgraded"
    if upgraded:
        note += f" ({', '.join(upgraded[:6])}{' …' if len(upgraded) > 6 else ''})"
    if unheld:
        note += f"; held {', '.join(unheld)} first"
    return note


# -- reboot and back ------------------------------------------------------------------------------------------


def _boot_key(node: str) -> str:
    return f"{node}: boot before reboot"


def _rebooted_at_key(node: str) -> str:
    return f"{node}: reboot asked at"


def _boot_id(ctx: Any, node: str) -> tuple[str, str, bool]:
    """The node's boot id, kernel and readiness as the API shows them now."""
    raw = kube.read_node(ctx.resources["kube"], node)
    info = raw.get("status", {}).get("nodeInfo", {})
    return info.get("bootID", ""), info.get("kernelVersion", ""), node_from_api(raw).ready


def _reboot(ctx: Any, target: Target, kind: str, mode: str) -> str | None:
    node = target.node
    if mode == "never":
        return None
    if mode == "auto":
        asked = run_on(ctx, target, ["sh", "-c", "test -f /var/run/reboot-required && echo yes || echo no"],
                       COMMAND_SECONDS, sudo=False).strip()
        if asked != "yes":
            return "no reboot needed"
    seen = ctx.checkpoint_data.get(_boot_key(node))
    boot_id, kernel, _ = _boot_id(ctx, node)
    if seen and seen["boot"] != boot_id:
        return None  # asked by an earlier run, which died before noting it: the node has rebooted since
    if not seen:
        ctx.checkpoint_data[_boot_key(node)] = {"boot": boot_id, "kernel": kernel}
    ctx.checkpoint_data[_rebooted_at_key(node)] = time.time()
    ctx.progress("rebooting")
    from bot.nodes import CommandError, NodeError

    try:
        run_on(ctx, target, ["systemctl", "reboot"], REBOOT_COMMAND_SECONDS)
    except CommandError as error:
        raise StepFailed(f"`systemctl reboot` failed on {node}: {error.stderr_tail.strip() or error}") from None
    except NodeError:
        pass  # the session ended under the command: the machine is going down, as asked
    return None


def _back(ctx: Any, target: Target, timeout: int) -> str | None:
    """Wait for a new boot id and Ready (the API), then for SSH; the deadline counts from the reboot."""
    node = target.node
    seen = ctx.checkpoint_data.get(_boot_key(node))
    if not seen:
        return None  # no reboot was asked
    asked_at = ctx.checkpoint_data.get(_rebooted_at_key(node))
    if asked_at is None:  # resumed after a boot timeout: the wait starts again
        asked_at = ctx.checkpoint_data[_rebooted_at_key(node)] = time.time()
    deadline = float(asked_at) + timeout
    state = "going down"
    while True:
        try:
            boot_id, kernel, ready = _boot_id(ctx, node)
        except (ApiException, TransportError, ConnectionError):
            boot_id, kernel, ready = seen["boot"], "", False  # the API is down (a control plane rebooting)
        if boot_id != seen["boot"] and ready and _answers(ctx, target):
            took = time.time() - asked_at
            change = f"kernel {seen['kernel']} → {kernel}" if kernel != seen["kernel"] else f"kernel {kernel}"
            return f"back in {took:.0f}s, {change}"
        now_state = ("booted, waiting for Ready" if boot_id != seen["boot"] else
                     "down, waiting for its new boot")
        if now_state != state:
            state = now_state
            ctx.progress(state)
        if time.time() > deadline:
            why = _why_not_back(ctx, target, seen["boot"], boot_id, ready)
            # `resume` waits again with a fresh --boot-timeout; a crashed run (no exception) keeps its deadline.
            ctx.checkpoint_data[_rebooted_at_key(node)] = None
            raise StepFailed(f"it did not come back within {format_duration(timeout)} of its reboot: {why}. Its "
                             "console says why")
        if ctx.cancelled():
            raise JobCancelled()
        time.sleep(POLL_SECONDS)


def _why_not_back(ctx: Any, target: Target, before: str, boot_id: str, ready: bool) -> str:
    """What a person at the node would find: the machine down, up without its kubelet, or up but NotReady."""
    from bot.nodes import NodeError

    if boot_id != before:
        return "it booted again but is not Ready" if not ready else "it is Ready but SSH does not answer"
    try:
        machine_boot = run_on(ctx, target, ["cat", "/proc/sys/kernel/random/boot_id"], COMMAND_SECONDS,
                              sudo=False).strip()
    except NodeError as error:
        return f"it has not booted again: SSH does not answer ({error}) and the API still shows its old boot"
    if machine_boot.replace("-", "") != before.replace("-", ""):
        return (f"the machine is up again (a new boot over SSH), but its kubelet has not reported it: `systemctl "
                f"status kubelet` on {target.node} says why")
    return "it has not gone down: the reboot did not happen (the same boot over SSH)"


def _answers(ctx: Any, target: Target) -> bool:
    from bot.nodes import NodeError

    try:
        run_on(ctx, target, ["true"], COMMAND_SECONDS, sudo=False)
    except NodeError:
        return False
    return True


# -- verify ---------------------------------------------------------------------------------------------------


def _verify(ctx: Any, target: Target, mode: str) -> str | None:
    machine = parse_facts(command(ctx, target, facts_script(), COMMAND_SECONDS, sudo=False))
    pending = [p.package for p in machine.pending if p.package not in KUBE_PACKAGES]
    problems = []
    if pending:
        problems.append(f"{', '.join(pending)} still pending")
    if machine.reboot_required and mode != "never":
        problems.append("/var/run/reboot-required is still there")
    if problems:
        raise StepFailed(f"verify: {'; '.join(problems)} after the upgrade (`apt-get -s upgrade` on {target.node} "
                         "says what)")
    if machine.reboot_required:
        return f"kernel {machine.kernel}; a reboot is still required (--reboot never)"
    return f"up to date, kernel {machine.kernel}"
