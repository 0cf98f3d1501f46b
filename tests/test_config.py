"""Settings from YAML + KUBEMAINT_* env, the errors a mistyped config gets, and the roles and
policies authorization builds on (bot/chat/authz.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.chat.authz import NotAllowed, check, roles_of
from bot.chat.config import ConfigError, RoleSettings, Settings, load_settings
from bot.chat.grammar import parse
from bot.contract.registry import operations

# The commands a second person approves unless the configuration says otherwise.
APPROVED_BY_DEFAULT = ("drain", "os-upgrade", "os-upgrade-all", "reboot", "reboot-needed", "restore-etcd", "upgrade")
MINIMAL = "slack:\n  bot_token: xoxb-file\n  app_token: xapp-file\n"
# drain needs an approval by default, so a usable config names at least one approver.
APPROVER = "roles: {approvers: [U0APP]}\n"


@pytest.fixture
def write(tmp_path: Path):
    def write_config(text: str) -> Path:
        path = tmp_path / "kubemaint.yaml"
        path.write_text(text)
        return path

    return write_config


def test_minimal_file_gets_sensible_defaults(write) -> None:
    settings = load_settings(write(MINIMAL + APPROVER), env={})
    assert settings.slack.mode == "socket"
    assert settings.slack.bot_token.get_secret_value() == "xoxb-file"
    assert settings.slack.http_port == 3000
    assert settings.slack.base_url is None
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.kubeconfig is None and settings.context is None
    assert settings.supported_latest_minor == 33
    assert settings.progress.edit_interval_seconds == 3
    assert settings.progress.updates_per_minute == 45
    assert settings.handler_processes == 2
    assert set(settings.policies) == set(operations())
    for verb in ("help", "status", "jobs", "job"):
        assert set(settings.policies[verb].allowed_roles) == {"viewer", "operator", "approver"}
    for verb in ("cordon", "uncordon", "cancel", "drain"):
        assert settings.policies[verb].allowed_roles == ("operator",)
    for verb, policy in settings.policies.items():
        assert policy.approval_required == (verb in APPROVED_BY_DEFAULT)
        assert policy.approvals_needed == (2 if verb == "restore-etcd" else 1)
        assert policy.approval_ttl_seconds == 1800


def test_a_config_without_approvers_is_refused_because_drain_needs_one(write) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL), env={})
    [problem] = caught.value.problems
    assert re.fullmatch(r"policies\.(drain|os-upgrade|os-upgrade-all|reboot|reboot-needed|restore-etcd|upgrade)"
                        r"\.approval_required: no approvers are configured "
                        r"\(roles\.approvers\)", problem)
    # Turning the approvals off is a deliberate, visible choice.
    off = ", ".join(f"{verb}: {{approval_required: false}}" for verb in APPROVED_BY_DEFAULT)
    settings = load_settings(write(MINIMAL + f"policies: {{{off}}}\n"), env={})
    assert settings.policies["drain"].allowed_roles == ("operator",)


def test_secrets_stay_out_of_reprs(write) -> None:
    settings = load_settings(write(MINIMAL + APPROVER), env={})
    assert "xoxb-file" not in repr(settings)
    assert "xapp-file" not in str(settings.slack)


def test_env_overrides_the_file(write) -> None:
    path = write(MINIMAL + "supported_latest_minor: 30\nroles:\n  viewers: [U0VIEW]\n")
    settings = load_settings(path, env={
        "KUBEMAINT_SLACK__BOT_TOKEN": "xoxb-env",
        "kubemaint_slack__http_port": "8080",
        "KUBEMAINT_SUPPORTED_LATEST_MINOR": "v1.31",
        "KUBEMAINT_ROLES__OPERATORS": '["U0OPS", "S0GROUP"]',
        "KUBEMAINT_POLICIES__CORDON__APPROVAL_REQUIRED": "true",
        "KUBEMAINT_ROLES__APPROVERS": "U0APP1, U0APP2",
        "UNRELATED": "ignored",
    })
    assert settings.slack.bot_token.get_secret_value() == "xoxb-env"
    assert settings.slack.app_token is not None and settings.slack.app_token.get_secret_value() == "xapp-file"
    assert settings.slack.http_port == 8080
    assert settings.supported_latest_minor == 31
    assert settings.roles.viewers == ("U0VIEW",)
    assert settings.roles.operators == ("U0OPS", "S0GROUP")
    assert settings.roles.approvers == ("U0APP1", "U0APP2")
    assert settings.policies["cordon"].approval_required
    assert settings.policies["cordon"].allowed_roles == ("operator",)  # merged with the default


def test_environment_alone_is_enough() -> None:
    settings = load_settings(None, env={"KUBEMAINT_SLACK__BOT_TOKEN": "xoxb-1", "KUBEMAINT_SLACK__APP_TOKEN": "xapp-1",
                                        "KUBEMAINT_ROLES__APPROVERS": "U0APP"})
    assert settings.slack.app_token is not None


def test_partial_policy_keeps_the_other_defaults(write) -> None:
    path = write(MINIMAL + """
roles: {approvers: [U0APP1, U0APP2]}
policies:
  uncordon: {approval_required: true, approvals_needed: 2, approval_ttl_seconds: 600}
  status: {allowed_roles: [operator]}
""")
    settings = load_settings(path, env={})
    assert settings.policies["uncordon"].model_dump() == {
        "allowed_roles": ("operator",), "approval_required": True, "approvals_needed": 2, "approval_ttl_seconds": 600,
    }
    assert settings.policies["status"].allowed_roles == ("operator",)
    assert settings.policies["help"].allowed_roles == ("viewer", "operator", "approver")


def test_http_mode_and_emulator_settings(write) -> None:
    path = write("""
slack: {mode: http, bot_token: xoxb-1, signing_secret: s3cret, base_url: "http://127.0.0.1:8888/api"}
kubeconfig: ~/lab/kubeconfig
context: lab
redis_url: redis://localhost:6380/2
supported_latest_minor: "1.32"
""" + APPROVER)
    settings = load_settings(path, env={})
    assert settings.slack.app_token is None
    assert settings.slack.base_url == "http://127.0.0.1:8888/api/"  # slack_sdk appends method names
    assert settings.kubeconfig == Path.home() / "lab" / "kubeconfig"
    assert settings.context == "lab"
    assert settings.supported_latest_minor == 32


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (MINIMAL + "colour: blue\n", "colour: unknown key"),
        (MINIMAL.replace("app_token: xapp-file", "app_token: xapp-file\n  tokne: x"), "slack.tokne: unknown key"),
        ("slack: {bot_token: xoxp-user, app_token: xapp-1}\n", "slack.bot_token: must be a bot token (xoxb-…)"),
        ("slack: {bot_token: xoxb-1, app_token: xoxb-2}\n", "slack.app_token: must be an app-level token (xapp-…)"),
        ("slack: {bot_token: xoxb-1}\n", "slack.app_token: required when slack.mode is socket"),
        ("slack: {bot_token: xoxb-1, mode: http}\n", "slack.signing_secret: required when slack.mode is http"),
        ("slack: {bot_token: xoxb-1, app_token: xapp-1, mode: rtm}\n", "slack.mode: must be one of 'socket' or 'http'"),
        ("slack: {bot_token: xoxb-1, app_token: xapp-1, http_port: 70000}\n", "slack.http_port: must be <= 65535"),
        ("slack: {bot_token: xoxb-1, app_token: xapp-1, base_url: slack.local}\n", "slack.base_url: must be an http"),
        ("slack: {app_token: xapp-1}\n", "slack.bot_token: required"),
        ("redis_url: redis://x\n", "slack: required"),
        (MINIMAL + "redis_url: localhost:6379\n", "redis_url: must start with redis://"),
        (MINIMAL + "roles: {operators: [U0OK, alice]}\n",
         'roles.operators[1]: "alice" is not a Slack user id (U…/W…) or user group id (S…)'),
        (MINIMAL + "roles: {approvers: [u0lower]}\n", 'roles.approvers[0]: "u0lower" is not a Slack user id'),
        (MINIMAL + "roles: {admins: [U0X]}\n", "roles.admins: unknown key"),
        (MINIMAL + "policies: {cordon: {approvals_needed: 0}}\n", "policies.cordon.approvals_needed: must be >= 1"),
        (MINIMAL + "policies: {cordon: {approval_ttl_seconds: 0}}\n",
         "policies.cordon.approval_ttl_seconds: must be > 0"),
        (MINIMAL + "policies: {cordon: {allowed_roles: [admin]}}\n",
         "policies.cordon.allowed_roles[0]: must be one of 'viewer', 'operator' or 'approver'"),
        (MINIMAL + "policies: {cordon: {needs_approval: true}}\n", "policies.cordon.needs_approval: unknown key"),
        (MINIMAL + "policies: {cordon: {approval_required: maybe}}\n",
         "policies.cordon.approval_required: must be true or false"),
        (MINIMAL + "policies: {rebot: {allowed_roles: [operator]}}\n", "policies.rebot: unknown command"),
        (MINIMAL + "policies: {cordon: {approval_required: true}}\n",
         "policies.cordon.approval_required: no approvers are configured (roles.approvers)"),
        (MINIMAL + "roles: {approvers: [U0A]}\npolicies: {cordon: {approval_required: true, approvals_needed: 2}}\n",
         "policies.cordon.approvals_needed: 2 approvals needed but roles.approvers lists only 1 user(s)"),
        (MINIMAL + "supported_latest_minor: latest\n",
         'supported_latest_minor: must be a Kubernetes minor like 33 or "v1.33"'),
        (MINIMAL + "progress: {edit_interval_seconds: 0}\n", "progress.edit_interval_seconds: must be > 0"),
        (MINIMAL + "progress: {updates_per_minute: -1}\n", "progress.updates_per_minute: must be > 0"),
        (MINIMAL + "handler_processes: 0\n", "handler_processes: must be >= 1"),
        (MINIMAL + "recovery: {dead_after_seconds: 3}\n",
         "recovery: dead_after_seconds: must be at least twice heartbeat_seconds (2 s)"),
        (MINIMAL + "recovery: {sweep_seconds: 0}\n", "recovery.sweep_seconds: must be > 0"),
        (MINIMAL + "handler_processes: 100\n", "handler_processes: must be <= 16"),
        (MINIMAL + "handler_processes: two\n", "handler_processes: must be a whole number"),
        (MINIMAL + "roles: [U0X]\n", "roles: must be a mapping of keys"),
    ],
)
def test_bad_keys_are_named(write, text: str, problem: str) -> None:
    path = write(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert any(problem in line for line in caught.value.problems), caught.value.problems
    assert str(path) in str(caught.value)


def test_unknown_policy_verb_is_one_clear_problem(write) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + "policies: {drian: {}}\n"), env={})
    assert caught.value.problems == [
        "policies.drian: unknown command; policies exist for backup-etcd, backup-resources, backups, cancel, cordon, "
        "drain, help, job, jobs, os-upgrade, os-upgrade-all, pause, reboot, reboot-needed, restore-etcd, resume, "
        "status, status-node, uncordon, upgrade, upgrade-plan, upgrade-plan-to"
    ]


def test_group_approvers_can_satisfy_any_count(write) -> None:
    # A user group's size is unknown here, so several approvals may well be possible.
    path = write(MINIMAL + "roles: {approvers: [S0ONCALL]}\npolicies: {cordon: {approval_required: true, "
                           "approvals_needed: 3}}\n")
    assert load_settings(path, env={}).policies["cordon"].approvals_needed == 3


def test_errors_from_env_name_the_variable(write) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL), env={"KUBEMAINT_SLACK__HTTP_PORT": "eighty", "KUBEMAINT_SLACK__COLOUR": "x"})
    assert "slack.http_port: must be a whole number (from KUBEMAINT_SLACK__HTTP_PORT)" in caught.value.problems
    assert "slack.colour: unknown key (from KUBEMAINT_SLACK__COLOUR)" in caught.value.problems


def test_bad_token_is_not_echoed(write) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write("slack: {bot_token: xoxp-TOPSECRET, app_token: xapp-1}\n"), env={})
    assert "TOPSECRET" not in str(caught.value)


def test_several_problems_are_reported_together(write) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + "colour: blue\npolicies: {cordon: {approvals_needed: 0}}\n"), env={})
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("slack: [unclosed\n", "not valid YAML at line 2"),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_unreadable_files(write, text: str, problem: str) -> None:
    path = write(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as caught:
        load_settings(tmp_path / "nope.yaml", env={})
    assert "nope.yaml" in str(caught.value)


def test_empty_file_means_env_only(write) -> None:
    env = {"KUBEMAINT_SLACK__BOT_TOKEN": "xoxb-1", "KUBEMAINT_SLACK__APP_TOKEN": "xapp-1",
           "KUBEMAINT_ROLES__APPROVERS": "U0APP"}
    settings = load_settings(write(""), env=env)
    assert settings.slack.bot_token.get_secret_value() == "xoxb-1"


# --- authorization (bot/chat/authz.py) ---------------------------------------------------------------

ROLES = RoleSettings(viewers=("U0VIEW", "S0READERS"), operators=("U0OPS",), approvers=("U0APP", "U0OPS"))


@pytest.fixture
def settings(write) -> Settings:
    return load_settings(write(MINIMAL + """
roles: {viewers: [U0VIEW], operators: [U0OPS], approvers: [U0APP]}
policies:
  cancel: {allowed_roles: [operator, approver]}
  jobs: {allowed_roles: []}
"""), env={})


@pytest.mark.parametrize(
    ("user", "groups", "expected"),
    [
        ("U0VIEW", [], {"viewer"}),
        ("U0NEW", ["S0READERS"], {"viewer"}),
        ("U0OPS", [], {"operator", "approver"}),
        ("U0APP", ["S0OTHER"], {"approver"}),
        ("U0NOBODY", [], set()),
    ],
)
def test_roles_come_from_user_ids_and_groups(user: str, groups: list[str], expected: set[str]) -> None:
    assert roles_of(user, groups, ROLES) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "roles"),
    [
        ("status", {"viewer"}),
        ("help", {"approver"}),
        ("cordon node01", {"operator"}),
        ("cancel j-1a2b3c4d", {"approver"}),
        ("uncordon node01", {"viewer", "operator"}),
    ],
)
def test_allowed(settings: Settings, text: str, roles: set[str]) -> None:
    check(parse(text), frozenset(roles), settings, user_id="U0X")


@pytest.mark.parametrize(
    ("text", "roles", "message"),
    [
        ("cordon node01", {"viewer"}, "<@U0X> is a viewer; `cordon` needs the operator role"),
        # roles are independent: approving is not operating
        ("uncordon node01", {"approver"}, "<@U0X> is an approver; `uncordon` needs the operator role"),
        ("cordon node01", {"viewer", "approver"},
         "<@U0X> is a viewer and an approver; `cordon` needs the operator role"),
        ("status", set(), "<@U0X> has no kubemaint role; `status` needs the viewer, operator or approver role"),
        ("cancel j-1a2b3c4d", {"viewer"}, "<@U0X> is a viewer; `cancel` needs the operator or approver role"),
        ("jobs", {"operator"}, "<@U0X> is an operator; `jobs` is turned off by policy (no role may run it)"),
    ],
)
def test_not_allowed(settings: Settings, text: str, roles: set[str], message: str) -> None:
    with pytest.raises(NotAllowed) as caught:
        check(parse(text), frozenset(roles), settings, user_id="U0X")
    assert caught.value.message == message
    assert str(caught.value) == message


def test_verbs_without_a_policy_fail_safe(settings: Settings) -> None:
    policy = settings.policy("reboot")
    assert policy.allowed_roles == ("operator",)
    assert policy.approval_required


def test_your_own_operations_join_the_built_in_ones_with_their_policies(write) -> None:
    text = (MINIMAL + "roles: {approvers: [U0A, U0B]}\noperation_modules: [tests.toy_operation]\n"
            "policies: {stamp: {approvals_needed: 2}}\n")
    settings = load_settings(write(text), env={})
    assert "stamp" in settings.operations and "drain" in settings.operations
    stamp = settings.policies["stamp"]
    assert (stamp.allowed_roles, stamp.approval_required, stamp.approvals_needed) == (("operator",), True, 2)
    with pytest.raises(ConfigError) as caught:  # without the module, `stamp` is no command
        load_settings(write(MINIMAL + APPROVER + "policies: {stamp: {approvals_needed: 2}}\n"), env={})
    assert caught.value.problems[0].startswith("policies.stamp: unknown command; policies exist for backup-etcd, "
                                               "backup-resources, backups,")


@pytest.mark.parametrize(("modules", "problem"), [
    ("[nosuch.operations]", "operation_modules[0]: cannot import nosuch.operations: ModuleNotFoundError: "
                            "No module named 'nosuch'"),
    ("[tests.toy_operation, 'os; rm']", "operation_modules[1]: \"os; rm\" is not a Python module name"),
    ("tests.toy_operation", "operation_modules: must be a list"),
])
def test_operation_modules_that_cannot_load_are_named(write, modules: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + f"operation_modules: {modules}\n"), env={})
    assert caught.value.problems == [problem]


def test_supported_minors_default_and_bounds(write) -> None:
    settings = load_settings(write(MINIMAL + APPROVER), env={})
    assert (settings.supported_latest_minor, settings.supported_minor_count) == (33, 3)
    assert load_settings(write(MINIMAL + APPROVER + "supported_minor_count: 4\n"), env={}).supported_minor_count == 4
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + "supported_minor_count: 0\n"), env={})
    assert caught.value.problems == ["supported_minor_count: must be >= 1"]


# --- ssh (bot/nodes) ---------------------------------------------------------------------------------

SSH = "ssh:\n  user: kubemaint\n  known_hosts: /etc/kubemaint/known_hosts\n  key_file: ~/.ssh/kubemaint\n"


def test_ssh_is_optional_and_has_safe_defaults(write) -> None:
    assert load_settings(write(MINIMAL + APPROVER), env={}).ssh is None
    ssh = load_settings(write(MINIMAL + APPROVER + SSH), env={}).ssh
    assert ssh is not None
    assert (ssh.user, ssh.port, ssh.agent, ssh.passphrase_env, ssh.jump_host) == ("kubemaint", 22, False, None, None)
    assert ssh.known_hosts == Path("/etc/kubemaint/known_hosts")
    assert ssh.key_file == Path.home() / ".ssh" / "kubemaint"
    assert (ssh.connect_timeout_seconds, ssh.command_deadline_seconds, ssh.keepalive_seconds) == (10, 300, 15)
    assert ssh.addresses == {}


def test_ssh_in_full_and_from_the_environment(write) -> None:
    path = write(MINIMAL + APPROVER + SSH + """
  port: 2222
  passphrase_env: KUBEMAINT_SSH_PASSPHRASE
  agent: true
  addresses: {node01: 10.0.0.11, node02: "fd00::12", controlplane: cp.internal.example}
  jump_host: {address: bastion.example.com}
  connect_timeout_seconds: 5
  command_deadline_seconds: 900
  keepalive_seconds: 0
""")
    ssh = load_settings(path, env={"KUBEMAINT_SSH__USER": "ops", "KUBEMAINT_SSH__ADDRESSES": '{"node03": "10.0.0.13"}'}
                        ).ssh
    assert ssh is not None and ssh.user == "ops" and ssh.port == 2222 and ssh.agent
    assert ssh.addresses == {"node01": "10.0.0.11", "node02": "fd00::12", "controlplane": "cp.internal.example",
                             "node03": "10.0.0.13"}
    assert ssh.jump_host is not None and ssh.jump_host.address == "bastion.example.com"
    assert (ssh.jump_host.port, ssh.jump_host.user) == (None, None)  # the nodes' port and user
    from handlers.resources import ssh_config

    config = ssh_config(ssh)
    assert (config.jump_host.address, config.jump_host.port, config.jump_host.user) == ("bastion.example.com", 2222,
                                                                                       "ops")
    assert config.keepalive_seconds == 0 and config.passphrase_env == "KUBEMAINT_SSH_PASSPHRASE"


@pytest.mark.parametrize(("ssh", "problem"), [
    ("{known_hosts: /k, key_file: /id}", "ssh.user: required"),
    ("{user: kubemaint, key_file: /id}", "ssh.known_hosts: required"),
    ("{user: kubemaint, known_hosts: /k}",
     "ssh.key_file: required unless ssh.agent is true (a private key file, or the SSH agent's keys)"),
    ("{user: kubemaint, known_hosts: /k, agent: true, passphrase_env: PASS}",
     "ssh.passphrase_env: needs ssh.key_file (the passphrase opens that key)"),
    ("{user: 'Kube Maint', known_hosts: /k, key_file: /id}",
     'ssh.user: "Kube Maint" is not a user name (lowercase letters, digits, "_" and "-")'),
    ("{user: k, known_hosts: /k, key_file: /id, port: 0}", "ssh.port: must be >= 1"),
    ("{user: k, known_hosts: /k, key_file: /id, port: 65536}", "ssh.port: must be <= 65535"),
    ("{user: k, known_hosts: /k, key_file: /id, agent: maybe}", "ssh.agent: must be true or false"),
    ("{user: k, known_hosts: /k, key_file: /id, passphrase_env: 'my secret phrase'}",
     "ssh.passphrase_env: must name an environment variable (letters, digits and _), not hold the passphrase "
     "itself"),
    ("{user: k, known_hosts: /k, key_file: /id, addresses: {Node01: 10.0.0.1}}",
     'ssh.addresses.Node01: "Node01" is not a valid node name: node names are lowercase (did you mean "node01"?)'),
    ("{user: k, known_hosts: /k, key_file: /id, addresses: {node01: '10.0.0.1; reboot'}}",
     'ssh.addresses.node01: "10.0.0.1; reboot" is not an IP address or a host name'),
    ("{user: k, known_hosts: /k, key_file: /id, addresses: [node01]}", "ssh.addresses: must be a mapping of keys"),
    ("{user: k, known_hosts: /k, key_file: /id, jump_host: {port: 22}}", "ssh.jump_host.address: required"),
    ("{user: k, known_hosts: /k, key_file: /id, jump_host: {address: b, port: 70000}}",
     "ssh.jump_host.port: must be <= 65535"),
    ("{user: k, known_hosts: /k, key_file: /id, jump_host: {address: b, proxy: c}}",
     "ssh.jump_host.proxy: unknown key"),
    ("{user: k, known_hosts: /k, key_file: /id, connect_timeout_seconds: 0}",
     "ssh.connect_timeout_seconds: must be > 0"),
    ("{user: k, known_hosts: /k, key_file: /id, command_deadline_seconds: soon}",
     "ssh.command_deadline_seconds: must be a number"),
    ("{user: k, known_hosts: /k, key_file: /id, keepalive_seconds: -1}", "ssh.keepalive_seconds: must be >= 0"),
    ("{user: k, known_hosts: /k, key_file: /id, strict_host_keys: false}", "ssh.strict_host_keys: unknown key"),
])
def test_bad_ssh_keys_are_named(write, ssh: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + f"ssh: {ssh}\n"), env={})
    assert caught.value.problems == [problem]


def test_bad_ssh_keys_from_the_environment_name_the_variable(write) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + SSH), env={"KUBEMAINT_SSH__PORT": "ssh"})
    assert caught.value.problems == ["ssh.port: must be a whole number (from KUBEMAINT_SSH__PORT)"]


def test_the_documented_example_is_a_valid_configuration(write) -> None:
    """docs/configuration.md's example names every key; a renamed key must not leave it behind."""
    import re

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)[1]
    settings = load_settings(write(example), env={})
    assert settings.ssh is not None and settings.ssh.jump_host is not None
    assert set(type(settings.ssh).model_fields) <= set(re.findall(r"^  (\w+):", example.split("\nssh:", 1)[1], re.M))


def test_maintenance_windows_are_read_and_checked(write) -> None:
    settings = load_settings(write(MINIMAL + APPROVER + "maintenance:\n  windows:\n"
                                   "    - {days: mon-fri, start: '22:00', end: '04:00', time_zone: Europe/Berlin}\n"),
                             env={})
    [window] = settings.maintenance.parsed_windows()
    assert window.describe() == "mon,tue,wed,thu,fri 22:00-04:00 Europe/Berlin"
    assert load_settings(write(MINIMAL + APPROVER), env={}).maintenance.parsed_windows() == []


@pytest.mark.parametrize(("window", "problem"), [
    ("{days: funday, start: '22:00', end: '04:00', time_zone: UTC}",
     "maintenance.windows[0]: days: 'funday' is not a day; use mon, tue, wed, thu, fri, sat, sun, ranges like "
     "mon-fri, or daily"),
    ("{days: sat, start: '22:00', end: '04:00', time_zone: Mars/Base}",
     "maintenance.windows[0]: time_zone: 'Mars/Base' is not an IANA time zone, e.g. UTC or Europe/Berlin"),
    ("saturday night", "maintenance.windows[0]: must be a mapping of keys"),
])
def test_bad_maintenance_windows_are_named(write, window: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + f"maintenance: {{windows: [{window}]}}\n"), env={})
    assert caught.value.problems == [problem]


def test_blockers_and_gates_are_read_and_checked(write) -> None:
    settings = load_settings(write(MINIMAL + APPROVER + """maintenance:
  blockers:
    pod_selector: "app == critical-batch"
  gates:
    http:
      - {url: "https://status.example.com/healthz", timeout_seconds: 5}
      - {url: "http://10.0.0.9:8080/ready"}
    prometheus:
      url: "http://prometheus.monitoring:9090/"
      timeout_seconds: 10
      queries:
        - 'ALERTS{alertstate="firing", severity="critical"}'
"""), env={})
    maintenance = settings.maintenance
    assert maintenance.blockers.pod_selector == "app=critical-batch"  # normalised, as chat shows selectors
    assert [(gate.url, gate.timeout_seconds) for gate in maintenance.gates.http] == [
        ("https://status.example.com/healthz", 5), ("http://10.0.0.9:8080/ready", 5)]
    assert maintenance.gates.prometheus is not None
    assert maintenance.gates.prometheus.url == "http://prometheus.monitoring:9090"
    assert maintenance.gates.prometheus.timeout_seconds == 10
    assert maintenance.gates.prometheus.queries == ('ALERTS{alertstate="firing", severity="critical"}',)
    default = load_settings(write(MINIMAL + APPROVER), env={}).maintenance
    assert default.blockers.pod_selector is None and default.gates.http == () and default.gates.prometheus is None


@pytest.mark.parametrize(("section", "problems"), [
    ("blockers: {pod_selector: 'app in (a'}",
     ['maintenance.blockers.pod_selector: not a valid pod selector: "app in (a": unbalanced parentheses; use label '
      'keys and values of letters, digits, ".", "_", "-" (and "/" in keys) with key=value, key!=value, "key in '
      '(a,b)", "key notin (a,b)", key or !key, joined by commas']),
    ("blockers: {pod_selector: ''}", ["maintenance.blockers.pod_selector: the pod selector is empty"]),
    ("gates: {http: [{url: 'status.example.com/healthz'}]}",
     ["maintenance.gates.http[0].url: must be an http:// or https:// URL"]),
    ("gates: {http: [{url: 'https://status.example.com/healthz', timeout_seconds: 0}]}",
     ["maintenance.gates.http[0].timeout_seconds: must be >= 1"]),
    ("gates: {prometheus: {url: 'http://prometheus:9090', timeout_seconds: 301, queries: [up]}}",
     ["maintenance.gates.prometheus.timeout_seconds: must be <= 300"]),
    ("gates: {prometheus: {url: 'ftp://prometheus:9090', queries: [up]}}",
     ["maintenance.gates.prometheus.url: must be an http:// or https:// URL of the Prometheus server (a path prefix "
      "is allowed, no query string)"]),
    ("gates: {prometheus: {url: 'http://prometheus:9090', queries: ['up', ' ']}}",
     ['maintenance.gates.prometheus.queries[1]: an empty query: write PromQL that returns no series when all is '
      'well, e.g. ALERTS{alertstate="firing"}']),
    ("gates: {prometheus: {queries: [up]}}",
     ["maintenance.gates.prometheus.url: required: the Prometheus server that answers the queries, e.g. "
      "http://prometheus.monitoring:9090"]),
    ("gates: {prometheus: {url: 'http://prometheus:9090'}}",
     ["maintenance.gates.prometheus.queries: required: at least one PromQL query, each must return no series (an "
      "alert firing is a series)"]),
    ("gates: {http: [{url: 'https://status.example.com/healthz', timeout: 5}]}",
     ["maintenance.gates.http[0].timeout: unknown key"]),
])
def test_bad_blockers_and_gates_are_named(write, section: str, problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + f"maintenance: {{{section}}}\n"), env={})
    assert caught.value.problems == problems


def test_the_blocker_selector_can_come_from_the_environment(write) -> None:
    env = {"KUBEMAINT_MAINTENANCE__BLOCKERS__POD_SELECTOR": "app=critical-batch,tier!=test"}
    assert load_settings(write(MINIMAL + APPROVER), env=env).maintenance.blockers.pod_selector == (
        "app=critical-batch,tier!=test")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER), env={"KUBEMAINT_MAINTENANCE__BLOCKERS__POD_SELECTOR": "app=$(id)"})
    assert caught.value.problems == [
        'maintenance.blockers.pod_selector: "app=$(id)" is not a valid pod selector: use label keys and values of '
        'letters, digits, ".", "_", "-" (and "/" in keys) with key=value, key!=value, "key in (a,b)", "key notin '
        '(a,b)", key or !key, joined by commas (from KUBEMAINT_MAINTENANCE__BLOCKERS__POD_SELECTOR)']


def test_the_documented_blockers_and_gates_are_a_valid_configuration(write) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    example = re.search(r"## Blockers and health gates\n+```yaml\n(.*?)```", doc, re.S)[1]
    maintenance = load_settings(write(MINIMAL + APPROVER + example), env={}).maintenance
    assert maintenance.blockers.pod_selector == "app=critical-batch"
    assert [gate.url for gate in maintenance.gates.http] == ["https://status.example.com/healthz"]
    assert maintenance.gates.prometheus is not None and len(maintenance.gates.prometheus.queries) == 1


def test_metrics_are_off_unless_a_port_is_given(write) -> None:
    metrics = load_settings(write(MINIMAL + APPROVER), env={}).metrics
    assert (metrics.port, metrics.worker_port, metrics.address) == (None, None, "0.0.0.0")
    given = "metrics: {port: 9102, worker_port: 9103, address: 127.0.0.1}\n"
    metrics = load_settings(write(MINIMAL + APPROVER + given), env={"KUBEMAINT_METRICS__PORT": "9200"}).metrics
    assert (metrics.port, metrics.worker_port, metrics.address) == (9200, 9103, "127.0.0.1")


@pytest.mark.parametrize(("metrics", "problem"), [
    ("{port: 0}", "metrics.port: must be a port 1-65535 (leave the key out to serve no metrics)"),
    ("{worker_port: 0}", "metrics.worker_port: must be a port 1-65535 (leave the key out to serve no metrics)"),
    ("{port: 65536}", "metrics.port: must be <= 65535"),
    ("{port: http}", "metrics.port: must be a whole number"),
    ("{address: 'prometheus.local'}", 'metrics.address: "prometheus.local" is not an IP address to listen on '
                                      "(0.0.0.0: every interface, 127.0.0.1: this host only)"),
    ("{path: /metrics}", "metrics.path: unknown key"),
    ("9102", "metrics: must be a mapping of keys"),
])
def test_bad_metrics_keys_are_named(write, metrics: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(MINIMAL + APPROVER + f"metrics: {metrics}\n"), env={})
    assert caught.value.problems == [problem]
