"""The README's "Running it for real" commands, exactly as written, against a private Redis and
the Slack emulator: what a new user types first must work."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from redis import Redis
from rq import Worker

from lab.redis_server import RedisServer
from lab.slack.emulator import EmulatorThread
from lab.testing import stop_process_group, wait_until

README = Path(__file__).parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The commands in the code block under "## Running it for real", comments removed."""
    section = README.read_text().split("## Running it for real", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)[1]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


@pytest.fixture
def place(tmp_path: Path):
    """A directory holding kubemaint.yaml, as the README assumes, and the environment to run in."""
    with RedisServer() as redis, EmulatorThread() as slack:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
                              "clusters: [{name: lab, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                              "users: [{name: lab, user: {token: t}}]\n"
                              "contexts: [{name: lab, context: {cluster: lab, user: lab}}]\n")
        (tmp_path / "kubemaint.yaml").write_text(yaml.safe_dump({
            "slack": {"mode": "socket", "bot_token": slack.bot_token, "app_token": slack.app_token,
                      "base_url": slack.api_url},
            "redis_url": redis.url, "kubeconfig": str(kubeconfig),
            "roles": {"operators": ["U0ALICE"], "approvers": ["U0BOB"]},
        }))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEMAINT_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the `kubemaint` script
        yield tmp_path, env, redis, slack


def test_the_readme_names_the_four_commands():
    assert [shlex.split(c)[:2] for c in readme_commands()] == [
        ["kubemaint", "serve"], ["kubemaint", "worker"], ["kubemaint", "audit"], ["kubemaint", "check-config"]]


def run_until_ready(command: str, cwd: Path, env: dict, ready) -> None:
    """Start a long-running command, wait until `ready()`, stop it with SIGTERM: it must exit 0."""
    log = cwd / "process.log"
    proc = subprocess.Popen(shlex.split(command), cwd=cwd, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: ready() or proc.poll() is not None, timeout=60, message=f"`{command}` to start")
        assert proc.poll() is None, f"`{command}` exited: {log.read_text()}"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, f"`{command}` did not stop cleanly: {log.read_text()}"
    finally:
        stop_process_group(proc)


def test_every_command_of_running_it_for_real_works_as_written(place):
    cwd, env, redis, slack = place
    for command in readme_commands():
        args = shlex.split(command)
        if args[1] == "serve":  # runs until stopped: start, see it connected, stop it
            run_until_ready(command, cwd, env, lambda: slack.client.connections(live_only=True))
        elif args[1] == "worker":
            run_until_ready(command, cwd, env, lambda: Worker.all(connection=Redis.from_url(redis.url)))
        else:
            result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"`{command}`: {result.stderr}"
            assert "Traceback" not in result.stderr
