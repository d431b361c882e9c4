"""Fault injection on real processes: dead and frozen workers, limits,
destruction, and a Redis restart under load."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from conftest import (
    TERMINAL,
    Stack,
    create_job,
    make_stack,
    wait_for,
    wait_for_file,
)
from phaser.embedded import EmbeddedRedis, find_redis_server
from phaser.queue import arq_job_id
from phaser.storage.keys import KeyLayout

#: Fast heartbeats and maintenance, so faults are noticed in a second or two.
FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "stall_timeout": 1.5,
    "maintenance_interval": 0.2,
}


@pytest.fixture
def two_workers(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[Stack]:
    stack = make_stack(redis_server, tmp_path / "data", workers=2, **FAST)
    yield stack
    stack.stop()


def _client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=30)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _wait_attempt(
    client: httpx.Client, job_id: str, attempt: int, timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["attempts"] >= attempt and job["phase"] == "EXECUTING":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def _running(
    client: httpx.Client,
    stack: Stack,
    evidence: Path,
    delay: float,
    **fields: Any,
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """Start a ``count`` job; it and the worker running it, once running."""
    job = create_job(
        client,
        "count",
        {"directory": str(evidence), "delay": delay},
        start=True,
        **fields,
    )
    wait_for(client, job["id"], {"EXECUTING"})
    return job, stack.worker_running(job["id"])


def test_killed_worker_job_is_requeued_and_completes_once(
    two_workers: Stack, evidence: Path
) -> None:
    with _client(two_workers) as client:
        job, victim = _running(client, two_workers, evidence, 3)
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        _wait_attempt(client, job["id"], 2)
        recovered = time.monotonic() - killed
        done = wait_for(client, job["id"], TERMINAL)
        assert done["phase"] == "COMPLETED"
        assert done["attempts"] == 2
        result = client.get(done["results"][0]["href"]).text
        assert result == f"{job['id']} attempt 2"
    # Started twice (the first run was killed), finished exactly once.
    assert _lines(evidence / "executions") == [job["id"], job["id"]]
    assert _lines(evidence / "finished") == [job["id"]]
    print(f"kill → running again on the other worker: {recovered:.2f} s")
    assert recovered < 5


def test_killed_worker_with_attempts_used_up_ends_in_error(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = make_stack(
        redis_server, tmp_path / "data", workers=2, max_attempts=1, **FAST
    )
    try:
        with _client(stack) as client:
            job, victim = _running(client, stack, evidence, 30)
            victim.send_signal(signal.SIGKILL)
            done = wait_for(client, job["id"], TERMINAL, timeout=15)
            assert done["phase"] == "ERROR"
            assert done["errors"][0]["message"] == "worker lost"
            assert done["attempts"] == 1
    finally:
        stack.stop()


def test_frozen_worker_cannot_overwrite_the_attempt_that_replaced_it(
    two_workers: Stack, evidence: Path
) -> None:
    with _client(two_workers) as client:
        job, frozen = _running(client, two_workers, evidence, 2)
        frozen.send_signal(signal.SIGSTOP)
        try:
            done = wait_for(client, job["id"], TERMINAL, timeout=15)
        finally:
            frozen.send_signal(signal.SIGCONT)
        assert done["attempts"] == 2
        assert done["phase"] == "COMPLETED"
        # Let the thawed worker end its (stale) first attempt: the task
        # may finish (its sleep ran out while frozen) or be stopped (the
        # worker notices first that the job is no longer its own); either
        # way arq drops the attempt's in-progress mark when it ends.
        mark = in_progress_key_prefix + arq_job_id(job["id"], 1)
        deadline = time.monotonic() + 15
        while asyncio.run(_exists(two_workers.redis_url, mark)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        after = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert after == done
        result = client.get(done["results"][0]["href"]).text
        assert result == f"{job['id']} attempt 2"


async def _exists(redis_url: str, key: str) -> bool:
    redis = Redis.from_url(redis_url)
    try:
        return bool(await redis.exists(key))
    finally:
        await redis.aclose()


def test_frozen_worker_is_stopped_by_the_deadline_backstop(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    settings = {**FAST, "stall_timeout": 30}  # the deadline comes first
    stack = make_stack(redis_server, tmp_path / "data", workers=2, **settings)
    try:
        with _client(stack) as client:
            job, frozen = _running(
                client, stack, evidence, 30, execution_duration=1
            )
            frozen.send_signal(signal.SIGSTOP)
            try:
                done = wait_for(client, job["id"], TERMINAL, timeout=15)
            finally:
                frozen.send_signal(signal.SIGCONT)
            assert done["phase"] == "ABORTED"
            assert done["errors"][0]["message"] == (
                "Execution duration of 1 s exceeded"
            )
            time.sleep(1)
            assert client.get(f"/api/v1/jobs/{job['id']}").json() == done
    finally:
        stack.stop()


def _children(pids: set[int], marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent in pids and marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_execution_duration_of_one_second_stops_both_kinds_of_task(
    two_workers: Stack, evidence: Path
) -> None:
    workers = {w.pid for w in two_workers.workers}
    with _client(two_workers) as client:
        jobs = [
            create_job(
                client,
                task,
                {"directory": str(evidence), "seconds": 30},
                start=True,
                execution_duration=1,
            )
            for task in ("mark", "burn")
        ]
        for job in jobs:
            done = wait_for(client, job["id"], TERMINAL, timeout=10)
            assert done["phase"] == "ABORTED"
            assert "exceeded" in done["errors"][0]["message"]
            took = datetime.fromisoformat(
                done["ended_at"]
            ) - datetime.fromisoformat(done["started_at"])
            assert timedelta(seconds=1) <= took < timedelta(seconds=2.5)
    assert wait_for_file(evidence / f"{jobs[0]['id']}.cancelled") == "aborted"
    deadline = time.monotonic() + 2
    while _children(workers, "phaser.worker.child"):
        assert time.monotonic() < deadline, "a task process survived"
        time.sleep(0.05)


def _destroy_soon(client: httpx.Client, evidence: Path) -> dict[str, Any]:
    soon = datetime.now(tz=UTC) + timedelta(seconds=2)
    job = create_job(
        client,
        "mark",
        {"directory": str(evidence), "seconds": 30},
        start=True,
        destruction_time=soon.isoformat(),
    )
    wait_for_file(evidence / f"{job['id']}.started")
    return job


def test_destruction_of_a_running_job_aborts_and_forgets_it(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = make_stack(redis_server, tmp_path / "data", **FAST)
    try:
        with _client(stack) as client:
            job = _destroy_soon(client, evidence)
            results = stack.data_dir / "results" / job["id"]
            assert any(results.iterdir())
            deadline = time.monotonic() + 10
            while client.get(f"/api/v1/jobs/{job['id']}").status_code != 404:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert wait_for_file(evidence / f"{job['id']}.cancelled") == (
                "aborted"
            )
            assert not results.exists()
            assert client.get(f"/mark/jobs/{job['id']}").status_code == 404
    finally:
        stack.stop()


def test_destruction_in_archive_mode_keeps_metadata_only(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = make_stack(
        redis_server, tmp_path / "data", destruction_mode="archive", **FAST
    )
    try:
        with _client(stack) as client:
            job = _destroy_soon(client, evidence)
            archived = wait_for(client, job["id"], {"ARCHIVED"}, timeout=10)
            assert archived["results"] == []
            # The destruction time stays as the record of when it happened.
            destroyed = datetime.fromisoformat(archived["destruction_time"])
            assert destroyed <= datetime.now(tz=UTC)
            assert not (stack.data_dir / "results" / job["id"]).exists()
            assert wait_for_file(evidence / f"{job['id']}.cancelled") == (
                "aborted"
            )
            listed = client.get("/mark/jobs").text
            assert job["id"] not in listed
            assert (
                job["id"]
                in client.get("/mark/jobs", params={"PHASE": "ARCHIVED"}).text
            )

            # The JSON list (and the dashboard's) agree with UWS: archived
            # jobs only when asked for.
            def json_ids(**params: str) -> list[str]:
                page = client.get("/api/v1/jobs", params=params).json()
                return [listed["id"] for listed in page["jobs"]]

            assert job["id"] not in json_ids()
            assert job["id"] not in json_ids(task="mark")
            assert job["id"] in json_ids(phase="ARCHIVED")
            assert f"job-{job['id']}" not in client.get("/ui/jobs").text
            assert f"job-{job['id']}" in (
                client.get("/ui/jobs", params={"phase": "ARCHIVED"}).text
            )
    finally:
        stack.stop()


def test_a_redis_outage_longer_than_the_stall_timeout_runs_no_job_twice(
    tmp_path: Path, evidence: Path
) -> None:
    # Redis stops answering (stopped, as a failover looks from outside)
    # for twice the stall timeout while a job runs: its worker cannot send
    # heartbeats, and maintenance cannot read them. Once Redis is back,
    # the job's silence counts from then: it is not taken from its worker
    # and run again.
    redis = EmbeddedRedis(tmp_path / "redis", find_redis_server())
    redis.start()
    stack = make_stack(redis, tmp_path / "data", **FAST)
    try:
        with _client(stack) as client:
            job, _ = _running(client, stack, evidence, 4)
            assert redis.process is not None
            redis.process.send_signal(signal.SIGSTOP)
            time.sleep(2 * FAST["stall_timeout"])
            redis.process.send_signal(signal.SIGCONT)
            done = wait_for(client, job["id"], TERMINAL, timeout=30)
        assert done["phase"] == "COMPLETED"
        assert done["attempts"] == 1
        assert _lines(evidence / "executions") == [job["id"]]
    finally:
        if redis.process is not None:
            redis.process.send_signal(signal.SIGCONT)
        stack.stop()
        redis.stop()


def test_redis_restart_under_load_loses_no_acknowledged_job(
    tmp_path: Path,
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", find_redis_server())
    redis.start()
    stack = make_stack(redis, tmp_path / "data", queue_check_after=2, **FAST)
    statuses: list[int] = []
    accepted: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def submit() -> None:
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            n = 0
            while not stop.is_set() and n < 2000:
                n += 1
                try:
                    answer = client.post(
                        "/api/v1/jobs",
                        json={
                            "task": "echo",
                            "parameters": {"n": n},
                            "start": True,
                        },
                    )
                except httpx.TransportError as exc:
                    statuses.append(-1)
                    failures.append(repr(exc))
                    continue
                statuses.append(answer.status_code)
                if answer.status_code == 201:
                    accepted.append(answer.json()["id"])
                elif answer.status_code == 503:
                    assert answer.headers["retry-after"]
                    time.sleep(0.05)

    views = httpx.Client(base_url=stack.url, timeout=20)
    held = contextlib.ExitStack()
    try:
        thread = threading.Thread(target=submit)
        thread.start()
        # Live dashboard views open across the outage.
        live = [
            held.enter_context(views.stream("GET", path))
            for path in ("/ui/stream", "/ui/jobs/stream?new=1")
        ]
        lines = [stream.iter_lines() for stream in live]
        for reader in lines:
            next(reader)
        time.sleep(1.5)
        redis.stop()  # SIGTERM: Redis writes its AOF and exits
        # Each view ends cleanly (the browser connects again), not broken
        # off half-way through a chunk.
        for reader in lines:
            for _ in reader:
                pass
        time.sleep(1.5)
        ready = httpx.get(f"{stack.url}/ready", timeout=5)
        assert ready.status_code == 503
        # Every dialect says so in its own form: UWS in text, the dashboard
        # as a page, the JSON API as problem details.
        for path, form in (
            ("/echo/jobs", "text/plain"),
            ("/ui/jobs", "text/html"),
            ("/api/v1/jobs", "application/problem+json"),
        ):
            down = httpx.get(f"{stack.url}{path}", timeout=10)
            assert down.status_code == 503, (path, down.text)
            assert down.headers["content-type"].startswith(form), path
            assert down.headers["retry-after"] == "5"
        restarted = EmbeddedRedis(
            tmp_path / "redis", redis.binary, port=redis.port
        )
        restarted.start()
        time.sleep(2)
        stop.set()
        thread.join(30)
        assert set(statuses) <= {201, 503}, (sorted(set(statuses)), failures)
        assert 503 in statuses
        assert statuses.count(201) == len(accepted) > 0
        with _client(stack) as client:
            assert client.get("/ready").status_code == 200
            for job_id in accepted:
                done = wait_for(client, job_id, TERMINAL, timeout=30)
                assert done["phase"] == "COMPLETED", done
        print(
            f"{len(accepted)} jobs accepted, {statuses.count(503)} answers"
            " 503 during the restart, all accepted jobs completed"
        )
    finally:
        held.close()
        views.close()
        stop.set()
        stack.stop()
        redis.stop()
        if "restarted" in locals():
            restarted.stop()


#: Phases in which a job holds a place in its concurrency groups.
ADMITTED = {"QUEUED", "EXECUTING", "SUSPENDED"}


async def _index_problems(stack: Stack) -> list[str]:
    """Every way the indexes and the records could disagree."""
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    prefix = stack.env["PHASER_KEY_PREFIX"]
    keys = KeyLayout(prefix)
    problems: list[str] = []
    try:
        records = {}
        async for key in redis.scan_iter(f"{prefix}:job:*", count=1000):
            job_id = key.rsplit(":", 1)[1]
            records[job_id] = await redis.hgetall(key)
        phase_sets: dict[str, list[str]] = {}
        counted: dict[str, int] = {}
        async for key in redis.scan_iter(f"{prefix}:owner:*", count=1000):
            if key.endswith(":counts"):
                for phase, n in (await redis.hgetall(key)).items():
                    counted[phase] = counted.get(phase, 0) + int(n)
                continue
            if key.endswith(":tasks"):
                continue
            members = await redis.zrange(key, 0, -1)
            for job_id in members:
                if job_id not in records:
                    problems.append(f"{key} points to missing {job_id}")
            if ":phase:" in key:
                for job_id in members:
                    phase_sets.setdefault(job_id, []).append(
                        key.rsplit(":", 1)[1]
                    )
        for job_id, record in records.items():
            if phase_sets.get(job_id) != [record["phase"]]:
                problems.append(
                    f"{job_id} is {record['phase']} but in phase sets"
                    f" {phase_sets.get(job_id)}"
                )
        actual: dict[str, int] = {}
        for record in records.values():
            actual[record["phase"]] = actual.get(record["phase"], 0) + 1
        if {p: n for p, n in counted.items() if n} != actual:
            problems.append(f"phase counts {counted} but records {actual}")
        for schedule, phases in [
            (keys.deadline, {"EXECUTING"}),
            (keys.heartbeat, {"EXECUTING", "SUSPENDED"}),
            (keys.queued, {"QUEUED"}),
            (keys.destruction, None),
            (keys.scheduled, {"HELD", "QUEUED"}),
        ]:
            for job_id in await redis.zrange(schedule, 0, -1):
                record = records.get(job_id)
                if record is None:
                    problems.append(f"{schedule} points to missing {job_id}")
                elif phases and record["phase"] not in phases:
                    problems.append(
                        f"{schedule} holds {job_id} in {record['phase']}"
                    )
        # Concurrency groups: their places are held by admitted jobs,
        # their waiting lists by QUEUED ones.
        async for key in redis.scan_iter(f"{keys.limits_prefix}*"):
            if key.endswith(":groups"):
                continue
            waiting = ":wait:" in key
            members = (
                await redis.zrange(key, 0, -1)
                if waiting
                else await redis.smembers(key)
            )
            allowed = {"QUEUED"} if waiting else ADMITTED
            for job_id in members:
                phase = records.get(job_id, {}).get("phase")
                if phase not in allowed:
                    problems.append(f"{key} holds {job_id} in {phase}")
    finally:
        await redis.aclose()
    return problems


def test_thousand_jobs_with_racing_clients_stay_consistent(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    """1,000 jobs, three workers, and clients racing every operation a
    waiting or running job has: start, abort, delete, edit, hold,
    release, a new priority, a new start time, suspend and resume; jobs
    with priorities, concurrency keys, dependencies (resolved while their
    dependencies are aborted or deleted) and parents."""
    stack = make_stack(redis_server, tmp_path / "data", workers=3, **FAST)
    rng = random.Random(20261122)
    made: list[str] = []

    def body(n: int) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "task": "count",
            "parameters": {
                "directory": str(evidence),
                "delay": rng.choice([0, 0.01, 0.05]),
            },
            "start": n % 4 != 0,
            "priority": rng.randint(0, 9),
        }
        if n % 5 == 0:
            fields["concurrency_key"] = rng.choice("abc")
        if made and n % 3 == 0:
            fields["after"] = rng.sample(made[-20:], min(2, len(made)))
            fields["after_policy"] = rng.choice(["all_completed", "any_end"])
        if made and n % 7 == 0:
            fields["parent_id"] = rng.choice(made[-20:])
        return fields

    async def one(client: httpx.AsyncClient, n: int) -> str | None:
        created = await client.post("/api/v1/jobs", json=body(n))
        # A dependency or parent deleted meanwhile: refused, and fine.
        assert created.status_code in {201, 404}, created.text
        if created.status_code == 404:
            return None
        job = created.json()
        made.append(job["id"])
        url = f"/api/v1/jobs/{job['id']}"
        await asyncio.sleep(rng.random() * 0.05)
        for _ in range(rng.randint(0, 3)):
            verb = rng.choice(
                [
                    "abort",
                    "delete",
                    "patch",
                    "start",
                    "hold",
                    "release",
                    "priority",
                    "reschedule",
                    "suspend",
                    "resume",
                    "none",
                ]
            )
            match verb:
                case "delete":
                    answer = await client.delete(url)
                case "patch":
                    answer = await client.patch(
                        url, json={"parameters": {"delay": 0}, "run_id": "x"}
                    )
                case "priority":
                    answer = await client.patch(
                        url, json={"priority": rng.randint(0, 9)}
                    )
                case "reschedule":
                    soon = datetime.now(UTC) + timedelta(seconds=0.3)
                    answer = await client.patch(
                        url, json={"run_after": soon.isoformat()}
                    )
                case "none":
                    continue
                case _:
                    answer = await client.post(f"{url}/{verb}")
            assert answer.status_code < 500, answer.text
        return str(job["id"])

    async def run() -> list[str]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=stack.url, timeout=60, limits=limits
        ) as client:
            semaphore = asyncio.Semaphore(32)

            async def bounded(n: int) -> str | None:
                async with semaphore:
                    return await one(client, n)

            found = await asyncio.gather(*map(bounded, range(1000)))
            return [job_id for job_id in found if job_id is not None]

    try:
        ids = asyncio.run(run())
        assert len(ids) > 900
        gone = 0
        with _client(stack) as client:
            for job_id in ids:
                answer = client.get(f"/api/v1/jobs/{job_id}")
                if answer.status_code == 404:
                    gone += 1
                    continue
                job = answer.json()
                if job["phase"] == "HELD" and job["after"]:
                    # Waiting for its dependencies: one must still be
                    # waiting or running itself (or the job was held).
                    _assert_waits_rightly(client, job)
                if job["phase"] in {"PENDING", "HELD"}:
                    client.post(f"/api/v1/jobs/{job_id}/abort")
                    continue
                assert wait_for(client, job_id, TERMINAL)["phase"] in TERMINAL
        assert 0 < gone < len(ids)  # the clients did delete some, not all
        assert asyncio.run(_index_problems(stack)) == []
        finished = _lines(evidence / "finished")
        assert len(finished) == len(set(finished)), "a job ran twice"
    finally:
        stack.stop()


def _assert_waits_rightly(client: httpx.Client, job: dict[str, Any]) -> None:
    """A HELD job with dependencies is waiting for one that has not ended
    (it may also have been held by a client after a release: then its
    history shows a later QUEUED)."""
    phases = [c["phase"] for c in job["history"]]
    if "QUEUED" in phases:
        return
    ended = []
    for other in job["after"]:
        answer = client.get(f"/api/v1/jobs/{other}")
        ended.append(
            answer.status_code == 404 or answer.json()["phase"] in TERMINAL
        )
    if all(ended):
        # Decided just now by a dependency's end: it has left HELD.
        current = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert current["phase"] != "HELD" or any(
            c["phase"] == "QUEUED" for c in current["history"]
        ), current


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = make_stack(
        redis_server, tmp_path / "data", worker_grace_period=10, **FAST
    )
    try:
        with _client(stack) as client:
            job, worker = _running(client, stack, evidence, 1.5)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(10) == 0
            done = client.get(f"/api/v1/jobs/{job['id']}").json()
            assert done["phase"] == "COMPLETED"
            assert done["attempts"] == 1
            # The stopped worker took no new job meanwhile.
            waiting = create_job(client, "echo", {}, start=True)
            time.sleep(0.5)
            assert client.get(waiting["href"]).json()["phase"] == "QUEUED"
    finally:
        stack.stop()
