"""Storage benchmarks: B4 job lists as stored jobs grow, B5 memory per
job, B7 destruction of expired jobs."""

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
    fill,
    percentile,
    quiesce,
    stack,
)
from redis import Redis

from phaser.embedded import EmbeddedRedis


def bench_memory(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B5: Redis memory per finished small job (record and indexes)."""
    per_job = Figure("used_memory per job", "bytes")
    client = Redis.from_url(redis.url)
    for _ in range(scale.rounds):
        prefix = f"m{uuid.uuid4().hex[:6]}"
        before = int(client.info("memory")["used_memory"])
        asyncio.run(fill(redis.url, prefix, scale.memory_jobs))
        after = int(client.info("memory")["used_memory"])
        per_job.rounds.append((after - before) / scale.memory_jobs)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
    median = statistics.median(per_job.rounds)
    return Result(
        key="B5",
        title=f"Redis memory per finished job ({scale.memory_jobs} jobs)",
        figures=[per_job],
        comparison="—",
        target="≤ 1 KiB",
        met=median <= 1024,
    )


def _list_times(url: str, path: str, requests: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(requests):
            started = time.perf_counter()
            answer = client.get(path)
            out.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
    return out


#: The lists B4 times, with the p50 each must keep at 1M jobs: both
#: dialects' first page (JSON's with its ``total``), a run-id filter that
#: matches none of the owner's jobs (it used to read them all), counts
#: (issue 20: by phase from the per-phase counts, by task and creation
#: time from the indexes' sizes; no job is read), the statistics (index
#: sizes and counters), and the dashboard's job list (50 rows) and
#: overview.
_LISTS = (
    ("UWS LAST=100", "/noop/jobs?LAST=100", 10.0),
    ("JSON limit=100", "/api/v1/jobs?limit=100", 10.0),
    (
        "JSON task+phase limit=100 with total",
        "/api/v1/jobs?task=noop&phase=COMPLETED&limit=100",
        10.0,
    ),
    ("JSON count", "/api/v1/jobs/count", 10.0),
    (
        "JSON count task+after",
        "/api/v1/jobs/count?task=noop&after=2000-01-01T00:00:00Z",
        10.0,
    ),
    ("JSON run_id=x limit=1", "/api/v1/jobs?run_id=x&limit=1", 10.0),
    ("JSON stats", "/api/v1/stats", 50.0),
    ("Dashboard job list", "/ui/jobs", 50.0),
    ("Dashboard overview", "/ui", 50.0),
)


def bench_lists(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B4: first page of one owner's jobs as the job count grows."""
    figures = []
    medians: dict[tuple[str, int], float] = {}
    with stack(redis, work) as running:
        stored = 0
        for size in scale.list_sizes:
            asyncio.run(
                fill(redis.url, running.prefix, size - stored, owner=None)
            )
            stored = size
            quiesce(redis.url)
            for name, path, _ in _LISTS:
                figure = Figure(f"{name} at {size:,} jobs, p50", "ms")
                for _ in range(scale.rounds):
                    values = _list_times(running.url, path, 50)
                    figure.rounds.append(percentile(values, 0.5))
                figures.append(figure)
                medians[name, size] = statistics.median(figure.rounds)
    small, large = scale.list_sizes[0], scale.list_sizes[-1]
    ratios = {n: medians[n, large] / medians[n, small] for n, _, _ in _LISTS}
    return Result(
        key="B4",
        title="Job list, first page, one owner",
        figures=figures,
        comparison="; ".join(
            f"{n}: {large:,}/{small:,} = {r:.2f}" for n, r in ratios.items()
        ),
        target=(
            "p50 at 1M ≤ 10 ms (lists), ≤ 50 ms (stats, dashboard);"
            " 1M/10k ≤ 1.5"
        ),
        met=all(r <= 1.5 for r in ratios.values())
        and all(medians[n, large] <= limit for n, _, limit in _LISTS),
    )


def bench_destruction(
    redis: EmbeddedRedis, work: Path, scale: Scale
) -> Result:
    """B7: maintenance destroys expired jobs.

    Two figures: from the first job gone to the last (the destruction
    itself, as a running worker does it when jobs expire; the verdict) and
    from the worker's start (its start-up included).
    """
    work_time = Figure(
        f"destroy {scale.destroy_jobs:,} expired jobs, first to last", "s"
    )
    total = Figure(
        f"destroy {scale.destroy_jobs:,} expired jobs, from worker start",
        "s",
    )
    client = Redis.from_url(redis.url)
    for _ in range(scale.rounds_slow):
        running = Stack(
            redis.url, work / uuid.uuid4().hex[:6], maintenance_interval=0.2
        )
        asyncio.run(
            fill(
                redis.url,
                running.prefix,
                scale.destroy_jobs,
                owner=None,
                destroy_now=True,
            )
        )
        schedule = f"{running.prefix}:schedule:destruction"
        quiesce(redis.url)
        started = time.perf_counter()
        first: float | None = None
        running.start(workers=1, frontend=False)
        try:
            while left := client.zcard(schedule):
                if first is None and left < scale.destroy_jobs:
                    first = time.perf_counter()
                if time.perf_counter() - started > 600:
                    raise RuntimeError("destruction took over 10 minutes")
                time.sleep(0.01)
            ended = time.perf_counter()
            total.rounds.append(ended - started)
            work_time.rounds.append(ended - (first or started))
        finally:
            running.stop()
    median = statistics.median(work_time.rounds)
    return Result(
        key="B7",
        title="Destruction of expired jobs (one worker's maintenance)",
        figures=[work_time, total],
        comparison=f"{scale.destroy_jobs / median:,.0f} jobs/s",
        target="1M in ≤ 60 s",
        met=median <= 60 * scale.destroy_jobs / 1_000_000,
    )
