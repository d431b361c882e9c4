"""Supervision: ``phaser serve`` restarts its embedded children, and every
frontend reports when no worker has been seen."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from conftest import (
    TERMINAL,
    EmbeddedServer,
    children,
    create_job,
    is_alive,
    make_stack,
    wait_for,
    wait_until,
)
from phaser.embedded import EmbeddedRedis

AVAILABILITY = "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    running = EmbeddedServer(tmp_path / "data")
    # Fast recovery of the job the killed worker was running.
    running.env["PHASER_HEARTBEAT_INTERVAL"] = "0.5"
    running.env["PHASER_STALL_TIMEOUT"] = "3"
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def _child(server: EmbeddedServer, marker: bytes) -> int:
    """The pid of the server's child whose command line has ``marker``."""
    assert server.process is not None
    for pid in children(server.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in command:
            return pid
    raise AssertionError(f"no child process with {marker!r}")


def _in_aof(data_dir: Path, text: str) -> bool:
    """Whether Redis' append-only files under ``data_dir`` hold ``text``."""
    return any(
        text.encode() in path.read_bytes()
        for path in data_dir.rglob("*.aof*")
        if path.is_file()
    )


def test_killed_embedded_worker_is_restarted_and_jobs_complete(
    server: EmbeddedServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        running = create_job(client, "sleep", {"seconds": 1}, start=True)
        wait_for(client, running["id"], {"EXECUTING"})
        worker = _child(server, b"worker")
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        queued = create_job(client, "echo", {"after": "kill"}, start=True)
        done = wait_for(client, queued["id"], TERMINAL, timeout=15)
        assert done["phase"] == "COMPLETED"
        assert time.monotonic() - killed < 15
        # The job the dead worker was running is recovered by the new one.
        recovered = wait_for(client, running["id"], TERMINAL, timeout=30)
        assert recovered["phase"] == "COMPLETED"
        assert recovered["attempts"] == 2
    replacement = _child(server, b"worker")
    assert replacement != worker
    assert not is_alive(worker)


def test_killed_embedded_redis_is_restarted_with_every_job(
    server: EmbeddedServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        done = create_job(client, "echo", {"keep": 1}, start=True)
        wait_for(client, done["id"], TERMINAL)
        pending = create_job(client, "echo", {"keep": 2})
        before = client.get("/api/v1/jobs").json()["jobs"]
        # Redis has written (not yet fsynced: appendfsync everysec) the
        # last job to its append-only file, and with it all earlier
        # writes; the kill loses nothing a crash of the process can lose.
        # (Under load Redis may hold writes back for up to 2 s while an
        # fsync is slow; that is the durability level, not a bug.)
        data = Path(server.env["PHASER_DATA_DIR"])
        wait_until(lambda: _in_aof(data, pending["id"]), 10)
        redis = _child(server, b"redis-server")
        os.kill(redis, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: client.get("/ready").status_code == 503, 5)
        wait_until(lambda: client.get("/ready").status_code == 200, 10)
        assert time.monotonic() - killed < 10
        after = client.get("/api/v1/jobs").json()["jobs"]
        assert after == before
        # The worker reconnected: the pending job runs.
        started = client.post(f"/api/v1/jobs/{pending['id']}/start")
        assert started.status_code == 200
        final = wait_for(client, pending["id"], TERMINAL)
        assert final["phase"] == "COMPLETED"
    assert _child(server, b"redis-server") != redis


def _availability(client: httpx.Client) -> tuple[str, str]:
    root = etree.fromstring(client.get("/availability").content)
    available = root.findtext(f"{AVAILABILITY}available")
    note = root.findtext(f"{AVAILABILITY}note")
    assert available is not None
    assert note is not None
    return available, note


def _silence(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("phaser_worker_silence_seconds "):
            return float(line.split()[1])
    raise AssertionError("no phaser_worker_silence_seconds metric")


def test_worker_gap_is_reported_while_it_lasts(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = make_stack(
        redis_server, tmp_path, heartbeat_interval=0.5, stall_timeout=2
    )
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            wait_until(lambda: _availability(client)[0] == "true")
            assert _silence(client) < 2
            [worker] = stack.workers
            worker.kill()
            worker.wait()
            wait_until(lambda: _availability(client)[0] == "false", 10)
            _, note = _availability(client)
            assert "no worker has been seen for" in note
            assert _silence(client) > 2
            # Readiness stays green (a frontend without workers still
            # serves jobs and results) and says why.
            ready = client.get("/ready")
            assert ready.status_code == 200
            assert "no worker has been seen" in ready.json()["workers"]
            stack.start_worker()
            wait_until(lambda: _availability(client)[0] == "true", 10)
            assert client.get("/ready").json()["workers"] == "ok"
    finally:
        stack.stop()
