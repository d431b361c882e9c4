"""Worker pools that differ: queues decided by the job, tasks a worker
does not know handed back instead of failed, and the children of ``def``
tasks tied to their worker."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    TERMINAL,
    Stack,
    create_job,
    is_alive,
    wait_for,
    wait_for_file,
    wait_until,
)
from phaser.embedded import EmbeddedRedis

#: Fast heartbeats and maintenance, so faults are noticed in a second or two.
FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "stall_timeout": 1.5,
    "maintenance_interval": 0.2,
}


def _claimed_by(stack: Stack, job_id: str) -> int:
    job = stack.record(job_id)
    assert job is not None
    assert job.claim is not None
    return int(job.claim.split("/")[0].rsplit("-", 1)[1])


def _still(
    client: httpx.Client, job_id: str, phase: str, seconds: float
) -> dict[str, Any]:
    """The job after waiting (with the server's long poll) up to
    ``seconds`` for it to leave ``phase``."""
    job: dict[str, Any] = client.get(
        f"/api/v1/jobs/{job_id}", params={"wait": seconds, "phase": phase}
    ).json()
    return job


def test_recovered_job_goes_back_to_the_queue_it_was_created_for(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = Stack(redis_server.url, tmp_path / "data", max_wait=5, **FAST)
    heavy = f"{stack.env['PHASER_QUEUE_NAME']}:heavy"
    stack.env["PHASER_TASK_QUEUES"] = f"count={heavy}"
    try:
        first = stack.start_worker(queue_name=heavy)
        # A worker of the default pool, with settings that know nothing of
        # the heavy queue; it runs maintenance too.
        stack.start_worker(task_queues="")
        stack.start_frontend()
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job = create_job(
                client,
                "count",
                {"directory": str(evidence), "delay": 30},
                start=True,
            )
            wait_for(client, job["id"], {"EXECUTING"})
            assert _claimed_by(stack, job["id"]) == first.pid
            first.send_signal(signal.SIGKILL)
            first.wait()
            # Recovered by maintenance (on whichever worker holds the
            # lease) into the heavy queue, where no worker is left.
            wait_until(
                lambda: (
                    client.get(f"/api/v1/jobs/{job['id']}").json()["attempts"]
                    == 2
                )
            )
            waiting = _still(client, job["id"], "QUEUED", 3)
            assert waiting["phase"] == "QUEUED"
            replacement = stack.start_worker(queue_name=heavy)
            running = wait_for(client, job["id"], {"EXECUTING"})
            assert running["attempts"] == 2
            assert _claimed_by(stack, job["id"]) == replacement.pid
    finally:
        stack.stop()


def test_worker_without_the_task_hands_the_job_back(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = Stack(redis_server.url, tmp_path / "data", max_wait=5, **FAST)
    try:
        # An old worker: it does not have the tests' task module.
        stack.start_worker(task_modules="")
        stack.start_frontend()
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job = create_job(
                client, "count", {"directory": str(evidence)}, start=True
            )
            # The old worker took it and handed it back (a new attempt),
            # and it is still waiting, not failed.
            wait_until(
                lambda: (
                    client.get(f"/api/v1/jobs/{job['id']}").json()["attempts"]
                    >= 2
                )
            )
            waiting = client.get(f"/api/v1/jobs/{job['id']}").json()
            assert waiting["phase"] == "QUEUED"
            assert waiting["errors"] == []
            new = stack.start_worker()
            done = wait_for(client, job["id"], TERMINAL, timeout=30)
            assert done["phase"] == "COMPLETED"
            assert _claimed_by(stack, job["id"]) == new.pid
    finally:
        stack.stop()


@pytest.fixture
def two_workers(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[Stack]:
    stack = Stack(redis_server.url, tmp_path / "data", **FAST)
    stack.start_worker()
    stack.start_worker()
    stack.start_frontend()
    yield stack
    stack.stop()


def _intervals(path: Path) -> dict[int, tuple[float, float]]:
    """First and last tick of each attempt."""
    ticks: dict[int, list[float]] = {}
    for line in path.read_text().splitlines():
        attempt, moment = line.split()
        ticks.setdefault(int(attempt), []).append(float(moment))
    return {a: (min(t), max(t)) for a, t in ticks.items()}


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_def_task_child_dies_with_its_worker_and_attempts_never_overlap(
    two_workers: Stack, evidence: Path, fault: str
) -> None:
    stack = two_workers
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        job = create_job(
            client,
            "tick",
            {"directory": str(evidence), "seconds": 2},
            start=True,
        )
        child = int(wait_for_file(evidence / f"{job['id']}.1.pid"))
        wait_until(lambda: (evidence / f"{job['id']}.ticks").exists())
        victim = stack.worker_running(job["id"])
        victim.send_signal(getattr(signal, fault))
        faulted = time.monotonic()
        # Killed: the kernel ends the child at once. Frozen: the child
        # stops hearing from its worker and ends itself, well before
        # recovery (stall timeout 1.5 s) starts the next attempt.
        wait_until(lambda: not is_alive(child), 2)
        gone = time.monotonic() - faulted
        # What the dead attempt's child could have written on: a stray
        # file, deleted once the job has ended.
        results = stack.data_dir / "results" / job["id"]
        results.mkdir(parents=True, exist_ok=True)
        (results / "1-result").write_text("stray")
        done = wait_for(client, job["id"], TERMINAL, timeout=30)
        assert done["phase"] == "COMPLETED"
        assert done["attempts"] == 2
        assert client.get(done["results"][0]["href"]).text == "ticked"
    spans = _intervals(evidence / f"{job['id']}.ticks")
    assert set(spans) == {1, 2}
    assert spans[1][1] < spans[2][0], spans
    assert sorted(p.name for p in results.iterdir()) == ["2-result"]
    print(f"{fault}: child gone after {gone:.2f} s")
