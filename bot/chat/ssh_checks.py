"""What `kubemaint check-config` says about SSH: the bot's own side (known_hosts, key, passphrase),
and with `--nodes`, every node reached once, each reported on its own line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.chat.config import Settings
from bot.contract.resources import Resources
from bot.contract.words import check_node_name
from bot.domain.text import clip


def check_ssh_setup(settings: Settings, resources: Resources) -> Any:
    """Print what the SSH layer will use, or why it cannot. Returns the "ssh" resource, or None."""
    if settings.ssh is None:
        print("ssh: not configured: add an ssh section to reach the nodes (docs/configuration.md)")
        return None
    from bot.nodes import NodeError

    try:
        shell = resources["ssh"]  # built as a worker builds it: its preflight included
    except NodeError as error:
        print(f"ssh: {error}")
        return None
    print(f"ssh: {shell.preflight()}")
    return shell


def check_nodes_over_ssh(settings: Settings, resources: Resources, names: Sequence[str] | None) -> bool:
    """Reach the cluster's nodes (or `names`) at their InternalIP or ssh.addresses entry; True if all were fine."""
    from bot.cluster import kube
    from bot.nodes.check import NodeCheck, check_nodes, report

    assert settings.ssh is not None
    for name in names or ():
        try:
            check_node_name(name)
        except ValueError as error:
            print(f"--nodes: {error}")
            return False
    shell = resources["ssh"]
    try:
        in_cluster = kube.node_addresses(resources["kube"])
    except Exception as error:  # any failure to reach the API: say so and check what the config names
        print(f"warning: cannot list the cluster's nodes ({clip(f'{type(error).__name__}: {error}')}); "
              "checking the nodes in ssh.addresses only")
        in_cluster = {}
    known = {**{name: None for name in settings.ssh.addresses}, **in_cluster}
    wanted = list(names) if names else sorted(known)
    if not wanted:
        print("nodes over SSH: the cluster lists no nodes and ssh.addresses names none")
        return False
    strangers = [NodeCheck(name, None, "not a node of the cluster, and ssh.addresses has no entry for it", "address")
                 for name in wanted if name not in known]
    checks = sorted([*check_nodes(shell, {name: known.get(name) for name in wanted if name in known}), *strangers],
                    key=lambda check: check.node)
    print(f"nodes over SSH ({len(checks)}):")
    for line in report(checks):
        print(line)
    failed = [check for check in checks if not check.ok]
    print(f"{len(failed)} of {len(checks)} nodes have problems" if failed else f"all {len(checks)} nodes OK")
    return not failed
