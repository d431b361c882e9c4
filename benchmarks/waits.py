"""B6: thousands of waits on one frontend, released by their jobs'
final transitions."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

import httpx
from harness import (
    Figure,
    Result,
    Scale,
    Stack,
    cpu_seconds,
    percentile,
    rss_mib,
)

from phaser.embedded import EmbeddedRedis


async def _hold_waits(
    url: str,
    redis_url: str,
    prefix: str,
    ids: list[str],
    frontend: int,
    seconds: float,
) -> tuple[list[float], float, float]:
    """Open one long poll per pending job, measure the frontend's CPU and
    RSS while they wait, then abort the jobs (straight in the job store,
    as a worker would end them) and measure how long after each job's
    transition its answer arrived."""
    from redis.asyncio import Redis as AsyncRedis

    from phaser.models.phase import ExecutionPhase
    from phaser.storage.job_store import JobStore
    from phaser.storage.keys import KeyLayout

    store_client = AsyncRedis.from_url(redis_url, decode_responses=True)
    store = JobStore(store_client, KeyLayout(prefix))
    await store.load_scripts()
    limits = httpx.Limits(max_connections=len(ids) + 10)
    rss_before = rss_mib(frontend)
    ended: dict[str, float] = {}
    arrived: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=url, timeout=320, limits=limits
    ) as client:

        async def wait(job_id: str) -> None:
            answer = await client.get(
                f"/api/v1/jobs/{job_id}",
                params={"wait": 290, "phase": "PENDING"},
            )
            arrived[job_id] = time.monotonic()
            assert answer.json()["phase"] == "ABORTED"

        async def end(job_id: str) -> None:
            job = await store.get(job_id)
            assert job is not None
            result = await store.transition(
                job,
                allowed=[ExecutionPhase.PENDING],
                to=ExecutionPhase.ABORTED,
            )
            ended[job_id] = time.monotonic()
            assert result.ok

        tasks = [asyncio.create_task(wait(job_id)) for job_id in ids]
        await asyncio.sleep(3)  # every wait is open by now
        cpu_before = cpu_seconds(frontend)
        await asyncio.sleep(seconds)
        idle_cpu = (cpu_seconds(frontend) - cpu_before) / seconds
        rss_growth = rss_mib(frontend) - rss_before
        for start in range(0, len(ids), 100):
            await asyncio.gather(*(end(i) for i in ids[start : start + 100]))
        await asyncio.gather(*tasks)
    await store_client.aclose()
    delays = [(arrived[i] - ended[i]) * 1000 for i in ids]
    return delays, idle_cpu, rss_growth


def bench_waits(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B6: thousands of waits on one frontend, released by their jobs'
    final transition."""
    delay99 = Figure("release after the job's transition, p99", "ms")
    delaymax = Figure("release after the job's transition, max", "ms")
    idle = Figure("frontend CPU while all wait", "% of a core")
    rss = Figure("frontend RSS growth", "MiB")
    hold = 10.0
    running = Stack(redis.url, work / uuid.uuid4().hex[:6], max_wait=300)
    running.start(workers=0)
    try:
        frontend = running.processes[-1].pid
        for _ in range(scale.rounds_slow):
            with httpx.Client(base_url=running.url, timeout=60) as client:
                ids = [
                    client.post("/api/v1/jobs", json={"task": "noop"}).json()[
                        "id"
                    ]
                    for _ in range(scale.waiters)
                ]
            delays, cpu, growth = asyncio.run(
                _hold_waits(
                    running.url,
                    redis.url,
                    running.prefix,
                    ids,
                    frontend,
                    hold,
                )
            )
            delay99.rounds.append(percentile(delays, 0.99))
            delaymax.rounds.append(max(delays))
            idle.rounds.append(cpu * 100)
            rss.rounds.append(growth)
    finally:
        running.stop()
    return Result(
        key="B6",
        title=f"{scale.waiters:,} concurrent waits on one frontend",
        figures=[delay99, delaymax, idle, rss],
        comparison="—",
        target="all released ≤ 200 ms after completion; no CPU while idle;"
        " RSS growth ≤ 100 MB",
        met=statistics.median(delaymax.rounds) <= 200
        and statistics.median(rss.rounds) <= 100
        and statistics.median(idle.rounds) < 1,
    )
