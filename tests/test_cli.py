"""The `kubemaint` command line: bad configuration stops start-up naming the key; audit prints
the trail."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from redis import Redis

from bot.engine.audit import audit

pytestmark = pytest.mark.runs_long(43)

pytest_plugins = ["tests.redis_fixtures"]


def kubemaint(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_invalid_config_stops_start_up_naming_the_key(tmp_path):
    config = tmp_path / "kubemaint.yaml"
    config.write_text("slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n"
                      "policies:\n  cordon:\n    approvals_needed: 0\n")
    for command in ("serve", "worker", "check-config"):
        for args in (("--config", str(config), command), (command, "--config", str(config))):
            result = kubemaint(*args)
            assert result.returncode != 0
            assert "policies.cordon.approvals_needed" in result.stderr
            assert "Traceback" not in result.stderr
            assert result.stderr.count("invalid configuration") == 1, result.stderr


def test_check_config_accepts_a_good_file(tmp_path):
    config = tmp_path / "kubemaint.yaml"
    config.write_text("slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\nroles:\n  operators: [U0ALICE]\n"
                      "  approvers: [U0BOB]\n")
    for args in (("--config", str(config), "check-config"), ("check-config", "--config", str(config))):
        result = kubemaint(*args)
        assert result.returncode == 0, result.stderr
        assert "configuration OK" in result.stdout


def test_audit_prints_recent_entries(tmp_path, redis_server):
    redis = Redis.from_url(redis_server.url)
    audit(redis, "approval.approve", request="a-12345678", user="U0BOB", command="cordon node01")
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\nredis_url: {redis_server.url}\n"
                      "roles: {approvers: [U0BOB]}\n")
    result = kubemaint("--config", str(config), "audit", "--since", "1h")
    assert result.returncode == 0, result.stderr
    assert "approval.approve" in result.stdout and "cordon node01" in result.stdout
    bad = kubemaint("--config", str(config), "audit", "--since", "yesterday")
    assert bad.returncode != 0 and "yesterday" in bad.stderr


def test_audit_needs_only_redis(tmp_path, redis_server):
    """No Slack tokens, no cluster: the audit trail is read from Redis alone."""
    audit(Redis.from_url(redis_server.url), "request", user="U0ALICE", command="drain node01")
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"redis_url: {redis_server.url}\n")
    result = kubemaint("audit", "--config", str(config), "--since", "1h")
    assert result.returncode == 0, result.stderr
    assert "drain node01" in result.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEMAINT_")}
    from_env = kubemaint("audit", env={**env, "KUBEMAINT_REDIS_URL": redis_server.url})
    assert from_env.returncode == 0 and "drain node01" in from_env.stdout
    flag = kubemaint("audit", "--redis-url", redis_server.url, env=env)
    assert flag.returncode == 0 and "drain node01" in flag.stdout
    config.write_text("redis_url: localhost:6379\n")
    bad = kubemaint("audit", "--config", str(config))
    assert bad.returncode != 0 and "redis_url: must start with redis://" in bad.stderr


def test_worker_lends_one_set_of_clients_to_every_job(tmp_path):
    """Jobs run inside the worker, so each job reuses the worker's kube and Redis clients instead of
    re-reading the kubeconfig and opening a new TLS connection; ending a job must not close them."""
    from bot.chat.config import load_settings
    from bot.chat.startup import process_clusters

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
                          "clusters: [{name: lab, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                          "users: [{name: lab, user: {token: t}}]\n"
                          "contexts: [{name: lab, context: {cluster: lab, user: lab}}]\n")
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\nroles:\n  operators: [U0ALICE]\n"
                      f"  approvers: [U0BOB]\nkubeconfig: {kubeconfig}\n")
    factory = process_clusters(load_settings(config)).resources_for  # what `kubemaint worker` hands the runner
    first = factory("")
    closed = []
    first["kube"].close = lambda: closed.append("kube")
    first.close()  # what the runner does when a job run ends
    assert closed == []
    second = factory("")
    assert second["kube"] is first["kube"] and second["redis"] is first["redis"]


def test_a_bad_worker_metrics_port_is_refused_before_anything_starts(tmp_path):
    for port in ("abc", "-1", "65536", "9102x"):
        result = kubemaint("worker", "--metrics-port", port)
        assert result.returncode == 2
        assert f"--metrics-port: must be a port number 1-65535, or 0 to serve no metrics (got '{port}')" in \
            result.stderr
        assert "Traceback" not in result.stderr


def test_a_worker_whose_metrics_port_is_taken_says_so_and_stops(tmp_path, redis_server):
    import socket

    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\nredis_url: {redis_server.url}\n"
                      "roles: {approvers: [U0BOB]}\n")
    with socket.socket() as taken:  # another worker on this host, say
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text() + "metrics: {address: 127.0.0.1}\n")
        result = kubemaint("worker", "--config", str(config), "--metrics-port", str(port), "--burst")
    assert result.returncode == 1
    assert f"kubemaint worker: cannot serve metrics on 127.0.0.1:{port}: Address already in use (another process " \
           "uses it: a second worker on this host needs its own --metrics-port)" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_lists_the_clusters_and_checks_each_ones_ssh(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"""slack: {{bot_token: xoxb-1, app_token: xapp-1}}
roles: {{operators: [U0ALICE], approvers: [U0BOB]}}
ssh: {{user: kubemaint, known_hosts: {known}, key_file: {key}}}
default_cluster: staging
clusters:
  staging: {{kubeconfig: /etc/kubemaint/staging.yaml, context: staging-admin, channels: [C0STAGING]}}
  prod: {{in_cluster: true, channels: [C0PROD], ssh: {{known_hosts: {tmp_path / 'missing'}}}}}
""")
    result = kubemaint("check-config", "--config", str(config))
    assert "cluster staging (default): /etc/kubemaint/staging.yaml context staging-admin; C0STAGING" in result.stdout
    assert "cluster prod: in-cluster; C0PROD" in result.stdout
    staging, prod = result.stdout.split("-- cluster staging\n")[1].split("-- cluster prod\n")
    assert staging.startswith("ssh: ") and "missing" not in staging
    assert prod.startswith("ssh: ") and "missing" in prod  # prod's own known_hosts does not exist
    assert result.returncode == 1
