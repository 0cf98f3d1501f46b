"""What kubemaint says about the Redis it is given: persistence and eviction settings that could
lose its state, and the marker that tells a Redis that lost its data."""

from __future__ import annotations

import subprocess
import sys

from redis import Redis

from bot.engine.redis_state import EPOCH_KEY, epoch, lost_since, persistence_warnings

pytest_plugins = ["tests.redis_fixtures"]


def test_persistence_off_and_an_evicting_policy_are_named(r: Redis):
    r.config_set("appendonly", "no")
    r.config_set("save", "")
    r.config_set("maxmemory-policy", "allkeys-lru")
    warnings = persistence_warnings(r)
    assert warnings[0].startswith("Redis has no persistence (no append-only file, no snapshots)")
    assert "Set appendonly yes and appendfsync always" in warnings[0]
    assert warnings[1] == ("Redis's maxmemory-policy is allkeys-lru: when memory runs short it may evict jobs, "
                           "locks and approvals. Set maxmemory-policy noeviction.")
    r.config_set("save", "3600 1")
    assert "append-only persistence off" in persistence_warnings(r)[0] and "save 3600 1" in persistence_warnings(r)[0]
    r.config_set("appendonly", "yes")
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("appendfsync", "everysec")
    assert persistence_warnings(r) == [
        "Redis syncs its append-only file everysec: a crash can lose up to 2 s of writes it already acknowledged "
        "(an approval, a chat edit, a step done). Set appendfsync always (kubemaint writes little: see "
        "docs/benchmarks.md)."]
    r.config_set("appendfsync", "always")
    assert persistence_warnings(r) == []


def test_the_epoch_marker_tells_a_redis_that_lost_its_data(r: Redis):
    first = epoch(r)
    assert epoch(r) == first and not lost_since(r, first)
    r.flushall()
    assert lost_since(r, first)
    second = epoch(r)
    assert second != first and r.get(EPOCH_KEY).decode() == second and lost_since(r, first)


def test_check_config_warns_about_a_redis_that_would_lose_the_state(tmp_path, redis_server, r: Redis):
    r.config_set("appendonly", "no")
    r.config_set("save", "")
    config = tmp_path / "kubemaint.yaml"
    config.write_text(f"slack: {{bot_token: xoxb-1, app_token: xapp-1}}\nredis_url: {redis_server.url}\n"
                      "roles: {approvers: [U0BOB]}\n")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "warning: Redis has no persistence" in result.stdout
    r.config_set("appendonly", "yes")
    again = subprocess.run([sys.executable, "-m", "bot.cli", "check-config", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert "warning" not in again.stdout
