"""Durability levels (issue 18, part 3): what each can lose, tested.

A SIGKILL of redis-server under a stream of creations loses no
acknowledged job at any level: Redis writes the AOF to the OS before it
answers, so only an OS crash or power loss can lose ``fast``'s last
second (which no test here can cause; docs/operations.md says so). This
test is the guard that nothing phaser does weakens that. ``fsync`` is
checked by its effect on the running Redis; ``replicated`` by the
failover test (tests/test_failover.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from redis import Redis

from conftest import EmbeddedServer, Stack, run_python, wait_for, wait_until
from phaser.embedded import EmbeddedRedis, find_redis_server
from replicated import Submitter


@pytest.mark.parametrize("durability", ["fast", "fsync", "replicated"])
def test_a_killed_redis_loses_no_acknowledged_job(
    tmp_path: Path, evidence: Path, durability: str
) -> None:
    binary = find_redis_server()
    # Replicas sync at once (Redis waits 5 s for more by default).
    quick = ["--repl-diskless-sync-delay", "0"]
    primary = EmbeddedRedis(
        tmp_path / "primary",
        binary,
        fsync="always" if durability == "fsync" else "everysec",
        extra=quick,
    )
    primary.start()
    replica = EmbeddedRedis(
        tmp_path / "replica",
        binary,
        extra=["--replicaof", "127.0.0.1", str(primary.port)],
    )
    if durability == "replicated":
        replica.start()
    stack = Stack(
        primary.url,
        tmp_path / "data",
        durability=durability,
        queue_check_after=2,
        maintenance_interval=0.2,
    )
    submitter = Submitter(stack.url, evidence)
    restarted: EmbeddedRedis | None = None
    try:
        stack.start_worker()
        stack.start_frontend()
        submitter.start()
        wait_until(lambda: len(submitter.acknowledged()) >= 300, 30)
        assert primary.process is not None
        primary.process.kill()  # SIGKILL: no chance to flush anything
        primary.process.wait()
        before = len(submitter.acknowledged())
        restarted = EmbeddedRedis(
            primary.directory,
            binary,
            fsync=primary.fsync,
            port=primary.port,
            extra=quick,
        )
        restarted.start()
        wait_until(lambda: len(submitter.acknowledged()) >= before + 100, 60)
        submitter.stop()
        statuses = submitter.statuses()
        assert set(statuses) <= {201, 503}, statuses
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            for job_id in submitter.acknowledged():
                answer = http.get(f"/api/v1/jobs/{job_id}")
                assert answer.status_code == 200, (job_id, answer.text)
                wait_for(http, job_id, {"COMPLETED"}, timeout=60)
    finally:
        submitter.stop()
        stack.stop()
        for server in (restarted, replica, primary):
            if server is not None:
                server.stop()


def test_fsync_makes_the_embedded_redis_write_before_it_answers(
    tmp_path: Path,
) -> None:
    server = EmbeddedServer(tmp_path / "data")
    server.env["PHASER_DURABILITY"] = "fsync"
    server.env["PHASER_EMBEDDED_WORKER"] = "false"
    server.start()
    try:
        assert server.process is not None
        assert server.process.stdout is not None
        line = server.process.stdout.readline().decode()
        while "embedded Redis at" not in line:
            line = server.process.stdout.readline().decode()
        url = line.split("embedded Redis at ")[1].split(",")[0]
        redis = Redis.from_url(url, decode_responses=True)
        try:
            assert redis.config_get("appendfsync") == {"appendfsync": "always"}
            assert redis.config_get("appendonly") == {"appendonly": "yes"}
        finally:
            redis.close()
    finally:
        server.stop()


def _phaser(
    env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_python(env, "-m", "phaser", *args)


def test_fsync_refuses_a_redis_that_does_not_write_before_answering(
    stack: Stack,
) -> None:
    """The shared test Redis keeps no AOF: a worker asked for ``fsync``
    against it stops at once, saying why."""
    done = _phaser({**stack.env, "PHASER_DURABILITY": "fsync"}, "worker")
    assert done.returncode == 2
    assert "PHASER_DURABILITY=fsync" in done.stderr
    assert "appendfsync" in done.stderr


def test_an_invalid_durability_stops_start_up_naming_it(
    stack: Stack,
) -> None:
    done = _phaser({**stack.env, "PHASER_DURABILITY": "paranoid"}, "worker")
    assert done.returncode == 2
    assert "PHASER_DURABILITY" in done.stderr
    assert "fast" in done.stderr  # what it may be


def test_replicated_needs_a_redis_with_replicas(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in EmbeddedServer(tmp_path).env.items()
        if key != "PHASER_REDIS_URL"
    }
    done = _phaser({**env, "PHASER_DURABILITY": "replicated"}, "serve")
    assert done.returncode == 2
    assert "needs a Redis with replicas" in done.stderr
