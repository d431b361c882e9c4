"""What a new user meets in the first hour: task modules in the current
directory, one-line start-up errors, settings that say what they take."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import (
    TERMINAL,
    Stack,
    create_job,
    serve_command,
    wait_for,
    wait_ready,
    wait_until,
)
from phaser.config import ConfigurationError, load_settings, unknown_variables
from phaser.embedded import EmbeddedRedis, free_port

SQUARE = """
from phaser.tasks import task


@task("square", parameters=None)
def square(params, ctx):
    return str(int(params.get("n", 2)) ** 2)
"""


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASER_")}
    env.update({f"PHASER_{k.upper()}": v for k, v in settings.items()})
    return env


def test_task_module_in_the_current_directory_is_found(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    (tmp_path / "mytasks.py").write_text(SQUARE)
    port = free_port()
    server = subprocess.Popen(
        serve_command(port),
        cwd=tmp_path,
        env=_env(
            task_modules="mytasks",
            redis_url=redis_server.url,
            key_prefix="firsthour",
            data_dir=str(tmp_path / "data"),
            log_level="WARNING",
        ),
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        tasks = httpx.get(f"http://127.0.0.1:{port}/api/v1/tasks").json()
        assert "square" in {task["name"] for task in tasks}
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"task_modules": "no_such_tasks"}, "PHASER_TASK_MODULES"),
        ({"redis_url": "redis://127.0.0.1:9/0"}, "PHASER_REDIS_URL"),
    ],
)
def test_start_up_failures_are_one_line_and_exit_2(
    command: str, settings: dict[str, str], names: str, tmp_path: Path
) -> None:
    args = [sys.executable, "-m", "phaser", command]
    if command == "serve":
        args += ["--port", str(free_port())]
    env = _env(data_dir=str(tmp_path), **settings)
    if command == "worker" and "redis_url" not in settings:
        env["PHASER_REDIS_URL"] = "redis://127.0.0.1:9/0"
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert names in done.stderr
    assert "Traceback" not in done.stderr


def test_serving_is_announced_only_once_the_port_is_bound(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            serve_command(port),
            env=_env(data_dir=str(tmp_path), log_level="WARNING"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert "phaser: serving http" not in done.stdout
    assert "address already in use" in done.stderr.lower()


def test_lifetimes_take_seconds_or_iso_8601_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for text, seconds in (
        ("3600", 3600),
        ("P7D", 7 * 86400),
        ("PT12H", 43200),
    ):
        monkeypatch.setenv("PHASER_DEFAULT_LIFETIME", text)
        assert load_settings().default_lifetime.total_seconds() == seconds
    for text in ("7days", "P", "1.5", "soon"):
        monkeypatch.setenv("PHASER_DEFAULT_LIFETIME", text)
        with pytest.raises(ConfigurationError, match="ISO 8601"):
            load_settings()


def test_misspelled_settings_are_named_with_the_closest_one(
    tmp_path: Path,
) -> None:
    assert unknown_variables({"PHASER_MAX_WAITS": "3"}) == [
        "PHASER_MAX_WAITS is not a phaser setting; did you mean"
        " PHASER_MAX_WAIT?"
    ]
    assert unknown_variables({"PHASER_URL": "x", "PHASER_TOKEN": "y"}) == []
    done = subprocess.run(
        [sys.executable, "-m", "phaser", "user", "list"],
        env=_env(data_dir=str(tmp_path), stall_timout="3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "did you mean PHASER_STALL_TIMEOUT?" in done.stderr


def test_worker_logs_to_a_file_have_no_colour_codes(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = Stack(redis_server.url, tmp_path / "data", log_level="INFO")
    log = tmp_path / "worker.log"
    try:
        stack.start_worker(log=log)
        stack.start_frontend()
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job = create_job(client, "echo", {}, start=True)
            wait_for(client, job["id"], TERMINAL)
        wait_until(lambda: "Job completed" in log.read_text())
        assert "\x1b[" not in log.read_text()
    finally:
        stack.stop()


def _without_quotas(stack: Stack) -> Stack:
    """The stack with the quota defaults (the tests' stacks set their own)."""
    del stack.env["PHASER_MAX_ACTIVE_JOBS"]
    del stack.env["PHASER_MAX_STORED_JOBS"]
    return stack


def test_default_quotas_accept_a_batch_on_a_single_user_server(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = _without_quotas(Stack(redis_server.url, tmp_path / "one"))
    try:
        stack.start_worker()
        stack.start_frontend()
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            batch = [
                client.post(
                    "/api/v1/jobs",
                    json={
                        "task": "sleep",
                        "parameters": {"seconds": 0},
                        "start": True,
                    },
                )
                for _ in range(130)
            ]
            assert [answer.status_code for answer in batch] == [201] * 130
            last = batch[-1].json()["id"]
            assert wait_for(client, last, TERMINAL)["phase"] == "COMPLETED"
    finally:
        stack.stop()


def test_multi_user_quota_names_the_setting_that_changes_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = _without_quotas(
        Stack(redis_server.url, tmp_path / "many", auth="header")
    )
    try:
        stack.start_frontend()
        with httpx.Client(
            base_url=stack.url,
            timeout=30,
            headers={"X-Auth-Request-User": "ann"},
        ) as client:
            for _ in range(100):
                answer = client.post("/api/v1/jobs", json={"task": "echo"})
                assert answer.status_code == 201
            refused = client.post("/api/v1/jobs", json={"task": "echo"})
            assert refused.status_code == 429
            assert "PHASER_MAX_ACTIVE_JOBS" in refused.json()["detail"]
            uws = client.post("/echo/jobs", data={"a": "1"})
            assert uws.status_code == 403
            assert "PHASER_MAX_ACTIVE_JOBS" in uws.text
    finally:
        stack.stop()
