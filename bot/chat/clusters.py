"""Which cluster a command is for, and each cluster's settings and resources.

A configuration without `clusters` has one cluster, unnamed (""): commands never mention it and
nothing changes for them. With `clusters`, a command goes to the cluster named by `--cluster NAME`,
else to its channel's cluster, else to `default_cluster` (or the only one); everything it does is
then done with that cluster's settings (API, nodes, backups, maintenance, roles, policies) and
resources, and its locks are that cluster's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from bot.chat.config import Settings
from bot.contract.resources import Resources

# Resources that reach a cluster (its API, its nodes, its backups, its maintenance settings): an operation
# needing none of them (help, jobs, cancel) runs the same whichever cluster a channel has.
CLUSTER_RESOURCES = frozenset({"kube", "ssh", "backups", "maintenance"})


class UnknownCluster(ValueError):
    """A command for a cluster that is not configured, or with none to go to. The message is ready for chat."""


class Clusters:
    """The process's view of the configured clusters: resolved per command, resources built once per cluster."""

    def __init__(self, settings: Settings,
                 make_resources: Callable[[Settings], Resources] | None = None) -> None:
        self.settings = settings
        self._make = make_resources or (lambda own: Resources(own.operations.resources, own))
        self._own: dict[str, Settings] = {}
        self._resources: dict[str, Resources] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The configured clusters' names; [""] for a configuration without `clusters`."""
        return list(self.settings.clusters) or [""]

    def resolve(self, requested: str | None, channel: str, needs: Iterable[str] = CLUSTER_RESOURCES) -> str:
        """The cluster a command typed in `channel` is for. `needs`: the resources its operation uses; one that
        uses no cluster's goes without a cluster unless one was named."""
        configured = self.settings.clusters
        if not configured:
            if requested is not None:
                raise UnknownCluster(f'--cluster {requested}: this kubemaint manages one cluster, configured without '
                                     "a name: leave --cluster out")
            return ""
        if requested is not None:
            if requested not in configured:
                raise UnknownCluster(f'unknown cluster "{requested}": the clusters are {self._listed()}')
            return requested
        if not CLUSTER_RESOURCES.intersection(needs):
            return ""
        for name, cluster in configured.items():
            if channel in cluster.channels:
                return name
        if self.settings.default_cluster:
            return self.settings.default_cluster
        if len(configured) == 1:
            return next(iter(configured))
        raise UnknownCluster(f"this channel has no cluster of its own: add --cluster NAME (the clusters are "
                             f"{self._listed()})")

    def settings_for(self, name: str) -> Settings:
        """The settings as cluster `name` sees them; for "", the top-level ones: a configuration without
        `clusters`, or commands that reach no cluster (help, jobs)."""
        if not name:
            return self.settings  # no cluster: the top-level settings (the only ones, without `clusters`)
        if name not in self.settings.clusters:  # a job or request from before the configuration changed
            raise UnknownCluster(f'cluster "{name}" is not configured (the clusters are {self._listed()})')
        with self._lock:
            if name not in self._own:
                self._own[name] = self.settings.for_cluster(name)
            return self._own[name]

    def resources_for(self, name: str) -> Resources:
        """Cluster `name`'s resources, built on first use and kept for the process's life."""
        own = self.settings_for(name)
        key = own.cluster_name
        with self._lock:
            if key not in self._resources:
                self._resources[key] = self._make(own)
            return self._resources[key]

    def all_settings(self) -> list[Settings]:
        """Each cluster's own settings (the one set of settings without `clusters`)."""
        return [self.settings_for(name) for name in self.names]

    def _listed(self) -> str:
        return ", ".join(self.settings.clusters)


def qualified_command(command_text: str | None, cluster: str) -> str | None:
    """A command to suggest (what to type next) for the same cluster, whichever channel it is typed in."""
    if not command_text or not cluster or "--cluster" in command_text:
        return command_text
    return f"{command_text} --cluster {cluster}"
