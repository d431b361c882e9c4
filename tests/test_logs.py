"""Worker logs: JSON in production, and every line about a job names the
job, its task, owner and attempt."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from conftest import TERMINAL, Stack, create_job, wait_for
from phaser.embedded import EmbeddedRedis


def test_every_log_line_about_a_job_names_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = Stack(
        redis_server.url,
        tmp_path / "data",
        log_profile="production",
        log_level="INFO",
    )
    log = tmp_path / "worker.log"
    frontend_log = tmp_path / "frontend.log"
    stack.start_worker(log=log)
    stack.start_frontend(log=frontend_log)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            ok = create_job(client, "echo", {"n": 1}, start=True)["id"]
            failed = create_job(client, "fail", {"message": "no"}, start=True)[
                "id"
            ]
            wait_for(client, ok, TERMINAL)
            wait_for(client, failed, TERMINAL)
    finally:
        stack.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines, "the worker logged nothing"
    about: dict[str, list[str]] = {ok: [], failed: []}
    for line in lines:
        job_id = line.get("job_id")
        mentions = [j for j in about if j in json.dumps(line)]
        if job_id is None:
            assert not mentions, line  # a line about a job must name it
            continue
        assert {"task", "owner", "attempt", "severity"} <= line.keys(), line
        assert line["attempt"] == 1, line
        if job_id in about:
            about[job_id].append(line["event"])
    assert about[ok][:1] == ["Job started"]
    assert "Job completed" in about[ok]
    assert "Job failed" in about[failed]
    # The frontend's lines, uvicorn's access log included, are JSON too.
    served = [
        json.loads(line) for line in frontend_log.read_text().splitlines()
    ]
    requests = [line for line in served if "httpRequest" in line]
    assert any(
        f"/api/v1/jobs/{ok}" in line["httpRequest"]["requestUrl"]
        for line in requests
    ), served
