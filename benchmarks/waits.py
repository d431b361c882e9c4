"""B6: thousands of waits on one frontend, released by their jobs'
final transitions."""

from __future__ import annotations

import asyncio
import json
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


async def _settle(pid: int, limit: float = 60) -> None:
    """Wait until a process uses under 2 % of a core over half a second
    (the frontend has taken in every request), at most ``limit`` s."""
    deadline = time.monotonic() + limit
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        after = cpu_seconds(pid)
        if after - before < 0.01:
            return
        before = after
    raise RuntimeError("the frontend did not settle")


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
    transition its answer arrived.

    The waits are plain keep-alive connections written and read by hand
    (`loadgen`), so the client's own cost stays small next to what it
    measures.
    """
    from loadgen import read_answer, request_bytes
    from redis.asyncio import Redis as AsyncRedis

    from phaser.clock import now
    from phaser.storage.job_store import JobStore
    from phaser.storage.keys import KeyLayout
    from phaser.storage.transitions import Changed

    store_client = AsyncRedis.from_url(redis_url, decode_responses=True)
    store = JobStore(store_client, KeyLayout(prefix))
    await store.load_scripts()
    host, port = url.removeprefix("http://").split(":")
    rss_before = rss_mib(frontend)
    ended: dict[str, float] = {}
    arrived: dict[str, float] = {}

    async def wait(job_id: str) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        path = f"/api/v1/jobs/{job_id}?wait=290&phase=PENDING"
        writer.write(request_bytes("GET", f"{host}:{port}", path, b"", None))
        status, body = await read_answer(reader)
        arrived[job_id] = time.perf_counter()
        writer.close()
        assert status == 200, body
        assert json.loads(body)["phase"] == "ABORTED", body

    async def end(job_id: str) -> None:
        job = await store.get(job_id)
        assert job is not None
        result = await store.transitions.abort(job, at=now())
        ended[job_id] = time.perf_counter()
        assert isinstance(result, Changed)

    tasks = [asyncio.create_task(wait(job_id)) for job_id in ids]
    await asyncio.sleep(1)
    await _settle(frontend)  # every wait is open and waiting
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
    for _ in range(scale.rounds_slow):
        # A fresh frontend each round, so its RSS growth is this round's.
        running = Stack(
            redis.url,
            work / uuid.uuid4().hex[:6],
            max_wait=300,
            # Room for every wait and the harness's own connections.
            http_max_connections=scale.waiters + 1000,
        )
        running.start(workers=0)
        try:
            frontend = running.processes[-1].pid
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
        finally:
            running.stop()
        delay99.rounds.append(percentile(delays, 0.99))
        delaymax.rounds.append(max(delays))
        idle.rounds.append(cpu * 100)
        rss.rounds.append(growth)
    return Result(
        key="B6",
        title=f"{scale.waiters:,} concurrent waits on one frontend",
        figures=[delay99, delaymax, idle, rss],
        comparison="—",
        target="all released ≤ 200 ms after completion; no CPU while idle;"
        " RSS growth ≤ 300 MB (10,000 waits)",
        # Judged on the worst round, not the median: "all released".
        # 300 MB (the figure is in MiB) for 10,000, in proportion for
        # other sizes.
        met=max(delaymax.rounds) <= 200
        and max(rss.rounds) <= 300e6 / 2**20 * scale.waiters / 10_000
        and max(idle.rounds) < 1,
    )
