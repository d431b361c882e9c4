"""What the frontend and the worker ask Redis for on a job's way from
creation to its end, watched with Redis' MONITOR: round trips that are
not needed cost latency on every job."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from conftest import Stack, create_job, make_stack, wait_for, wait_until
from phaser.embedded import EmbeddedRedis
from phaser.storage.events import JobEvent, ended_job


@contextlib.contextmanager
def _monitored(url: str) -> Iterator[list[dict[str, Any]]]:
    """Every command Redis runs while the context is open (MONITOR's
    records: ``command``, ``client_type`` ``lua`` for a script's own)."""
    seen: list[dict[str, Any]] = []
    marker = f"ECHO end-of-test-{uuid.uuid4().hex}"
    listening = threading.Event()

    def listen() -> None:
        with Redis.from_url(url).monitor() as monitor:
            listening.set()
            for record in monitor.listen():
                if record["command"] == marker:
                    return
                seen.append(record)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert listening.wait(10)
    try:
        yield seen
    finally:
        with Redis.from_url(url) as redis:
            # Repeated until seen: the monitor may start listening after
            # the first.
            while thread.is_alive():
                redis.echo(marker.removeprefix("ECHO "))
                thread.join(0.2)


def _plain(seen: list[dict[str, Any]], command: str) -> list[str]:
    """Commands sent by clients (not run by scripts) starting so."""
    return [
        record["command"]
        for record in list(seen)
        if record.get("client_type") != "lua"
        and record["command"].startswith(command)
    ]


def _started_while_waiting(
    stack: Stack, redis_url: str, job_id: str, wait: float
) -> tuple[dict[str, Any], list[str]]:
    """Start a pending job once a long poll until its end (``wait``
    seconds at most) has read it; the poll's answer, and the reads of the
    job's record that clients sent to Redis meanwhile."""
    key = f"{stack.env['PHASER_KEY_PREFIX']}:job:{job_id}"
    with (
        _monitored(redis_url) as seen,
        ThreadPoolExecutor(1) as pool,
        httpx.Client(base_url=stack.url, timeout=30) as waiter,
        httpx.Client(base_url=stack.url, timeout=30) as client,
    ):
        waiting = pool.submit(
            waiter.get,
            f"/api/v1/jobs/{job_id}",
            params={"wait": wait, "until": "final"},
        )
        # The wait has read the job (PENDING): start it now.
        wait_until(lambda: bool(_plain(seen, f"HGETALL {key}")))
        assert client.post(f"/api/v1/jobs/{job_id}/start").is_success
        answer: dict[str, Any] = waiting.result(timeout=30).json()
    return answer, _plain(seen, f"HGETALL {key}")


def test_a_wait_until_final_reads_the_job_at_its_start_and_end_only(
    stack: Stack, client: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    """A long poll until the end reads the job when it starts and once
    the job has ended: the QUEUED and EXECUTING on the way only tell it
    to go on waiting."""
    job = create_job(client, "echo", {})
    done, reads = _started_while_waiting(
        stack, redis_server.url, job["id"], 30
    )
    # The record in the event is the whole job: its result is there.
    assert (done["phase"], len(done["results"])) == ("COMPLETED", 1)
    # The wait's first read and the start request's own: the wait goes on
    # through QUEUED and EXECUTING without reading, and answers with the
    # record the event of the job's end carries (before: a read after
    # each of QUEUED, EXECUTING and COMPLETED).
    assert len(reads) == 2, reads


def test_a_job_too_large_for_its_event_is_read_at_its_end(
    stack: Stack, client: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    """A record over 16 KiB does not travel in events: the wait reads
    the job once it has ended, and answers it whole."""
    text = "x" * 20_000
    job = create_job(client, "echo", {"text": text})
    done, reads = _started_while_waiting(
        stack, redis_server.url, job["id"], 30
    )
    assert (done["phase"], done["parameters"]) == ("COMPLETED", {"text": text})
    assert len(done["results"]) == 1
    # The wait's first read, the start request's, the wait's last.
    assert len(reads) == 3, reads


def test_a_wait_that_times_out_answers_the_job_as_it_is_then(
    stack: Stack,
    client: httpx.Client,
    redis_server: EmbeddedRedis,
    evidence: Path,
) -> None:
    """A wait that went on through a change of phase, not reading the job
    for it, reads it before answering: the answer is not the phase it
    started in."""
    job = create_job(
        client, "mark", {"directory": str(evidence), "seconds": 30}
    )
    answer, _ = _started_while_waiting(stack, redis_server.url, job["id"], 2)
    # It was PENDING when the wait began, went through QUEUED and has
    # been EXECUTING for a second or more when the wait ends.
    assert (evidence / f"{job['id']}.started").exists()
    assert answer["phase"] == "EXECUTING"
    assert client.post(f"/api/v1/jobs/{job['id']}/abort").is_success


def test_a_worker_takes_from_the_queue_once_a_job_when_it_is_empty(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A job's end frees a slot, but a worker whose last take left the
    queue empty does not take again for it: the next entry wakes it. With
    a backlog, each end takes the next entry at once."""
    # No idle polls while the test runs: every take is a wake-up's.
    stack = make_stack(
        redis_server, tmp_path, worker_poll_delay=5, worker_concurrency=2
    )
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            queue = stack.env["PHASER_QUEUE_NAME"]
            jobs = 8
            with _monitored(redis_server.url) as seen:
                for _ in range(jobs):
                    job = create_job(client, "echo", {}, start=True)
                    wait_for(client, job["id"], {"COMPLETED"})
            takes = [
                command
                for command in _plain(seen, "EVALSHA ")
                if command.split()[2:4] == ["1", queue]
            ]
            # One take a job (and at most one idle poll); every job's end
            # took once more before.
            assert jobs <= len(takes) <= jobs + 1
            # A backlog: twice the slots, queued at once, drains by the
            # ends' takes alone, long before an idle poll (5 s) comes.
            backlog = [
                create_job(client, "sleep", {"seconds": 0.1}, start=True)
                for _ in range(4)
            ]
            started = time.monotonic()
            for job in backlog:
                wait_for(client, job["id"], {"COMPLETED"})
            assert time.monotonic() - started < 4
    finally:
        stack.stop()


def test_an_event_record_that_does_not_read_means_a_read() -> None:
    for record in ("not JSON", '["phase"]', "{}", "7"):
        event = JobEvent("01abc", "COMPLETED", "phase", None, record)
        assert ended_job(event) is None
    fields = '["phase", "COMPLETED", "task", "echo", "created", "0"]'
    job = ended_job(JobEvent("01abc", "COMPLETED", "phase", None, fields))
    assert job is not None
    assert (job.id, job.phase.value, job.task) == (
        "01abc",
        "COMPLETED",
        "echo",
    )
