"""The lab's private Redis is durable like production's: an append-only file fsynced every second and
no eviction. A key written before a SIGKILL is there after a restart; without persistence it is gone.

Waits are on conditions with deadlines (the write is in the append-only file), never sleeps.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from redis.exceptions import OutOfMemoryError

from lab.redis_server import PERSISTENCE_ARGS, RedisServer
from lab.testing import wait_until


def config(server: RedisServer, name: str) -> str:
    return server.client().config_get(name)[name]


def test_durable_and_never_evicting_by_default():
    with RedisServer() as server:
        assert config(server, "appendonly") == "yes"
        assert config(server, "appendfsync") == "always"
        assert config(server, "maxmemory-policy") == "noeviction"
        assert config(server, "save") == ""  # the append-only file is the one durable copy


def test_a_write_before_a_sigkill_is_there_after_the_restart():
    with RedisServer() as server:
        key, value = f"job:{uuid.uuid4().hex}", uuid.uuid4().hex
        server.client().set(key, value)
        # With `appendfsync always` Redis writes and syncs the command before it answers.
        wait_until(lambda: server.aof_contains(key.encode()), timeout=5, message="the write in the append-only file")
        port = server.port
        server.kill()
        assert not server.running
        server.restart()
        assert server.port == port
        assert server.client().get(key) == value.encode()


def test_without_persistence_a_sigkill_loses_everything():
    with RedisServer(persistence="none") as server:
        assert config(server, "appendonly") == "no"
        assert config(server, "maxmemory-policy") == "noeviction"
        server.client().set("job:1", "queued")
        server.kill()
        server.restart()
        assert server.client().get("job:1") is None
        assert server.client().dbsize() == 0


def test_restart_returns_once_the_append_only_file_is_replayed():
    """PING answers while Redis still loads; restart() waits for the load, so nothing gets LOADING."""
    keys = 100_000
    with RedisServer() as server:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for n in range(keys):
            pipe.set(f"k{n}", "x" * 32)
        pipe.set("last", "written")
        pipe.execute()
        wait_until(lambda: server.aof_contains(b"written"), timeout=10, message="the last write in the file")
        server.kill()
        server.restart()
        assert server.client().dbsize() == keys + 1


def test_a_full_redis_refuses_writes_instead_of_evicting_keys():
    with RedisServer() as server:
        client = server.client()
        client.set("job:important", "queued")
        client.config_set("maxmemory", str(client.info("memory")["used_memory"] + 256 * 1024))
        with pytest.raises(OutOfMemoryError, match="maxmemory"):
            for n in range(10_000):
                client.set(f"filler:{n}", "x" * 1024)
        assert client.get("job:important") == b"queued"


def test_unknown_persistence_is_refused():
    with pytest.raises(ValueError, match="persistence"):
        RedisServer(persistence="rdb")


def test_compose_runs_redis_as_the_lab_does():
    compose = yaml.safe_load((Path(__file__).parents[1] / "deploy" / "compose.yaml").read_text())
    command = compose["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    lab = dict(zip(PERSISTENCE_ARGS["aof"][::2], PERSISTENCE_ARGS["aof"][1::2], strict=True))
    lab.pop("--appenddirname")  # the lab names redis-server's default directory explicitly
    assert dict(zip(command[1::2], command[2::2], strict=True)) == {**lab, "--maxmemory-policy": "noeviction"}
    assert compose["services"]["redis"]["volumes"] == ["redis-data:/data"]
