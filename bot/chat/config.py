"""Settings: a YAML file, overridden by `KUBEMAINT_*` environment variables.

`KUBEMAINT_SLACK__BOT_TOKEN=xoxb-...` sets `slack.bot_token` (`__` separates nested keys; lists
are JSON, e.g. `KUBEMAINT_ROLES__OPERATORS='["U012ABC"]'`). Unknown keys are errors, because
a misspelt `aprovers:` that is silently ignored is an access-control bug.

Roles are independent sets: being an approver does not make someone an operator. A policy's
`allowed_roles` lists every role that may run the command. Each operation declares its default
policy (read-only commands: every role; changes: operators); `policies.<name>` overrides it key
by key. `operation_modules` names modules with more operations (yours), loaded before the rest
of the file is checked so that their policies can be set here too.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from bot.contract.operation import FALLBACK_POLICY, Policy
from bot.contract.registry import Registry, operations
from bot.contract.words import check_node_name
from bot.domain.schedule import ScheduleError, check_cron
from bot.domain.selectors import LabelSelector
from bot.domain.windows import Window, WindowError, parse_window

ENV_PREFIX = "KUBEMAINT_"
ENV_NESTED_DELIMITER = "__"

_SLACK_ID = re.compile(r"[UWS][A-Z0-9]{1,31}")


class ConfigError(Exception):
    """Configuration that kubemaint refuses to start with. Each problem names its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration ({source}):\n" + "\n".join(f"  {p}" for p in problems))


# The operations a config is checked against while it is validated: the built-in ones and those of
# its own `operation_modules`. (A context variable: BaseSettings drops pydantic's validation context.)
_checking_with: ContextVar[Registry | None] = ContextVar("kubemaint_config_operations", default=None)


def _operations() -> Registry:
    return _checking_with.get() or operations()


def _known_command(name: str) -> str:
    if name not in _operations():
        raise PydanticCustomError("unknown_command", "unknown command")
    return name


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _module_name(value: str) -> str:
    if not _MODULE.fullmatch(value):
        raise PydanticCustomError("module", '"{value}" is not a Python module name', {"value": value[:60]})
    return value


def _slack_id(value: str) -> str:
    if not _SLACK_ID.fullmatch(value):
        raise PydanticCustomError(
            "slack_id", '"{value}" is not a Slack user id (U…/W…) or user group id (S…)', {"value": value[:40]}
        )
    return value


def _comma_separated(value: Any) -> Any:
    # Lets `KUBEMAINT_ROLES__OPERATORS=U1,U2` work as well as the JSON form.
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


SlackId = Annotated[str, AfterValidator(_slack_id)]
SlackIds = Annotated[tuple[SlackId, ...], BeforeValidator(_comma_separated)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Section):
    mode: Literal["socket", "http"] = "socket"  # declared first: the token checks read it
    bot_token: SecretStr
    app_token: SecretStr | None = Field(default=None, validate_default=True)
    signing_secret: SecretStr | None = Field(default=None, validate_default=True)
    base_url: str | None = None  # the lab's Slack emulator; None means slack.com
    http_port: int = Field(default=3000, ge=1, le=65535)

    @field_validator("bot_token")
    @classmethod
    def _bot_token_prefix(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value().startswith("xoxb-"):
            raise PydanticCustomError("token", "must be a bot token (xoxb-…)")
        return token

    @field_validator("app_token")
    @classmethod
    def _app_token_for_socket_mode(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if token is None:
            if info.data.get("mode") == "socket":
                raise PydanticCustomError("required", "required when slack.mode is socket (an app-level xapp- token)")
            return None
        if not token.get_secret_value().startswith("xapp-"):
            raise PydanticCustomError("token", "must be an app-level token (xapp-…)")
        return token

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret_for_http_mode(cls, secret: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if secret is None and info.data.get("mode") == "http":
            raise PydanticCustomError("required", "required when slack.mode is http")
        return secret

    @field_validator("base_url")
    @classmethod
    def _base_url_ends_with_slash(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not re.match(r"https?://[^/\s]+", url):
            raise PydanticCustomError("url", "must be an http:// or https:// URL")
        # slack_sdk joins method names onto it: "http://host/api" + "chat.postMessage" would break.
        return url if url.endswith("/") else url + "/"


class RoleSettings(_Section):
    viewers: SlackIds = ()
    operators: SlackIds = ()
    approvers: SlackIds = ()


class ProgressSettings(_Section):
    edit_interval_seconds: float = Field(default=3, gt=0)
    updates_per_minute: int = Field(default=45, gt=0)  # Slack's chat.update budget is ~50/min per app


_UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _unix_user(value: str) -> str:
    if not _UNIX_USER.fullmatch(value):
        raise PydanticCustomError("user", '"{value}" is not a user name (lowercase letters, digits, "_" and "-")',
                                  {"value": value[:40]})
    return value


def _host_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise PydanticCustomError("address", '"{value}" is not an IP address or a host name', {"value": value[:60]})
    return value


def _node_name(value: str) -> str:
    try:
        return check_node_name(value)
    except ValueError as error:
        raise PydanticCustomError("node_name", "{reason}", {"reason": str(error)}) from None


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise PydanticCustomError("env_name", "must name an environment variable (letters, digits and _), "
                                              "not hold the passphrase itself")
    return value


UnixUser = Annotated[str, AfterValidator(_unix_user)]
HostAddress = Annotated[str, AfterValidator(_host_address)]
Port = Annotated[int, Field(ge=1, le=65535)]


class JumpHostSettings(_Section):
    """A bastion the nodes are reached through (OpenSSH's ProxyJump); same key and known_hosts as the nodes."""

    address: HostAddress
    port: Port | None = None  # default: ssh.port
    user: UnixUser | None = None  # default: ssh.user


class SshSettings(_Section):
    """How the bot reaches the nodes over SSH (bot/nodes): strict host keys, key authentication."""

    user: UnixUser
    port: Port = 22
    known_hosts: Path
    agent: bool = False  # declared before key_file: its check reads it
    key_file: Path | None = Field(default=None, validate_default=True)
    passphrase_env: Annotated[str, AfterValidator(_env_name)] | None = Field(default=None, validate_default=True)
    addresses: dict[Annotated[str, AfterValidator(_node_name)], HostAddress] = Field(default_factory=dict)
    jump_host: JumpHostSettings | None = None
    connect_timeout_seconds: float = Field(default=10, gt=0, le=300)
    command_deadline_seconds: float = Field(default=300, gt=0, le=24 * 3600)
    keepalive_seconds: float = Field(default=15, ge=0, le=3600)

    @field_validator("known_hosts", "key_file")
    @classmethod
    def _expand_home(cls, path: Path | None) -> Path | None:
        return path.expanduser() if path is not None else None

    @field_validator("key_file")
    @classmethod
    def _some_way_to_log_in(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None and info.data.get("agent") is False:
            raise PydanticCustomError("required", "required unless ssh.agent is true (a private key file, or the "
                                                  "SSH agent's keys)")
        return path

    @field_validator("passphrase_env")
    @classmethod
    def _passphrase_is_for_the_key(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is not None and "key_file" in info.data and info.data["key_file"] is None:
            raise PydanticCustomError("needs_key", "needs ssh.key_file (the passphrase opens that key)")
        return name


DEFAULT_BACKUP_DIRECTORY = Path("/var/lib/kubemaint/backups")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# S3's rules for new buckets: 3-63 lowercase letters, digits, "." and "-", starting and ending with a letter or digit.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+|[a-z0-9-]{1,40}")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,31}")


def _cron(value: str) -> str:
    try:
        return check_cron(value)
    except ScheduleError as error:
        raise PydanticCustomError("cron", "{reason}", {"reason": str(error)}) from None


def _channel_id(value: str) -> str:
    if not _CHANNEL_ID.fullmatch(value):
        raise PydanticCustomError("channel_id", '"{value}" is not a Slack channel id (C… or G…; the channel\'s details '
                                                "show it)", {"value": value[:40]})
    return value


def _cluster_name(value: str) -> str:
    if not _CLUSTER_NAME.fullmatch(value):
        raise PydanticCustomError("cluster", 'must be up to 63 letters, digits, ".", "_" and "-", starting with a '
                                             "letter or digit (it names the backups' folder in the store)")
    return value


class BackupStoreSettings(_Section):
    """Where backup files go: a local directory (`type: local`, the default) or an S3 bucket (`type: s3`), on AWS
    or on an S3-compatible server (`endpoint_url`). S3 credentials come from the standard AWS environment
    variables, profile or role, never from this file. Each type refuses the other's keys."""

    type: Literal["local", "s3"] = "local"  # declared first: the checks below read it
    directory: Path | None = Field(default=None, validate_default=True)
    bucket: str | None = Field(default=None, validate_default=True)
    prefix: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    @field_validator("directory")
    @classmethod
    def _directory_for_local(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        kind = info.data.get("type")
        if kind == "s3":
            if path is not None:
                raise PydanticCustomError("store_type", "only for backups.store.type local")
            return None
        return (path or DEFAULT_BACKUP_DIRECTORY).expanduser()

    @field_validator("bucket")
    @classmethod
    def _bucket_for_s3(cls, bucket: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if kind == "local" and bucket is not None:
            raise PydanticCustomError("store_type", "only for backups.store.type s3")
        if kind == "s3" and bucket is None:
            raise PydanticCustomError("required", "required when backups.store.type is s3")
        if bucket is not None and not _BUCKET.fullmatch(bucket):
            raise PydanticCustomError("bucket", '"{value}" is not an S3 bucket name (3-63 lowercase letters, digits, '
                                                '"." and "-")', {"value": bucket[:70]})
        return bucket

    @field_validator("prefix", "endpoint_url", "region")
    @classmethod
    def _only_for_s3(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("type") == "local":
            raise PydanticCustomError("store_type", "only for backups.store.type s3")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_folder(cls, prefix: str | None) -> str | None:
        if prefix is None:
            return None
        stripped = prefix.strip("/")
        if stripped and not all(_PREFIX_SEGMENT.fullmatch(part) for part in stripped.split("/")):
            raise PydanticCustomError("prefix", 'must be folder names of letters, digits, ".", "_" and "-" separated '
                                                'by "/", like kubemaint/prod')
        return stripped

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_a_url(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^/\s]+/?", url):
            raise PydanticCustomError("url", "must be an http:// or https:// URL of the server, without a path "
                                             "(the bucket is backups.store.bucket)")
        return url.rstrip("/") if url else url

    @field_validator("region")
    @classmethod
    def _region_name(cls, region: str | None) -> str | None:
        if region is not None and not _REGION.fullmatch(region):
            raise PydanticCustomError("region", '"{value}" is not a region name like eu-west-1', {"value": region[:40]})
        return region


class BackupSettings(_Section):
    """Backups (etcd snapshots, resource tarballs): where they go, how many to keep, and an optional schedule."""

    store: BackupStoreSettings = BackupStoreSettings()
    keep_last: int = Field(default=14, ge=1, le=10_000)  # per cluster and kind; older files and entries are deleted
    # A cron expression in UTC ("0 */6 * * *"): `backup etcd` runs as a job in each slot, once across every bot process.
    schedule: Annotated[str, AfterValidator(_cron)] | None = None
    schedule_channel: Annotated[str, AfterValidator(_channel_id)] | None = Field(default=None, validate_default=True)
    # The name the backups are filed under; default: the kubeconfig context's name.
    cluster: Annotated[str, AfterValidator(_cluster_name)] | None = None

    @field_validator("schedule_channel")
    @classmethod
    def _somewhere_to_say_a_scheduled_backup_failed(cls, channel: str | None, info: ValidationInfo) -> str | None:
        if channel is None and info.data.get("schedule"):
            raise PydanticCustomError("required", "required when backups.schedule is set (the channel a failed "
                                                  "scheduled backup is posted to)")
        return channel


def _window(value: dict) -> dict:
    try:
        parse_window(value)
    except WindowError as error:
        raise PydanticCustomError("window", "{reason}", {"reason": str(error)}) from None
    return value


def _pod_selector(value: str) -> str:
    try:
        return LabelSelector.parse(value).text
    except ValueError as error:
        raise PydanticCustomError("selector", "{reason}", {"reason": str(error)}) from None


def _gate_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/\s?#]+[^\s]*", value):
        raise PydanticCustomError("url", "must be an http:// or https:// URL")
    return value


def _prometheus_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
        raise PydanticCustomError("url", "must be an http:// or https:// URL of the Prometheus server (a path prefix "
                                         "is allowed, no query string)")
    # The API's paths are joined onto it: "http://prom/" + "/api/v1/query" would double the slash.
    return value.rstrip("/")


def _query(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("query", "an empty query: write PromQL that returns no series when all is well, "
                                           'e.g. ALERTS{alertstate="firing"}')
    return value.strip()


GateTimeout = Annotated[float, Field(ge=1, le=300)]


class BlockerSettings(_Section):
    """What on a node stops its maintenance from starting."""

    # Pods matching it on the node about to be drained block that node (`app=critical-batch`).
    pod_selector: Annotated[str, AfterValidator(_pod_selector)] | None = None

    def selector(self) -> LabelSelector | None:
        return LabelSelector.parse(self.pod_selector) if self.pod_selector else None


class HttpGateSettings(_Section):
    """A URL that must answer 2xx."""

    url: Annotated[str, AfterValidator(_gate_url)]
    timeout_seconds: GateTimeout = 5


class PrometheusGateSettings(_Section):
    """Queries that must return no series (a firing alert is a series)."""

    url: Annotated[str, AfterValidator(_prometheus_url)] | None = Field(default=None, validate_default=True)
    timeout_seconds: GateTimeout = 5
    queries: tuple[Annotated[str, AfterValidator(_query)], ...] = Field(default=(), validate_default=True)

    @field_validator("url")
    @classmethod
    def _url_for_the_queries(cls, url: str | None) -> str | None:
        if url is None:
            raise PydanticCustomError("required", "required: the Prometheus server that answers the queries, e.g. "
                                                  "http://prometheus.monitoring:9090")
        return url

    @field_validator("queries")
    @classmethod
    def _some_query(cls, queries: tuple[str, ...]) -> tuple[str, ...]:
        if not queries:
            raise PydanticCustomError("required", "required: at least one PromQL query, each must return no series "
                                                  "(an alert firing is a series)")
        return queries


class GateSettings(_Section):
    """Health checks that must pass before each node's maintenance and after it, before the next node."""

    http: tuple[HttpGateSettings, ...] = ()
    prometheus: PrometheusGateSettings | None = None


class MaintenanceSettings(_Section):
    """When disruptive maintenance (reboots, OS upgrades) may start: the windows (none: at any time), the
    blockers on a node and the health gates."""

    windows: tuple[Annotated[dict, AfterValidator(_window)], ...] = ()
    blockers: BlockerSettings = BlockerSettings()
    gates: GateSettings = GateSettings()

    def parsed_windows(self) -> list[Window]:
        return [parse_window(window) for window in self.windows]


def _bind_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise PydanticCustomError("address", '"{value}" is not an IP address to listen on (0.0.0.0: every '
                                             "interface, 127.0.0.1: this host only)", {"value": value[:60]}) from None


def _metrics_port(value: Any) -> Any:
    # 0 would make the OS pick a port nobody can find: the metrics are off when the key is left out.
    if value == 0 and not isinstance(value, bool):
        raise PydanticCustomError("port", "must be a port 1-65535 (leave the key out to serve no metrics)")
    return value


MetricsPort = Annotated[Port, BeforeValidator(_metrics_port)]


class MetricsSettings(_Section):
    """Where `/metrics`, `/healthz` and `/readyz` are served (docs/operations.md, "Metrics"). No port: none."""

    address: Annotated[str, AfterValidator(_bind_address)] = "0.0.0.0"
    port: MetricsPort | None = None  # kubemaint serve
    # Each worker's, unless it is started with --metrics-port (several workers on one host need one each).
    worker_port: MetricsPort | None = None


class RecoverySettings(_Section):
    """How fast another worker takes over the job of a worker that died (docs/operations.md, "When a process
    dies"): a running job beats every `heartbeat_seconds`; silent for `dead_after_seconds`, it is resumed by
    the first worker whose sweep (every `sweep_seconds`) sees it. Shorter is a faster take-over, and more
    Redis traffic; a worker stalled longer than `dead_after_seconds` (a long GC pause, a frozen VM) loses its job."""

    heartbeat_seconds: float = Field(default=2, gt=0, le=60)
    dead_after_seconds: float = Field(default=6, gt=0, le=600)
    sweep_seconds: float = Field(default=2, gt=0, le=60)

    @model_validator(mode="after")
    def _beats_before_it_is_dead(self) -> RecoverySettings:
        # One late heartbeat must not make a live worker look dead.
        if self.dead_after_seconds < 2 * self.heartbeat_seconds:
            raise PydanticCustomError("recovery", "dead_after_seconds: must be at least twice heartbeat_seconds "
                                                  "({beat} s), or one late heartbeat makes a live worker look dead",
                                      {"beat": f"{self.heartbeat_seconds:g}"})
        return self


def _minor_number(value: Any) -> Any:
    # People write the release line the way Kubernetes does ("v1.33"); we store the minor.
    if isinstance(value, str):
        match = re.fullmatch(r"v?1\.(\d+)|(\d+)", value.strip())
        if not match:
            raise PydanticCustomError("minor", 'must be a Kubernetes minor like 33 or "v1.33"')
        return int(match[1] or match[2])
    return value


def _redis_url(value: str) -> str:
    if not re.match(r"(rediss?|unix)://", value):
        raise PydanticCustomError("url", "must start with redis://, rediss:// or unix://")
    return value


def _with_default_policies(given: Any) -> Any:
    # A file that only says `cordon: {approval_required: true}` keeps cordon's default roles,
    # and every command gets a policy, so lookups never fall through to "anything goes".
    if not isinstance(given, Mapping):
        return given
    merged: dict[str, Any] = {op.name: op.policy.model_dump() for op in _operations().values()}
    for name, policy in given.items():
        if name in merged and isinstance(policy, Mapping):
            merged[name].update(policy)
        else:
            merged[name] = policy  # unknown commands and non-mappings fail validation with their path
    return merged


def _check_approvals(roles: RoleSettings, policies: Mapping[str, Policy], where: str = "") -> None:
    # Catch policies nobody could ever satisfy at start-up rather than at the first risky command.
    approvers = roles.approvers
    only_users = not any(a.startswith("S") for a in approvers)
    for verb, policy in policies.items():
        if not policy.approval_required:
            continue
        if not approvers:
            raise PydanticCustomError(
                "approvers", "{where}policies.{verb}.approval_required: no approvers are configured "
                             "({where}roles.approvers)", {"verb": verb, "where": where},
            )
        default = _operations()[verb].policy if verb in _operations() else None
        # A default nobody chose (restore's two approvals) does not stop a one-approver team's bot:
        # those requests wait for a second approver; a count set in this file must be reachable.
        if only_users and policy.approvals_needed > len(approvers) and policy != default:
            raise PydanticCustomError(
                "approvers",
                "{where}policies.{verb}.approvals_needed: {needed} approvals needed but {where}roles.approvers "
                "lists only {count} user(s)",
                {"verb": verb, "needed": policy.approvals_needed, "count": len(approvers), "where": where},
            )


# Every command gets a policy (its defaults, with the file's keys over them); a kubeconfig path may start with ~.
Policies = Annotated[dict[Annotated[str, AfterValidator(_known_command)], Policy],
                     BeforeValidator(_with_default_policies)]
Kubeconfig = Annotated[Path, AfterValidator(lambda path: path.expanduser())]


# What a cluster inherits from the top level, key by key, where its own section says nothing.
INHERITED = ("ssh", "backups", "maintenance", "roles", "policies")


def _clusters_inherit(values: Any) -> Any:
    """Each cluster's sections = the top-level ones with the cluster's own keys over them (before validation,
    so that a problem is reported under the cluster's path)."""
    if not isinstance(values, Mapping) or not isinstance(values.get("clusters"), Mapping):
        return values
    clusters = {}
    for name, given in values["clusters"].items():
        if not isinstance(given, Mapping):
            clusters[name] = given  # validation says "must be a mapping of keys" under its name
            continue
        cluster = dict(given)
        for key in INHERITED:
            top, own = values.get(key), cluster.get(key)
            # A section the cluster leaves out is inherited whole; one it gives is laid over it; `ssh: null` says
            # this cluster has no SSH.
            if isinstance(top, Mapping) and (key not in cluster or isinstance(own, Mapping)):
                cluster[key] = _deep_merge(top, own or {})
        backups = dict(cluster.get("backups") or {}) if isinstance(cluster.get("backups", {}), Mapping) else None
        if backups is not None:
            # Each cluster's backups are filed under its own name unless it names the folder itself.
            own_backups = given.get("backups") if isinstance(given.get("backups"), Mapping) else {}
            backups["cluster"] = own_backups.get("cluster", name)
            channels = cluster.get("channels")
            if backups.get("schedule") and not backups.get("schedule_channel") and isinstance(channels, list | tuple) \
                    and channels:
                backups["schedule_channel"] = channels[0]  # a failed scheduled backup is told in the cluster's channel
            cluster["backups"] = backups
        clusters[name] = cluster
    values = {**values, "clusters": clusters}
    if clusters and isinstance(values.get("backups"), Mapping):
        # The clusters run the schedule they inherited, each in its own channel; the top-level section is
        # only what they inherit.
        values["backups"] = {k: v for k, v in values["backups"].items() if k not in ("schedule", "schedule_channel")}
    return values


class ClusterSettings(_Section):
    """One cluster of several: how to reach its API (a kubeconfig and context, or `in_cluster`), the channels
    whose commands go to it, and its own sections (inherited from the top level, key by key)."""

    kubeconfig: Kubeconfig | None = None
    context: str | None = None
    in_cluster: bool = False
    channels: tuple[Annotated[str, AfterValidator(_channel_id)], ...] = ()
    ssh: SshSettings | None = None
    backups: BackupSettings = BackupSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    roles: RoleSettings = RoleSettings()
    policies: Policies = Field(default_factory=dict, validate_default=True)

    @model_validator(mode="after")
    def _one_way_to_the_api(self) -> ClusterSettings:
        if self.in_cluster and self.kubeconfig is not None:
            raise PydanticCustomError("api", "kubeconfig and in_cluster: give one (in_cluster: the bot's own "
                                             "service account, in the cluster it runs in)")
        if not self.in_cluster and self.kubeconfig is None:
            raise PydanticCustomError("api", "kubeconfig: required, or in_cluster: true (the cluster the bot runs in)")
        if self.context is not None and self.kubeconfig is None:
            raise PydanticCustomError("api", "context: needs kubeconfig (it names one of the kubeconfig's contexts)")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="forbid", frozen=True
    )

    slack: SlackSettings
    redis_url: Annotated[str, AfterValidator(_redis_url)] = "redis://127.0.0.1:6379/0"
    kubeconfig: Kubeconfig | None = None
    context: str | None = None
    roles: RoleSettings = RoleSettings()
    operation_modules: tuple[Annotated[str, AfterValidator(_module_name)], ...] = ()
    policies: Policies = Field(default_factory=dict, validate_default=True)
    # The newest Kubernetes minor this deployment knows of, and how many of the newest minors are
    # supported. Defaults: v1.33 (released 2025-04-23) and upstream's three; raise the first when
    # a new minor is released, and `status` stops calling it unsupported.
    supported_latest_minor: Annotated[int, BeforeValidator(_minor_number), Field(ge=1)] = 33
    supported_minor_count: int = Field(default=3, ge=1, le=10)
    progress: ProgressSettings = ProgressSettings()
    # Processes that plan and answer commands, apart from the one that acks Slack (bot/chat/handling.py).
    handler_processes: int = Field(default=2, ge=1, le=16)
    ssh: SshSettings | None = None  # none: operations that need the nodes are refused at their first command
    backups: BackupSettings = BackupSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    metrics: MetricsSettings = MetricsSettings()
    recovery: RecoverySettings = RecoverySettings()
    # Several clusters (docs/configuration.md, "Several clusters"): each with its own API, nodes, backups and
    # maintenance settings; a channel's commands go to its cluster, and `--cluster NAME` to any other.
    clusters: dict[Annotated[str, AfterValidator(_cluster_name)], ClusterSettings] = Field(default_factory=dict)
    default_cluster: str | None = None  # for channels no cluster names
    _cluster: str = PrivateAttr(default="")  # set on the settings `for_cluster` returns

    @model_validator(mode="before")
    @classmethod
    def _clusters_inherit(cls, values: Any) -> Any:
        return _clusters_inherit(values)

    @model_validator(mode="after")
    def _approvals_can_happen(self) -> Settings:
        _check_approvals(self.roles, self.policies)
        for name, cluster in self.clusters.items():
            _check_approvals(cluster.roles, cluster.policies, f"clusters.{name}.")
        return self

    @model_validator(mode="after")
    def _clusters_are_distinct(self) -> Settings:
        if not self.clusters:
            if self.default_cluster is not None:
                raise PydanticCustomError("clusters", "default_cluster: no clusters are configured (clusters:)")
            return self
        for key in ("kubeconfig", "context"):
            if getattr(self, key) is not None:
                raise PydanticCustomError(
                    "clusters", "{key}: with clusters configured, each cluster names its own (clusters.NAME.{key})",
                    {"key": key})
        if self.default_cluster is not None and self.default_cluster not in self.clusters:
            raise PydanticCustomError("clusters", 'default_cluster: "{name}" is not one of the clusters ({names})',
                                      {"name": self.default_cluster, "names": ", ".join(self.clusters)})
        seen: dict[str, str] = {}
        for name, cluster in self.clusters.items():
            for channel in cluster.channels:
                if channel in seen:
                    raise PydanticCustomError(
                        "clusters", "clusters.{name}.channels: {channel} is already the channel of cluster {other} "
                                    "(a channel has one default cluster; --cluster reaches the others)",
                        {"name": name, "channel": channel, "other": seen[channel]})
                seen[channel] = name
        return self

    def policy(self, name: str) -> Policy:
        """The policy for the command `name`; one unknown to this config gets the fail-safe fallback."""
        return self.policies.get(name) or FALLBACK_POLICY

    @property
    def operations(self) -> Registry:
        """The built-in operations and those of `operation_modules`."""
        return operations(self.operation_modules)

    @property
    def cluster_name(self) -> str:
        """The cluster these settings are for: "" for a configuration without `clusters`."""
        return self._cluster

    def for_cluster(self, name: str) -> Settings:
        """The settings as that cluster sees them: its API, nodes, backups, maintenance, roles and policies in
        place of the top-level ones (which it inherited where it said nothing)."""
        cluster = self.clusters[name]
        own = self.model_copy(update={
            "kubeconfig": cluster.kubeconfig, "context": cluster.context, "ssh": cluster.ssh,
            "backups": cluster.backups, "maintenance": cluster.maintenance, "roles": cluster.roles,
            "policies": cluster.policies,
        })
        own._cluster = name
        return own


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env parsing over a given mapping, so tests need not touch os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        # Not JSON: hand the raw string to validation, which either accepts it ("U1,U2" for a
        # role list) or reports the key path, instead of a bare "error parsing value".
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (YAML; None for environment only) and the `KUBEMAINT_*` variables in `env`
    (default `os.environ`), environment winning. Raises `ConfigError` naming each bad key."""
    source = str(path) if path is not None else "environment"
    file_values = _read_yaml(path) if path is not None else {}
    environ = os.environ if env is None else env
    try:
        env_values = _MappingEnvSource(Settings, environ)()
    except SettingsError as error:
        raise ConfigError("environment", [str(error)]) from None
    values = _deep_merge(file_values, env_values)
    registry = _load_operations(source, values.get("operation_modules"))
    checking = _checking_with.set(registry)
    try:
        # model_validate, not Settings(...): the sources are merged here, in a fixed order.
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ConfigError(source, _problems(error, env_values, registry)) from None
    finally:
        _checking_with.reset(checking)


def _load_operations(source: str, modules: Any) -> Registry:
    """The operations, with the config's own modules: loaded first, since `policies` may name theirs."""
    if not isinstance(modules, list | tuple) or not all(isinstance(m, str) and _MODULE.fullmatch(m) for m in modules):
        return operations()  # not a list of module names: validation reports it with its key
    for index, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as error:  # a module's import can fail in any way: say which and why
            raise ConfigError(source, [f"operation_modules[{index}]: cannot import {module}: "
                                       f"{type(error).__name__}: {error}"]) from None
    try:
        return operations(tuple(modules))
    except (TypeError, ValueError) as error:  # two operations with one name or one phrase, say
        raise ConfigError(source, [f"operation_modules: {error}"]) from None


class _RedisOnly(BaseModel):
    model_config = ConfigDict(extra="ignore")

    redis_url: Annotated[str, AfterValidator(_redis_url)] = Settings.model_fields["redis_url"].default


def load_redis_url(path: Path | None, env: Mapping[str, str] | None = None) -> str:
    """Only `redis_url` (file, then KUBEMAINT_REDIS_URL): for commands that need nothing else,
    such as `kubemaint audit`, so they work without the Slack tokens."""
    source = str(path) if path is not None else "environment"
    values = _read_yaml(path) if path is not None else {}
    environ = os.environ if env is None else env
    if environ.get(f"{ENV_PREFIX}REDIS_URL"):
        values = {**values, "redis_url": environ[f"{ENV_PREFIX}REDIS_URL"]}
    try:
        return _RedisOnly.model_validate(values).redis_url
    except ValidationError as error:
        raise ConfigError(source, _problems(error, {}, operations())) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise ConfigError(str(path), [f"not valid YAML{where}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping of keys (slack:, roles:, ...)"])
    return data


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of keys",
    "string_type": "must be text",
    "tuple_type": "must be a list",
}


def _problems(error: ValidationError, env_values: Mapping[str, Any], registry: Registry) -> list[str]:
    # Once a key is unknown, complaints about what is inside it are noise.
    unknown = [tuple(e["loc"][:-1]) for e in error.errors() if e["loc"] and e["loc"][-1] == "[key]"]
    return [
        _describe(e, env_values, registry)
        for e in error.errors()
        if not any(tuple(e["loc"][: len(u)]) == u and e["loc"][-1] != "[key]" for u in unknown)
    ]


def _describe(error: Any, env_values: Mapping[str, Any], registry: Registry) -> str:
    loc = tuple(error["loc"])
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (error.get("ctx") or {}).items()}
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        message = (f"unknown command; policies exist for {', '.join(registry.names())}"
                   if loc[:1] == ("policies",) else error["msg"])
    elif error["type"] == "literal_error":
        message = f"must be one of {ctx.get('expected', '')}"
    elif error["type"] in _MESSAGES:
        message = _MESSAGES[error["type"]].format(**ctx)
    else:
        message = error["msg"]
    if not loc:
        return message  # model-level checks already name their keys
    key_path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if _present(env_values, loc):
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p).upper() for p in loc if not isinstance(p, int))
        return f"{key_path}: {message} (from {env_name})"
    return f"{key_path}: {message}"


def _present(values: Any, loc: tuple[Any, ...]) -> bool:
    # Only string keys can come from an env var name; a list index means the whole list did.
    for part in loc:
        if isinstance(part, int):
            return True
        if not isinstance(values, Mapping) or part not in values:
            return False
        values = values[part]
    return True
