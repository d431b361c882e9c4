"""The job lifecycle end to end, over HTTP with a real worker."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import (
    TERMINAL,
    Stack,
    create_job,
    is_alive,
    make_stack,
    wait_for,
    wait_for_file,
)
from phaser.embedded import EmbeddedRedis


def _events(client: httpx.Client, job_id: str) -> list[tuple[str, dict]]:
    events = []
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert kind is not None
                events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def test_job_goes_through_every_phase_and_has_result(
    client: httpx.Client,
) -> None:
    job = create_job(client, "sleep", {"seconds": 0.5})
    assert job["phase"] == "PENDING"
    assert job["attempts"] == 0
    started = client.post(f"/api/v1/jobs/{job['id']}/start")
    assert started.status_code == 200
    assert started.json()["phase"] == "QUEUED"

    events = _events(client, job["id"])
    phases = [data["phase"] for kind, data in events if kind != "progress"]
    # The stream starts with the job as it is now (QUEUED, or already
    # EXECUTING if the worker was quicker than the stream) and ends after
    # COMPLETED.
    assert phases[-1] == "COMPLETED"
    assert "EXECUTING" in phases
    assert phases[0] in {"QUEUED", "EXECUTING"}

    done = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert done["started_at"]
    assert done["ended_at"]
    assert done["started_at"].endswith("Z")
    assert done["ended_at"].endswith("Z")
    assert done["progress"]["percent"] == 100
    [result] = done["results"]
    assert result["id"] == "result"
    assert result["href"] == f"{done['href']}/results/result"
    download = client.get(result["href"])
    assert download.status_code == 200
    assert download.text == "slept 0.5 s"
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["x-content-type-options"] == "nosniff"


def test_create_answers_201_with_location(client: httpx.Client) -> None:
    answer = client.post(
        "/api/v1/jobs",
        json={"task": "echo", "parameters": {"a": 1}, "run_id": "r-1"},
    )
    assert answer.status_code == 201
    job = answer.json()
    assert answer.headers["location"] == job["href"]
    assert job["href"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["run_id"] == "r-1"
    assert client.get(answer.headers["location"]).json()["id"] == job["id"]


def test_echo_returns_any_parameters(client: httpx.Client) -> None:
    parameters = {"REQUEST": "doQuery", "nested": {"x": [1, 2]}, "n": 3}
    job = create_job(client, "echo", parameters, start=True)
    done = wait_for(client, job["id"], TERMINAL)
    assert done["phase"] == "COMPLETED"
    result = client.get(done["results"][0]["href"])
    assert result.headers["content-type"] == "application/json"
    assert result.json() == parameters


def test_cone_task_returns_votable(client: httpx.Client) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    from astropy.io.votable import parse_single_table

    job = create_job(
        client,
        "cone",
        {"ra": 10, "dec": 20, "radius": 0.5, "maxrec": 20},
        start=True,
    )
    done = wait_for(client, job["id"], TERMINAL)
    assert done["phase"] == "COMPLETED", done["errors"]
    download = client.get(done["results"][0]["href"])
    assert download.headers["content-type"] == "application/x-votable+xml"
    import io

    table = parse_single_table(io.BytesIO(download.content)).to_table()
    assert len(table) == 20
    assert list(table["dist"]) == sorted(table["dist"])
    assert max(table["dist"]) <= 0.5


def test_two_hundred_concurrent_jobs_each_run_once(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = make_stack(redis_server, tmp_path / "data", workers=2)
    try:
        with httpx.Client(base_url=stack.url, timeout=60) as client:

            def submit(_: int) -> str:
                job = create_job(
                    client,
                    "count",
                    {"directory": str(evidence), "delay": 0.01},
                    start=True,
                )
                return str(job["id"])

            with ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(submit, range(200)))
            assert len(set(ids)) == 200
            for job_id in ids:
                assert wait_for(client, job_id, TERMINAL)["phase"] == (
                    "COMPLETED"
                )
            executions = (evidence / "executions").read_text().split()
            assert sorted(executions) == sorted(ids)
            for phase in ("PENDING", "QUEUED", "EXECUTING"):
                listed = client.get(
                    "/api/v1/jobs", params={"phase": phase}
                ).json()
                assert listed["jobs"] == []
            completed = client.get(
                "/api/v1/jobs", params={"phase": "COMPLETED", "limit": 1000}
            ).json()
            assert len(completed["jobs"]) == 200
    finally:
        stack.stop()


def test_wait_is_released_by_completion(client: httpx.Client) -> None:
    job = create_job(client, "sleep", {"seconds": 1}, start=True)
    wait_for(client, job["id"], {"EXECUTING", *TERMINAL})
    started = time.monotonic()
    answer = client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 30})
    waited = time.monotonic() - started
    done = answer.json()
    assert done["phase"] == "COMPLETED"
    # Released by the completion event, well before the 30 s asked for
    # (the stack's cap is 5 s, so a timeout would also show here).
    assert waited < 3


def test_wait_until_final_skips_intermediate_phases(
    client: httpx.Client,
) -> None:
    job = create_job(client, "sleep", {"seconds": 0.5}, start=True)
    assert job["phase"] == "QUEUED"
    answer = client.get(
        f"/api/v1/jobs/{job['id']}", params={"wait": 30, "until": "final"}
    )
    # One request from QUEUED to the end, through EXECUTING.
    assert answer.json()["phase"] == "COMPLETED"
    bad = client.get(
        f"/api/v1/jobs/{job['id']}", params={"wait": 1, "until": "later"}
    )
    assert bad.status_code == 422


def test_wait_on_unchanging_job_returns_at_its_cap(
    client: httpx.Client,
) -> None:
    job = create_job(client, "sleep", {"seconds": 1})
    started = time.monotonic()
    answer = client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 1})
    assert answer.json()["phase"] == "PENDING"
    assert 0.9 <= time.monotonic() - started < 5
    # Asking for more than the configured maximum (5 s here) waits 5 s.
    started = time.monotonic()
    client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 300})
    assert 4.9 <= time.monotonic() - started < 10


def test_wait_on_finished_job_returns_at_once(client: httpx.Client) -> None:
    job = create_job(client, "echo", {}, start=True)
    wait_for(client, job["id"], TERMINAL)
    started = time.monotonic()
    client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 30})
    assert time.monotonic() - started < 2


def test_abort_running_async_task_cancels_it(
    client: httpx.Client, evidence: Path
) -> None:
    job = create_job(
        client, "mark", {"directory": str(evidence), "seconds": 30}, start=True
    )
    wait_for_file(evidence / f"{job['id']}.started")
    aborted = client.post(f"/api/v1/jobs/{job['id']}/abort")
    assert aborted.status_code == 200
    assert aborted.json()["phase"] == "ABORTED"
    assert aborted.json()["ended_at"]
    started = time.monotonic()
    marker = wait_for_file(evidence / f"{job['id']}.cancelled", timeout=5)
    assert time.monotonic() - started < 1
    assert marker == "aborted"
    time.sleep(0.2)
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == (
        "ABORTED"
    )


def test_abort_running_sync_task_kills_process(
    client: httpx.Client, evidence: Path
) -> None:
    job = create_job(
        client, "burn", {"directory": str(evidence), "seconds": 30}, start=True
    )
    pid = int(wait_for_file(evidence / f"{job['id']}.pid"))
    os.kill(pid, 0)  # the child is alive and burning
    assert client.post(f"/api/v1/jobs/{job['id']}/abort").status_code == 200
    started = time.monotonic()
    while is_alive(pid):
        assert time.monotonic() - started < 1, "child still running"
        time.sleep(0.02)
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == (
        "ABORTED"
    )


def test_execution_duration_limit_aborts_job(
    client: httpx.Client, evidence: Path
) -> None:
    # 3 s leave the child process time to start (about 0.5 s) and write its
    # pid before the limit kills it.
    job = create_job(
        client,
        "burn",
        {"directory": str(evidence), "seconds": 30},
        start=True,
        execution_duration=3,
    )
    pid = int(wait_for_file(evidence / f"{job['id']}.pid"))
    done = wait_for(client, job["id"], TERMINAL, timeout=10)
    assert done["phase"] == "ABORTED"
    assert done["errors"][0]["message"] == (
        "Execution duration of 3 s exceeded"
    )
    started = datetime.fromisoformat(done["started_at"])
    ended = datetime.fromisoformat(done["ended_at"])
    assert timedelta(seconds=3) <= ended - started < timedelta(seconds=5)
    deadline = time.monotonic() + 2
    while is_alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_execution_duration_limit_cancels_async_task(
    client: httpx.Client, evidence: Path
) -> None:
    job = create_job(
        client,
        "mark",
        {"directory": str(evidence), "seconds": 30},
        start=True,
        execution_duration=1,
    )
    done = wait_for(client, job["id"], TERMINAL, timeout=10)
    assert done["phase"] == "ABORTED"
    assert "exceeded" in done["errors"][0]["message"]
    marker = wait_for_file(evidence / f"{job['id']}.cancelled", timeout=2)
    assert marker == "aborted"


def test_fatal_failure_ends_in_error_with_message(
    client: httpx.Client,
) -> None:
    job = create_job(client, "fail", {"message": "bad star"}, start=True)
    done = wait_for(client, job["id"], TERMINAL)
    assert done["phase"] == "ERROR"
    assert done["errors"] == [
        {
            "type": "fatal",
            "code": "task_error",
            "message": "bad star",
            "detail": None,
        }
    ]
    assert done["attempts"] == 1


def test_transient_failure_is_retried_then_errors(
    client: httpx.Client,
) -> None:
    job = create_job(
        client, "fail", {"message": "try later", "transient": True}, start=True
    )
    done = wait_for(client, job["id"], TERMINAL)
    assert done["phase"] == "ERROR"
    assert done["attempts"] == 3  # the configured default
    assert done["errors"][0]["type"] == "transient"
    assert done["errors"][0]["message"] == "try later"


def test_delete_removes_job_and_results(
    client: httpx.Client, stack: Stack
) -> None:
    job = create_job(client, "echo", {"x": 1}, start=True)
    wait_for(client, job["id"], TERMINAL)
    result_dir = stack.data_dir / "results" / job["id"]
    assert [p.name for p in result_dir.iterdir()] == ["1-result"]
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert (
        client.get(
            job["results"][0]["href"]
            if job["results"]
            else f"{job['href']}/results/result"
        ).status_code
        == 404
    )
    assert not result_dir.exists()
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 404


def test_delete_running_job_stops_it(
    client: httpx.Client, evidence: Path
) -> None:
    job = create_job(
        client, "mark", {"directory": str(evidence), "seconds": 30}, start=True
    )
    wait_for_file(evidence / f"{job['id']}.started")
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    wait_for_file(evidence / f"{job['id']}.cancelled", timeout=2)
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404


def test_events_of_finished_job_end_at_once(client: httpx.Client) -> None:
    job = create_job(client, "echo", {}, start=True)
    wait_for(client, job["id"], TERMINAL)
    events = _events(client, job["id"])
    assert [kind for kind, _ in events] == ["job"]
    assert events[0][1]["phase"] == "COMPLETED"


def test_wait_with_phase_guard_answers_at_once_on_mismatch(
    client: httpx.Client,
) -> None:
    job = create_job(client, "sleep", {"seconds": 1})
    started = time.monotonic()
    answer = client.get(
        f"/api/v1/jobs/{job['id']}", params={"wait": 30, "phase": "QUEUED"}
    )
    assert answer.json()["phase"] == "PENDING"
    assert time.monotonic() - started < 2
