"""``phaser serve`` with no Redis configured: the embedded default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import (
    TERMINAL,
    EmbeddedServer,
    children,
    create_job,
    wait_for,
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "phaser-data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[EmbeddedServer]:
    running = EmbeddedServer(data_dir)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def test_restart_keeps_jobs_and_results(
    server: EmbeddedServer, data_dir: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        done = create_job(client, "echo", {"keep": "me"}, start=True)
        done = wait_for(client, done["id"], TERMINAL)
        pending = create_job(client, "sleep", {"seconds": 1})
        running = create_job(client, "sleep", {"seconds": 3}, start=True)
        wait_for(client, running["id"], {"EXECUTING"})
        before = {
            job["id"]: job for job in client.get("/api/v1/jobs").json()["jobs"]
        }
    assert server.process is not None
    kids = children(server.process.pid)
    assert len(kids) == 2  # redis-server and the worker
    assert server.stop() == 0
    for child in kids:  # stopped with it, not left behind
        assert not Path(f"/proc/{child}").exists() or (
            "zombie" in Path(f"/proc/{child}/status").read_text()
        )
    assert (data_dir / "redis").is_dir()

    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        after = {
            job["id"]: job for job in client.get("/api/v1/jobs").json()["jobs"]
        }
        # The job that was running when the server stopped was handed
        # back to the queue and runs again as attempt 2.
        assert after[running["id"]]["phase"] in {"QUEUED", "EXECUTING"}
        assert after[running["id"]]["attempts"] == 2
        del after[running["id"]], before[running["id"]]
        assert after == before
        assert after[done["id"]]["phase"] == "COMPLETED"
        assert after[pending["id"]]["phase"] == "PENDING"
        result = client.get(done["results"][0]["href"])
        assert result.json() == {"keep": "me"}
        # The restarted worker runs jobs too.
        client.post(f"/api/v1/jobs/{pending['id']}/start")
        finished = wait_for(client, pending["id"], TERMINAL)
        assert finished["phase"] == "COMPLETED"
        rerun = wait_for(client, running["id"], TERMINAL)
        assert rerun["phase"] == "COMPLETED"
        assert rerun["attempts"] == 2


def test_second_server_on_same_data_dir_is_refused(
    server: EmbeddedServer, data_dir: Path
) -> None:
    other = EmbeddedServer(data_dir)
    process = subprocess.run(
        [sys.executable, "-m", "phaser", "serve", "--port", str(other.port)],
        env=other.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert process.returncode == 1
    assert "another phaser server is using" in process.stderr


def test_invalid_configuration_names_the_setting(tmp_path: Path) -> None:
    for name, value in [
        ("PHASER_MAX_WAIT", "forever"),
        ("PHASER_REDIS_URL", "http://nope"),
        ("PHASER_DEFAULT_LIFETIME", "-P1D"),
    ]:
        env = {**os.environ, "PHASER_DATA_DIR": str(tmp_path), name: value}
        process = subprocess.run(
            [sys.executable, "-m", "phaser", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert process.returncode == 2, process.stderr
        assert name in process.stderr


def test_ctrl_c_stops_worker_first_and_hands_the_running_job_back(
    server: EmbeddedServer,
) -> None:
    """Ctrl-C in a terminal signals the whole process group; the embedded
    children are in groups of their own, so phaser serve alone decides the
    order: the worker hands its job back, then Redis stops."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        running = create_job(client, "sleep", {"seconds": 30}, start=True)
        wait_for(client, running["id"], {"EXECUTING"})
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGINT)
    assert server.process.wait(60) == 0
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job = client.get(f"/api/v1/jobs/{running['id']}").json()
        assert job["phase"] in {"QUEUED", "EXECUTING"}
        assert job["attempts"] == 2
