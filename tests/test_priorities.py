"""Priorities (issue 16, part 1): workers take the highest priority first,
FIFO within one; a waiting job's priority can change (its queue entry
moves); ageing lifts jobs that have waited. Real server, workers and
Redis; the order is what the tasks themselves recorded."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from conftest import Stack, make_stack, valid_uws, wait_for, wait_until
from phaser.embedded import EmbeddedRedis

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
PHASER = "{urn:x-phaser:uws-extension:v1}"


@pytest.fixture
def idle_stack(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[tuple[Stack, httpx.Client]]:
    """A frontend with no worker yet: jobs wait in the queue until the
    test starts one."""
    stack = make_stack(redis_server, tmp_path / "data", workers=0)
    http = httpx.Client(base_url=stack.url, timeout=30)
    yield stack, http
    http.close()
    stack.stop()


def _create(
    http: httpx.Client, evidence: Path, priority: int | None = None
) -> str:
    body: dict[str, object] = {
        "task": "count",
        "parameters": {"directory": str(evidence)},
        "start": True,
    }
    if priority is not None:
        body["priority"] = priority
    created = http.post("/api/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["phase"] == "QUEUED"
    return str(created.json()["id"])


def _run_all(
    stack: Stack, evidence: Path, count: int, *, concurrency: int
) -> list[str]:
    """Start a worker and wait until ``count`` jobs ran; the order they
    started in, as the task recorded it."""
    stack.start_worker(worker_concurrency=concurrency)
    executions = evidence / "executions"

    def finished() -> bool:
        if not (evidence / "finished").exists():
            return False
        return len((evidence / "finished").read_text().split()) >= count

    wait_until(finished, timeout=120)
    return executions.read_text().split()


def test_a_thousand_jobs_run_in_priority_order(
    idle_stack: tuple[Stack, httpx.Client], evidence: Path
) -> None:
    stack, http = idle_stack
    rng = random.Random(16)
    jobs = []
    for _ in range(1000):
        priority = rng.choice([None, *range(10)])
        jobs.append((_create(http, evidence, priority), priority))
    # Highest priority first; within one priority, the order they were
    # queued in (the default, 5, for jobs that gave none).
    expected = [
        job_id
        for _, _, job_id in sorted(
            (-(5 if p is None else p), index, job_id)
            for index, (job_id, p) in enumerate(jobs)
        )
    ]
    # One slot: the worker reads the queue afresh whenever a slot frees.
    assert _run_all(stack, evidence, 1000, concurrency=1) == expected


def test_several_slots_take_the_highest_priorities_first(
    idle_stack: tuple[Stack, httpx.Client], evidence: Path
) -> None:
    stack, http = idle_stack
    low = [_create(http, evidence, 1) for _ in range(30)]
    high = [_create(http, evidence, 8) for _ in range(30)]
    order = _run_all(stack, evidence, 60, concurrency=10)
    # Every high-priority job started before every low-priority one.
    assert set(order[:30]) == set(high)
    assert set(order[30:]) == set(low)


def test_a_new_priority_moves_a_waiting_job(
    idle_stack: tuple[Stack, httpx.Client],
    evidence: Path,
    schema: etree.XMLSchema,
) -> None:
    stack, http = idle_stack
    jobs = [_create(http, evidence) for _ in range(10)]
    # JSON: the last job moves to the front, the first to the back.
    moved = http.patch(f"/api/v1/jobs/{jobs[-1]}", json={"priority": 9})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["priority"], moved.json()["phase"]) == (9, "QUEUED")
    assert http.patch(f"/api/v1/jobs/{jobs[0]}", json={"priority": 0}).json()[
        "priority"
    ] == (0)
    # UWS: PRIORITY on the job, shown in jobInfo; a job created with it.
    location = f"/count/jobs/{jobs[1]}"
    changed = http.post(location, data={"PRIORITY": "7"})
    assert changed.status_code == 303
    document = valid_uws(schema, http.get(location).content)
    assert document.findtext(f"{UWS}jobInfo/{PHASER}priority") == "7"
    uws = http.post(
        "/count/jobs",
        data={"directory": str(evidence), "PRIORITY": "6", "PHASE": "RUN"},
    )
    assert uws.status_code == 303
    uws_id = uws.headers["location"].rsplit("/", 1)[1]
    assert http.get(f"/api/v1/jobs/{uws_id}").json()["priority"] == 6
    # The default shows no jobInfo element (plain UWS); JSON shows it.
    plain = valid_uws(schema, http.get(f"/count/jobs/{jobs[2]}").content)
    assert plain.find(f"{UWS}jobInfo/{PHASER}priority") is None
    assert http.get(f"/api/v1/jobs/{jobs[2]}").json()["priority"] == 5
    order = _run_all(stack, evidence, 11, concurrency=1)
    assert order == [jobs[-1], jobs[1], uws_id, *jobs[2:-1], jobs[0]]


def test_bad_priorities_are_refused_and_change_nothing(
    client: httpx.Client,
) -> None:
    for value in (-1, 10, "high", 2.5):
        refused = client.post(
            "/api/v1/jobs", json={"task": "echo", "priority": value}
        )
        assert refused.status_code == 422, refused.text
    for value in ("-1", "10", "high", ""):
        refused = client.post("/echo/jobs", data={"PRIORITY": value})
        assert refused.status_code == 400, refused.text
        assert "priority" in refused.text.lower()
    job = client.post(
        "/api/v1/jobs", json={"task": "echo", "priority": 3}
    ).json()
    assert client.post(
        f"/echo/jobs/{job['id']}", data={"PRIORITY": "11"}
    ).status_code == (400)
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["priority"] == 3
    # Only while the job waits: a finished job keeps its priority.
    client.post(f"/api/v1/jobs/{job['id']}/start")
    wait_for(client, job["id"], {"COMPLETED"})
    late = client.patch(f"/api/v1/jobs/{job['id']}", json={"priority": 9})
    assert late.status_code == 409
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["priority"] == 3


def test_ageing_lets_a_long_waiting_job_pass_newer_higher_ones(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    # One priority level per second of waiting.
    stack = make_stack(
        redis_server, tmp_path / "data", workers=0, priority_ageing=1
    )
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            old = _create(http, evidence, 0)
            time.sleep(3.5)  # the wait itself is what is tested
            newer = _create(http, evidence, 2)
            newest = _create(http, evidence, 6)
            order = _run_all(stack, evidence, 3, concurrency=1)
    finally:
        stack.stop()
    # 3.5 s of waiting is worth 3 levels: above 2, below 6.
    assert order == [newest, old, newer]


def test_a_job_queued_while_a_worker_is_busy_goes_before_lower_ones(
    idle_stack: tuple[Stack, httpx.Client], evidence: Path
) -> None:
    stack, http = idle_stack
    low = []
    for _ in range(5):
        created = http.post(
            "/api/v1/jobs",
            json={
                "task": "count",
                "parameters": {"directory": str(evidence), "delay": 0.3},
                "start": True,
                "priority": 1,
            },
        )
        low.append(created.json()["id"])
    stack.start_worker(worker_concurrency=1)
    executions = evidence / "executions"
    wait_until(lambda: executions.exists())
    # The worker has read the queue (all five low jobs) and runs the
    # first; a high one queued now is next, not sixth.
    high = _create(http, evidence, 9)
    wait_until(lambda: len(executions.read_text().split()) >= 6, timeout=30)
    order = executions.read_text().split()
    assert order[1] == high, order
