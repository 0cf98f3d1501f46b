"""`backups [--page N]`: what an operator reads about the catalog, and the `backups` section of the config
that the store, the catalog and the schedule are built from."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from bot.backups import Backups, Catalog, Entry, LocalStore, Page, S3Store
from bot.chat.config import ConfigError, load_settings
from bot.chat.grammar import GrammarError, parse
from bot.contract import Asking
from bot.contract.registry import operations
from handlers.backups import BackupsOptions, answer_backups, backups_text
from handlers.resources import BACKUPS, backup_cluster

pytest_plugins = ["tests.redis_fixtures"]
T0 = 1_800_000_000.0
MINIMAL = "slack:\n  bot_token: xoxb-file\n  app_token: xapp-file\nroles: {approvers: [U0APP]}\n"


def entry(number: int, *, age_seconds: float, kind: str = "etcd", cluster: str = "prod", **fields) -> Entry:
    values = dict(id=f"b-1000{number:04x}", kind=kind, cluster=cluster, created_at=T0 - age_seconds,
                  requester="U0ALICE", key=f"{cluster}/{kind}/b-1000{number:04x}.db", location="file:///b",
                  size=24_500_000, sha256="0" * 64, node="cp01", etcd_version="3.5.12", revision=120_000 + number,
                  keys=987)
    values.update(fields)
    return Entry(**values)


def test_the_list_shows_each_backup_with_its_age_revision_keys_and_size():
    page = Page((entry(3, age_seconds=40, requester="scheduler"), entry(2, age_seconds=5 * 3600 + 60),
                 entry(1, age_seconds=3 * 86400, kind="resources", node="", revision=None, keys=None, size=700)),
                1, 10, 3)
    assert backups_text(page, T0, "prod") == "\n".join([
        "*Backups* of prod, newest first (page 1 of 1, 3 in all)",
        "```",
        "ID          KIND       AGE     REVISION  KEYS  SIZE      NODE  REQUESTER",
        "b-10000003  etcd       40s     120003    987   23.4 MiB  cp01  scheduler",
        "b-10000002  etcd       5h 01m  120002    987   23.4 MiB  cp01  U0ALICE",
        "b-10000001  resources  3d      -         -     700 B     -     U0ALICE",
        "```",
    ])


def test_an_empty_catalog_says_how_to_make_a_backup():
    text = backups_text(Page((), 1, 10, 0), T0, "prod")
    assert text.startswith("No backups yet.") and "`backup etcd`" in text and "backups.schedule" in text


def test_pages_point_to_the_next_one_and_past_the_end_to_the_last():
    first = backups_text(Page(tuple(entry(n, age_seconds=n) for n in range(10)), 1, 10, 23), T0, "prod")
    assert "(page 1 of 3, 23 in all)" in first and first.endswith("Older: `backups --page 2`")
    assert backups_text(Page((), 7, 10, 23), T0, "prod") == \
        "There is no page 7: 23 backups fill 3 pages (`backups --page 3`)."


def test_backups_of_other_clusters_are_marked_with_their_cluster():
    text = backups_text(Page((entry(2, age_seconds=60), entry(1, age_seconds=120, cluster="staging")), 1, 10, 2),
                        T0, "prod")
    assert text.startswith("*Backups*, newest first")
    assert "CLUSTER" in text and text.splitlines()[4].endswith("staging")


def test_the_words_are_backups_and_an_optional_page():
    registry = operations()
    assert parse("backups", registry).options == BackupsOptions(page=1)
    assert parse("backups --page 3", registry).options == BackupsOptions(page=3)
    with pytest.raises(GrammarError, match="not a count"):
        parse("backups --page 0", registry)
    assert registry["backups"].policy.allowed_roles == ("viewer", "operator", "approver")


def test_the_answer_reads_the_catalog_newest_first(r: Redis, tmp_path: Path):
    catalog = Catalog(r)
    for number in range(12):
        catalog.add(entry(number, age_seconds=(12 - number) * 3600))
    backups = Backups(LocalStore(tmp_path), catalog, "prod", keep_last=14)
    asking = Asking("U0VIC", {"backups": backups}, None, operations(), T0)
    first = answer_backups(asking, BackupsOptions())
    assert "(page 1 of 2, 12 in all)" in first
    rows = [line for line in first.splitlines() if line.startswith("b-")]
    assert [row.split()[0] for row in rows] == [f"b-1000{n:04x}" for n in range(11, 1, -1)]
    second = answer_backups(asking, BackupsOptions(page=2))
    assert [line.split()[0] for line in second.splitlines() if line.startswith("b-")] == ["b-10000001", "b-10000000"]


# -- the `backups` section of the configuration --------------------------------------------------------


@pytest.fixture
def write(tmp_path: Path):
    def write_config(text: str) -> Path:
        path = tmp_path / "kubemaint.yaml"
        path.write_text(MINIMAL + text)
        return path

    return write_config


def test_backups_default_to_a_local_directory_and_no_schedule(write):
    settings = load_settings(write(""), env={})
    assert settings.backups.store.type == "local"
    assert settings.backups.store.directory == Path("/var/lib/kubemaint/backups")
    assert (settings.backups.keep_last, settings.backups.schedule, settings.backups.cluster) == (14, None, None)


def test_an_s3_store_with_a_schedule(write, tmp_path: Path):
    settings = load_settings(write(
        "backups:\n"
        "  store: {type: s3, bucket: kube-backups, prefix: /team/prod/, endpoint_url: 'http://127.0.0.1:9000/',"
        " region: eu-west-1}\n"
        "  keep_last: 30\n  schedule: '0  */6 * * *'\n  schedule_channel: C0OPS\n  cluster: prod\n"), env={})
    store = settings.backups.store
    assert (store.bucket, store.prefix, store.endpoint_url, store.region) == \
           ("kube-backups", "team/prod", "http://127.0.0.1:9000", "eu-west-1")
    assert (settings.backups.schedule, settings.backups.schedule_channel) == ("0 */6 * * *", "C0OPS")
    built = BACKUPS.build(settings)
    assert isinstance(built.store, S3Store) and built.store.url == "s3://kube-backups/team/prod"
    assert (built.cluster, built.keep_last) == ("prod", 30)


def test_the_environment_can_switch_the_store_to_s3(write):
    settings = load_settings(write(""), env={"KUBEMAINT_BACKUPS__STORE__TYPE": "s3",
                                             "KUBEMAINT_BACKUPS__STORE__BUCKET": "kube-backups"})
    assert (settings.backups.store.type, settings.backups.store.bucket) == ("s3", "kube-backups")
    assert settings.backups.store.directory is None


@pytest.mark.parametrize(("section", "problems"), [
    ("store: {type: s3}", ["backups.store.bucket: required when backups.store.type is s3"]),
    ("store: {bucket: kube-backups}", ["backups.store.bucket: only for backups.store.type s3"]),
    ("store: {type: s3, bucket: kb1, directory: /srv}", ["backups.store.directory: only for backups.store.type local"]),
    ("store: {type: gcs}", ["backups.store.type: must be one of 'local' or 's3'"]),
    ("store: {type: s3, bucket: Kube_Backups}",
     ['backups.store.bucket: "Kube_Backups" is not an S3 bucket name (3-63 lowercase letters, digits, "." and "-")']),
    ("store: {type: s3, bucket: kb1, endpoint_url: 'minio:9000'}",
     ["backups.store.endpoint_url: must be an http:// or https:// URL of the server, without a path (the bucket is "
      "backups.store.bucket)"]),
    ("store: {type: s3, bucket: kb1, prefix: '../up'}",
     ['backups.store.prefix: must be folder names of letters, digits, ".", "_" and "-" separated by "/", like '
      "kubemaint/prod"]),
    ("store: {type: local, colour: red}", ["backups.store.colour: unknown key"]),
    ("keep_last: 0", ["backups.keep_last: must be >= 1"]),
    ("schedule: 'every 6 hours'",
     ['backups.schedule: 3 fields: use five fields "minute hour day-of-month month day-of-week" (e.g. "0 */6 * * *" '
      "for every 6 hours) or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"]),
    ("{schedule: '0 0 31 2 *', schedule_channel: C0OPS}",
     ["backups.schedule: this expression never fires (no date matches it)"]),
    ("schedule: '@daily'",
     ["backups.schedule_channel: required when backups.schedule is set (the channel a failed scheduled backup is "
      "posted to)"]),
    ("{schedule: '@daily', schedule_channel: '#ops'}",
     ["backups.schedule_channel: \"#ops\" is not a Slack channel id (C… or G…; the channel's details show it)"]),
    ("cluster: 'prod cluster'",
     ['backups.cluster: must be up to 63 letters, digits, ".", "_" and "-", starting with a letter or digit (it '
      "names the backups' folder in the store)"]),
])
def test_bad_backup_settings_are_named(write, section: str, problems: list[str]):
    text = f"backups: {section}\n" if section.startswith("{") else f"backups:\n  {section}\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(text), env={})
    assert caught.value.problems == problems


def test_the_cluster_name_defaults_to_the_kubeconfig_context(write, tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("current-context: kubernetes-admin@kubernetes\ncontexts: []\n")
    assert backup_cluster(load_settings(write(f"kubeconfig: {kubeconfig}\n"), env={})) == \
           "kubernetes-admin-kubernetes"
    assert backup_cluster(load_settings(write(f"kubeconfig: {kubeconfig}\ncontext: prod-eu\n"), env={})) == "prod-eu"
    assert backup_cluster(load_settings(write("backups: {cluster: prod}\n"), env={})) == "prod"
    assert backup_cluster(load_settings(write(""), env={})) == "in-cluster"
