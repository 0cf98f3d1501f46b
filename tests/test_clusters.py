"""Several clusters in one configuration: what each inherits, what is refused, and which cluster a command
goes to (the chat story is tests/test_clusters_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.chat.clusters import Clusters, UnknownCluster, qualified_command
from bot.chat.config import ConfigError, Settings, load_settings
from bot.chat.grammar import GrammarError, parse
from bot.engine.locks import describe_target, qualify

TOP = """\
slack: {bot_token: xoxb-1, app_token: xapp-1}
roles: {operators: [U0ALICE, U0DAN], approvers: [U0BOB]}
ssh: {user: kubemaint, known_hosts: /etc/kubemaint/known_hosts, key_file: /etc/kubemaint/id_ed25519}
backups: {store: {type: local, directory: /srv/backups}, schedule: "0 */6 * * *"}
policies: {cordon: {approval_required: true}}
"""
ONE = TOP.replace(', schedule: "0 */6 * * *"', "")  # without clusters, a schedule needs schedule_channel
TWO = TOP + """\
clusters:
  staging:
    kubeconfig: /etc/kubemaint/staging.yaml
    channels: [C0STAGING]
  prod:
    kubeconfig: /etc/kubemaint/prod.yaml
    context: prod-admin
    channels: [C0PROD]
    roles: {operators: [U0ALICE]}
    ssh: {port: 2222, addresses: {node01: 10.0.0.11}}
    policies: {uncordon: {approval_required: true}}
"""


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "kubemaint.yaml"
    path.write_text(text)
    return load_settings(path, env={})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


def test_each_cluster_inherits_the_top_level_sections_key_by_key(tmp_path):
    settings = load(tmp_path, TWO)
    prod, staging = settings.for_cluster("prod"), settings.for_cluster("staging")
    assert (prod.kubeconfig, prod.context) == (Path("/etc/kubemaint/prod.yaml"), "prod-admin")
    assert (staging.kubeconfig, staging.context) == (Path("/etc/kubemaint/staging.yaml"), None)
    # ssh: prod's port and addresses over the shared user and key
    assert (prod.ssh.user, prod.ssh.port, dict(prod.ssh.addresses)) == ("kubemaint", 2222, {"node01": "10.0.0.11"})
    assert (staging.ssh.port, prod.ssh.key_file) == (22, Path("/etc/kubemaint/id_ed25519"))
    # roles: prod's operators replace the list; the approvers are inherited
    assert (prod.roles.operators, prod.roles.approvers) == (("U0ALICE",), ("U0BOB",))
    assert staging.roles.operators == ("U0ALICE", "U0DAN")
    # policies: per command, over the top-level ones
    assert prod.policy("cordon").approval_required and prod.policy("uncordon").approval_required
    assert staging.policy("cordon").approval_required and not staging.policy("uncordon").approval_required
    # backups: one store, each cluster's files under its own name; each schedule reports in its own channel
    assert (prod.backups.cluster, staging.backups.cluster) == ("prod", "staging")
    assert (prod.backups.schedule_channel, staging.backups.schedule_channel) == ("C0PROD", "C0STAGING")
    assert settings.backups.schedule is None  # the top-level section is only what the clusters inherit
    assert (prod.cluster_name, staging.cluster_name, settings.cluster_name) == ("prod", "staging", "")


def test_a_cluster_can_say_it_has_no_ssh(tmp_path):
    settings = load(tmp_path, TWO.replace("    channels: [C0STAGING]\n", "    channels: [C0STAGING]\n    ssh: null\n"))
    assert settings.for_cluster("staging").ssh is None and settings.for_cluster("prod").ssh is not None


@pytest.mark.parametrize("change, problem", [
    (("    kubeconfig: /etc/kubemaint/staging.yaml\n", ""),
     "clusters.staging: kubeconfig: required, or in_cluster: true (the cluster the bot runs in)"),
    (("    kubeconfig: /etc/kubemaint/staging.yaml\n", "    kubeconfig: /k\n    in_cluster: true\n"),
     "clusters.staging: kubeconfig and in_cluster: give one"),
    (("    kubeconfig: /etc/kubemaint/staging.yaml\n", "    in_cluster: true\n    context: x\n"),
     "clusters.staging: context: needs kubeconfig"),
    (("channels: [C0PROD]", "channels: [C0STAGING]"),
     "clusters.prod.channels: C0STAGING is already the channel of cluster staging"),
    (("channels: [C0PROD]", "channels: [prod]"), 'clusters.prod.channels[0]: "prod" is not a Slack channel id'),
    (("clusters:\n", "default_cluster: qa\nclusters:\n"), 'default_cluster: "qa" is not one of the clusters '
                                                          "(staging, prod)"),
    (("clusters:\n", "kubeconfig: /k\nclusters:\n"), "kubeconfig: with clusters configured, each cluster names its "
                                                     "own (clusters.NAME.kubeconfig)"),
    (("  prod:\n", "  prod/eu:\n"), "clusters.prod/eu: must be up to 63 letters"),
    (("roles: {operators: [U0ALICE]}", "roles: {operators: [U0ALICE], approvers: []}"),
     "clusters.prod.policies.cordon.approval_required: no approvers are configured (clusters.prod.roles.approvers)"),
    (("ssh: {port: 2222,", "ssh: {port: 0,"), "clusters.prod.ssh.port: must be >= 1"),
    (("    context: prod-admin\n", "    context: prod-admin\n    colour: red\n"), "clusters.prod.colour: unknown key"),
])
def test_bad_cluster_settings_are_named(tmp_path, change, problem):
    found = problems(tmp_path, TWO.replace(*change))
    assert any(line.startswith(problem) for line in found), found


def test_default_cluster_needs_clusters(tmp_path):
    assert problems(tmp_path, ONE + "default_cluster: prod\n") == [
        "default_cluster: no clusters are configured (clusters:)"]


def test_a_command_goes_to_the_named_cluster_else_its_channels_else_the_default(tmp_path):
    clusters = Clusters(load(tmp_path, TWO))
    assert clusters.resolve(None, "C0PROD") == "prod"
    assert clusters.resolve(None, "C0STAGING") == "staging"
    assert clusters.resolve("prod", "C0STAGING") == "prod"  # --cluster beats the channel
    with pytest.raises(UnknownCluster, match=r'^unknown cluster "qa": the clusters are staging, prod$'):
        clusters.resolve("qa", "C0PROD")
    with pytest.raises(UnknownCluster, match=r"^this channel has no cluster of its own: add --cluster NAME"):
        clusters.resolve(None, "C0OPS")
    assert clusters.resolve(None, "C0OPS", needs=("redis",)) == ""  # `jobs` needs no cluster
    with_default = Clusters(load(tmp_path, TWO.replace("clusters:\n", "default_cluster: staging\nclusters:\n")))
    assert with_default.resolve(None, "C0OPS") == "staging"


def test_one_cluster_without_a_name_takes_no_cluster_flag(tmp_path):
    clusters = Clusters(load(tmp_path, ONE + "kubeconfig: /k\n"))
    assert clusters.names == [""] and clusters.resolve(None, "C0OPS") == ""
    with pytest.raises(UnknownCluster, match="this kubemaint manages one cluster, configured without a name"):
        clusters.resolve("prod", "C0OPS")


def test_each_cluster_gets_its_own_resources_built_once(tmp_path):
    built = []
    clusters = Clusters(load(tmp_path, TWO), make_resources=lambda own: built.append(own.cluster_name) or {})
    assert clusters.resources_for("prod") is clusters.resources_for("prod")
    clusters.resources_for("staging")
    assert built == ["prod", "staging"]
    with pytest.raises(UnknownCluster, match='cluster "qa" is not configured'):
        clusters.resources_for("qa")  # a job queued before its cluster left the configuration


def test_cluster_flag_is_read_anywhere_after_the_verb_and_kept_in_the_text():
    command = parse("drain --cluster prod node01 --force")
    assert (command.cluster, command.text) == ("prod", "drain node01 --force --cluster prod")
    assert parse(command.text) == command
    assert parse("status --cluster=staging").cluster == "staging"
    for text, reason in [("drain node01 --cluster", "`--cluster` needs a value"),
                         ("drain node01 --cluster a --cluster b", "`--cluster` is given twice"),
                         ("drain node01 --cluster 'a;b'", "quotes are not needed"),
                         ("drain node01 --cluster a;b", '--cluster: "a;b" is not a cluster name')]:
        with pytest.raises(GrammarError, match=reason):
            parse(text)


def test_locks_and_next_commands_are_the_clusters_own():
    assert qualify("node:node01", "prod") == "prod/node:node01" and qualify("cluster", "") == "cluster"
    assert describe_target("prod/node:node01") == "node01 in prod"
    assert describe_target("prod/cluster") == "cluster prod" and describe_target("cluster") == "the cluster"
    assert qualified_command("uncordon node01", "prod") == "uncordon node01 --cluster prod"
    assert qualified_command("uncordon node01", "") == "uncordon node01"
    assert qualified_command(None, "prod") is None


def test_the_readmes_several_clusters_example_loads_as_it_says(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Several clusters"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml\n") + 8)]
    settings = load(tmp_path, example)
    staging, prod = settings.for_cluster("staging"), settings.for_cluster("prod")
    assert Clusters(settings).resolve(None, "C0OTHER") == "staging"  # default_cluster
    assert (prod.kubeconfig, staging.context) == (None, "staging-admin")  # prod: in-cluster
    assert "U0DAN" in staging.roles.operators and "U0DAN" not in prod.roles.operators
    assert prod.policy("cordon").approval_required and not staging.policy("cordon").approval_required
    assert prod.maintenance.windows and not staging.maintenance.windows
    assert (prod.backups.store.bucket, prod.backups.cluster, prod.backups.schedule_channel) == \
        ("acme-kubemaint", "prod", "C0PROD")


def test_a_snapshot_of_another_cluster_is_never_restored():
    from bot.backups import Entry
    from handlers.restore_etcd import RestoreFacts, RestoreOptions, plan_restore
    from tests.scenario_snapshots import snapshot_of

    entry = Entry(id="b-0f601644", kind="etcd", cluster="staging", created_at=0, requester="U0ALICE",
                  key="staging/etcd/b-0f601644.db", location="file:///b", size=1, sha256="0" * 64,
                  node="controlplane", revision=10, keys=5, objects=5)
    nodes = snapshot_of("seeds-os-upgrade")
    options = RestoreOptions(backup_id="b-0f601644")
    refused = plan_restore(RestoreFacts(entry, None, nodes, 20, 100.0, own_backups="prod"), options)
    assert refused.refusal == "b-0f601644 is a snapshot of cluster staging, not of prod: nothing was changed"
    assert not refused.steps
    assert plan_restore(RestoreFacts(entry, None, nodes, 20, 100.0, own_backups="staging"), options).steps
    assert plan_restore(RestoreFacts(entry, None, nodes, 20, 100.0), options).steps  # one unnamed cluster: as before


def test_readiness_checks_each_clusters_api_by_name(tmp_path):
    from bot.chat.startup import cluster_checks

    assert set(cluster_checks(Clusters(load(tmp_path, TWO)))) == {"cluster staging", "cluster prod"}
    assert set(cluster_checks(Clusters(load(tmp_path, ONE + "kubeconfig: /k\n")))) == {"cluster"}
