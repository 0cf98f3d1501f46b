"""A planted secret goes everywhere a secret can go on the SSH path (the key's passphrase, a Secret
argument, a private key, a password and a token the node prints on stdout and stderr, a command
that fails, one that hits its deadline, a wrong passphrase) and must come out nowhere: not in the log
lines, not in the audit trail (the real one: Redis, through the "ssh" resource as workers build it),
not in any exception or its traceback."""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from pathlib import Path

import pytest
from redis import Redis

from bot.chat.config import load_settings
from bot.contract.reports import node_commands_text
from bot.engine.actions import CheckpointData, StepContext
from bot.engine.audit import read_audit
from bot.engine.node_output import keep_node_output, node_outputs
from bot.nodes import CommandDeadline, CommandFailed, NodeError, Secret, SshSetupError
from handlers.resources import SSH
from tests.sshd_support import make_key

pytest_plugins = ["tests.ssh_fixtures", "tests.redis_fixtures"]

PLANTED = f"PLANTED{secrets.token_hex(12)}"


def node_secrets(directory: Path) -> Path:
    """What a node's files hold: a private key, a password, a token."""
    path = directory / "node-secrets"
    path.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"b3BlbnNzaC1rZXktdjEAAAAA{PLANTED}AAAAAAAABAAAAMwAAAAtzc2gtZW\n"
        f"QyNTUxOQAAACD{PLANTED}XhkZ8VBx9CqXk2nQWmGNGl0Gd5ZAAAAJi\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
        f"password: {PLANTED}\n"
        f"--token {PLANTED}\n"
        "the last line says nothing secret\n")
    path.chmod(0o600)
    return path


def test_a_planted_secret_appears_nowhere(sshd, known_hosts, redis_server, tmp_path, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG)  # paramiko's own debug lines included
    key = make_key(tmp_path, "planted_key", passphrase=PLANTED)
    sshd.authorize("root", key.public_text)
    monkeypatch.setenv("KM_TEST_PLANTED_PASSPHRASE", PLANTED)
    monkeypatch.setenv("KM_TEST_WRONG_PASSPHRASE", f"{PLANTED}-but-wrong")
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"""
slack: {{bot_token: xoxb-1, app_token: xapp-1}}
roles: {{approvers: [U0BOB]}}
redis_url: {redis_server.url}
ssh:
  user: root
  port: {sshd.port}
  known_hosts: {known_hosts}
  key_file: {key.private}
  passphrase_env: KM_TEST_PLANTED_PASSPHRASE
""")
    settings = load_settings(config, env={})
    shell = SSH.build(settings)  # as a worker builds its "ssh" resource: audit to Redis
    redis = Redis.from_url(redis_server.url)
    job = StepContext(job_id="j-planted", requester="U0ALICE", step="run", resources={}, log=None,
                      checkpoint_data=CheckpointData({}, lambda values: None), cancelled=lambda: False,
                      progress=lambda detail: None,
                      node_output=lambda entry: keep_node_output(redis, "j-planted", entry))
    files = node_secrets(tmp_path)
    shown: list[str] = []  # everything people could read
    failures: list[NodeError] = []

    printed = shell.run("node01", ["cat", str(files)], address=sshd.address, job=job)
    assert PLANTED in printed.stdout  # the caller gets the raw output it asked for...
    shown += [printed.stdout_tail, printed.stderr_tail, repr(printed), printed.command]  # ...and nothing else shows it
    assert printed.stdout_tail.endswith("the last line says nothing secret")

    runs = [
        (["sh", "-c", f"cat {files} >&2; exit 1"], {}),
        (["sh", "-c", 'echo "joining with $1" >&2; exit 3', "sh", Secret(PLANTED)], {}),
        (["sh", "-c", 'echo "$1" >&2; sleep 617.875', "sh", Secret(PLANTED)], {"deadline": 1}),
        (["kubeadm-missing", "join", "--token", Secret(PLANTED)], {}),
    ]
    for argv, options in runs:
        with pytest.raises(NodeError) as caught:
            shell.run("node01", argv, address=sshd.address, job=job, **options)
        failures.append(caught.value)
    assert [type(f) for f in failures] == [CommandFailed, CommandFailed, CommandDeadline, CommandFailed]
    assert "[redacted]" in str(failures[1]) and "joining with [redacted]" in str(failures[1])

    monkeypatch.setenv("KM_TEST_PLANTED_PASSPHRASE", f"{PLANTED}-but-wrong")
    with pytest.raises(SshSetupError) as caught:
        SSH.build(settings)  # a wrong passphrase stops the resource at start-up
    failures.append(caught.value)

    for failure in failures:
        shown += [str(failure), repr(failure), "".join(traceback.format_exception(failure))]
        if hasattr(failure, "result"):
            shown += [repr(failure.result), failure.result.stdout_tail, failure.result.stderr_tail,
                      failure.result.command]
    audit = read_audit(Redis.from_url(redis_server.url), 3600)
    commands = [entry for entry in audit if entry["event"] == "node.command"]
    assert len(commands) == 5 and {entry["job"] for entry in commands} == {"j-planted"}
    assert {entry["requester"] for entry in commands} == {"U0ALICE"}
    shown.append(json.dumps(audit))
    kept = node_outputs(redis, "j-planted")  # what `job ID` shows of the commands
    assert [entry.get("exit_code") for entry in kept] == [0, 1, 3, 124, 127]  # 124: timeout stopped it
    assert kept[0]["stdout_tail"].endswith("the last line says nothing secret")
    shown += [json.dumps(kept), node_commands_text(kept)]
    logs = capfd.readouterr()
    shown += [logs.out, logs.err, caplog.text]
    assert "node.command" in logs.out + logs.err  # the log lines were written, and captured here
    leaks = [text for text in shown if PLANTED in text]
    assert leaks == []
    shell.close()
