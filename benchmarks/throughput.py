"""Throughput benchmarks: B1 job creation against a bare FastAPI endpoint,
B2 worker throughput against raw arq."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import arq_baseline
from durability import durability_figures
from harness import (
    Figure,
    Result,
    Scale,
    Sink,
    Stack,
    baseline_app,
    median,
    quiesce,
    ratio,
    run_loadgen,
    stack,
    stop_processes,
)
from peer_common import drain_rate
from redis import Redis

from phaser.embedded import EmbeddedRedis

_FORM = "RA=10&DEC=20&RADIUS=0.5&MAXREC=100"
_JSON = (
    '{"task": "echo", "parameters":'
    ' {"ra": 10, "dec": 20, "radius": 0.5, "maxrec": 100}}'
)


def bench_creation(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B1: jobs created per second, 32 concurrent clients, one frontend."""
    cases = {
        "UWS form POST → 303": ("/echo/jobs", "/form", _FORM, None),
        "JSON POST → 201": ("/api/v1/jobs", "/json", _JSON, "json"),
    }
    figures: list[Figure] = []
    ratios: list[str] = []
    met = True
    baseline, base_url = baseline_app(redis.url)
    try:
        with stack(redis, work, workers=0) as running:
            for name, (path, base_path, body, kind) in cases.items():
                content_type = (
                    "application/json"
                    if kind
                    else "application/x-www-form-urlencoded"
                )
                ours = Figure(f"phaser {name}", "jobs/s")
                bare = Figure(f"bare FastAPI + 1 HSET, {name}", "req/s")
                for _ in range(scale.rounds):
                    # Alternate, so drift of the machine hits both alike.
                    for figure, url in (
                        (bare, base_url + base_path),
                        (ours, running.url + path),
                    ):
                        answer = run_loadgen(
                            url,
                            method="POST",
                            body=body,
                            content_type=content_type,
                            connections=32,
                            seconds=scale.load_seconds,
                        )
                        statuses = set(answer["statuses"])
                        if not statuses <= {"201", "303"}:
                            raise RuntimeError(f"{url}: {statuses}")
                        figure.rounds.append(answer["rps"])
                figures += [ours, bare]
                value = ratio(median(ours), median(bare))
                ratios.append(f"{name}: {value:.2f}")
                met = met and value >= 0.8
    finally:
        stop_processes([baseline])
    fast, fsync, replicated = durability_figures(work, scale)
    figures += [fast, fsync, replicated]
    ratios.append(
        f"durability fsync / fast: {ratio(median(fsync), median(fast)):.2f},"
        f" replicated / fast: {ratio(median(replicated), median(fast)):.2f}"
    )
    return Result(
        key="B1",
        title="Job creation throughput, 32 clients, one frontend process",
        figures=figures,
        comparison="phaser / bare: " + "; ".join(ratios),
        target="≥ 0.8 × baseline",
        met=met,
    )


def arq_done(client: Redis, queue: str, jobs: int) -> Callable[[], int]:
    """Jobs raw arq has finished: it removes an entry from its queue when
    its job has ended."""
    return lambda: jobs - int(client.zcard(queue))


def phaser_done(client: Redis, prefix: str) -> Callable[[], int]:
    """Jobs phaser has finished: its per-minute counters of finished jobs
    (written by the transition that ends a job), from now on. (phaser's
    worker takes an entry out of the queue when it starts the job, so the
    queue's size would count jobs started.)"""
    first = int(time.time() // 60)

    def done() -> int:
        minutes = range(first, int(time.time() // 60) + 1)
        keys = [f"{prefix}:stats:finished:{m}" for m in minutes]
        return sum(int(v or 0) for v in client.mget(keys))

    return done


async def _fill_queue(
    redis_url: str,
    prefix: str,
    queue: str,
    jobs: int,
    *,
    priorities: bool = False,
    notify: str | None = None,
    task: str = "noop",
) -> None:
    """Store started no-op jobs and queue them, as the service does (with
    ``priorities``, each at a random priority from 0 to 9; with
    ``notify``, each with a final webhook to that URL)."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio import Redis as AsyncRedis

    from phaser.clock import now, to_ms
    from phaser.models.job import Job, Notify
    from phaser.models.phase import ExecutionPhase
    from phaser.queue import JobQueue, create_arq_redis
    from phaser.services.ids import new_job_id
    from phaser.storage.job_store import JobStore
    from phaser.storage.keys import KeyLayout

    client = AsyncRedis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, KeyLayout(prefix))
    await store.load_scripts()
    arq = create_arq_redis(ConnectionPool.from_url(redis_url), queue)
    job_queue = JobQueue(arq)
    for begin in range(0, jobs, 500):
        batch = []
        for _ in range(min(500, jobs - begin)):
            moment = now()
            batch.append(
                Job(
                    id=new_job_id(to_ms(moment)),
                    task=task,
                    owner=None,
                    phase=ExecutionPhase.QUEUED,
                    parameters={},
                    created_at=moment,
                    execution_duration=600,
                    destruction_time=moment + timedelta(days=1),
                    attempts=1,
                    priority=random.randint(0, 9) if priorities else 5,
                    notify=Notify(notify) if notify else None,
                    notify_secret="whsec_" + "A" * 32 if notify else None,
                )
            )
        # Stored and queued in one step, as the service does.
        await asyncio.gather(
            *(
                store.create(
                    job,
                    entry=job_queue.entry(
                        job.id,
                        1,
                        task=job.task,
                        owner=job.owner,
                        priority=job.priority,
                    ),
                )
                for job in batch
            )
        )
    await job_queue.close()
    await client.aclose()


async def _fill_arq(redis_url: str, queue: str, jobs: int) -> None:
    arq = arq_baseline.client(redis_url, queue)
    for begin in range(0, jobs, 500):
        await asyncio.gather(
            *(arq.enqueue_job("noop") for _ in range(min(500, jobs - begin)))
        )
    await arq.aclose()


def bench_workers(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B2: no-op jobs through the full lifecycle, one worker process."""
    ours = Figure("phaser worker, concurrency 10", "jobs/s")
    mixed = Figure(
        "phaser worker, concurrency 10, priorities 0-9 mixed", "jobs/s"
    )
    hooked = Figure(
        "phaser worker, concurrency 10, a final webhook on every job",
        "jobs/s",
    )
    receiver = Sink()
    polls = (0.005, 0.0)
    raw = {
        poll: Figure(f"raw arq, concurrency 10, poll {poll} s", "jobs/s")
        for poll in polls
    }
    client = Redis.from_url(redis.url)
    jobs = scale.worker_jobs
    variants = ((ours, False, None), (mixed, True, None))
    variants += ((hooked, False, f"{receiver.url}/hook"),)
    for _ in range(scale.rounds):
        for figure, priorities, notify in variants:
            running = Stack(
                redis.url,
                work / uuid.uuid4().hex[:6],
                webhook_hosts=f"127.0.0.1:{receiver.port}",
            )
            queue = running.env["PHASER_QUEUE_NAME"]
            asyncio.run(
                _fill_queue(
                    redis.url,
                    running.prefix,
                    queue,
                    jobs,
                    priorities=priorities,
                    notify=notify,
                )
            )
            quiesce(redis.url)
            running.start(workers=1, frontend=False)
            try:
                figure.rounds.append(
                    drain_rate(phaser_done(client, running.prefix), jobs)
                )
            finally:
                running.stop()
        for poll, figure in raw.items():
            queue = f"arq{uuid.uuid4().hex[:6]}"
            asyncio.run(_fill_arq(redis.url, queue, jobs))
            quiesce(redis.url)
            worker = arq_baseline.start_worker(
                redis.url, queue, poll_delay=poll, keep_result=0
            )
            try:
                figure.rounds.append(
                    drain_rate(arq_done(client, queue, jobs), jobs)
                )
            finally:
                stop_processes([worker])
    receiver.stop()
    best = max(raw.values(), key=median)
    value = ratio(median(ours), median(best))
    with_priorities = ratio(median(mixed), median(best))
    with_webhooks = ratio(median(hooked), median(best))
    return Result(
        key="B2",
        title=f"Worker throughput, {jobs:,} queued no-op jobs, one process",
        figures=[ours, mixed, hooked, *raw.values()],
        comparison=(
            f"phaser / fastest raw arq ({best.name}): {value:.2f};"
            f" with mixed priorities: {with_priorities:.2f};"
            f" with a final webhook on every job: {with_webhooks:.2f}"
        ),
        target="≥ 0.8 × raw arq",
        met=value >= 0.8,
    )
