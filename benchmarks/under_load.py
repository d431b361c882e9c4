"""B9: end-to-end latency of no-op jobs under load — p50 and p99 from the
creation request's send to the job's end, at 25 %, 50 % and 80 % of the
highest creation rate one frontend sustains (measured first, in the same
run), with two workers.

The load is open: jobs are sent at a fixed rate whether or not earlier
ones have been answered (as independent clients do), from this process.
A job's end is the ``ended_at`` its record carries (millisecond
precision, the same machine's clock).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import httpx
from harness import (
    Figure,
    Result,
    Scale,
    median,
    percentile,
    run_loadgen,
    stack,
)

from phaser.embedded import EmbeddedRedis

__all__ = ["bench_under_load"]

_NOOP = '{"task": "noop", "start": true}'

#: Fractions of the highest creation rate.
_LOADS = (0.25, 0.5, 0.8)


async def _send(
    url: str, rate: float, seconds: float
) -> tuple[list[tuple[str, float]], float]:
    """Create started no-op jobs ``rate`` a second for ``seconds``: each
    job's id and send time (epoch s), and the rate achieved."""
    sent: list[tuple[str, float]] = []
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=limits
    ) as http:

        async def one() -> None:
            at = time.time()
            answer = await http.post(
                "/api/v1/jobs", json={"task": "noop", "start": True}
            )
            if answer.status_code != 201:
                raise RuntimeError(answer.text)
            sent.append((answer.json()["id"], at))

        count = max(1, int(rate * seconds))
        started = time.perf_counter()
        running = []
        for n in range(count):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            running.append(asyncio.create_task(one()))
        await asyncio.gather(*running)
        achieved = count / (time.perf_counter() - started)
    return sent, achieved


async def _latencies(url: str, sent: list[tuple[str, float]]) -> list[float]:
    """Milliseconds from each job's send to its end."""
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for job_id, at in sent:
            job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
            if job["ended_at"] is None:
                job = (
                    await http.get(
                        f"/api/v1/jobs/{job_id}",
                        params={"wait": 30, "until": "final"},
                    )
                ).json()
            ended = datetime.fromisoformat(job["ended_at"]).timestamp()
            out.append(max(0.0, (ended - at) * 1000))
    return out


def _drain(url: str, timeout: float = 300) -> None:
    """Until the workers have ended every job (the statistics count none
    queued or running)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            totals = client.get("/api/v1/stats").json()["totals"]
            if not totals.get("QUEUED") and not totals.get("EXECUTING"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not drain the queue")
            time.sleep(0.05)


def bench_under_load(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B9 (see the module doc)."""
    most = Figure("highest creation rate, no-op jobs started", "jobs/s")
    figures: dict[float, tuple[Figure, Figure, Figure]] = {
        load: (
            Figure(f"p50 at {load:.0%} of the highest rate", "ms"),
            Figure(f"p99 at {load:.0%} of the highest rate", "ms"),
            Figure(f"rate sent at {load:.0%}", "jobs/s"),
        )
        for load in _LOADS
    }
    with stack(redis, work, workers=2) as running:
        url = f"{running.url}/api/v1/jobs"
        for _ in range(scale.rounds_slow):
            answer = run_loadgen(
                url,
                method="POST",
                body=_NOOP,
                content_type="application/json",
                connections=32,
                seconds=scale.load_seconds,
            )
            most.rounds.append(answer["rps"])
            for load, (mid, tail, rate) in figures.items():
                _drain(running.url)
                sent, achieved = asyncio.run(
                    _send(
                        running.url,
                        load * answer["rps"],
                        scale.load_seconds,
                    )
                )
                values = asyncio.run(_latencies(running.url, sent))
                mid.rounds.append(percentile(values, 0.5))
                tail.rounds.append(percentile(values, 0.99))
                rate.rounds.append(achieved)
    shown = [most]
    for trio in figures.values():
        shown += trio
    mid80 = figures[0.8][0]
    return Result(
        key="B9",
        title="End-to-end latency under load, one frontend, two workers",
        figures=shown,
        comparison=(
            f"p50 at 80 % / p50 at 25 %:"
            f" {median(mid80) / max(median(figures[0.25][0]), 0.001):.1f}"
        ),
        target="— (reported)",
        met=None,
    )
