"""phaser benchmarks: each figure with a baseline measured in the same run.

    python benchmarks/run.py                 # every benchmark available
    python benchmarks/run.py --only B3 B5    # some of them
    python benchmarks/run.py --smoke         # tiny sizes: checks they run

Starts its own redis-server, frontends and workers on loopback, and writes
``benchmarks/results.md`` and ``benchmarks/results.json``. Every figure is
the median of several rounds with min and max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from phaser.embedded import EmbeddedRedis, find_redis_server, free_port

HERE = Path(__file__).resolve().parent


@dataclass
class Figure:
    """One measured quantity over several rounds."""

    name: str
    unit: str
    rounds: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": statistics.median(self.rounds),
            "min": min(self.rounds),
            "max": max(self.rounds),
            "rounds": len(self.rounds),
        }


@dataclass
class Result:
    """A benchmark's figures, comparison and verdict."""

    key: str
    title: str
    figures: list[Figure]
    comparison: str
    target: str
    met: bool | None


class Stack:
    """A frontend and workers as processes, on one Redis."""

    def __init__(self, redis_url: str, data: Path, **settings: Any) -> None:
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"b{tag}"
        self.env = {
            **os.environ,
            "PHASER_REDIS_URL": redis_url,
            "PHASER_DATA_DIR": str(data),
            "PHASER_KEY_PREFIX": self.prefix,
            "PHASER_QUEUE_NAME": f"b{tag}:queue",
            "PHASER_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), os.environ.get("PYTHONPATH", "")]
            ),
            "PHASER_TASK_MODULES": "bench_tasks",
            "PHASER_MAX_ACTIVE_JOBS": "10000000",
            "PHASER_MAX_STORED_JOBS": "100000000",
        }
        for name, value in settings.items():
            self.env[f"PHASER_{name.upper()}"] = str(value)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, workers: int = 1) -> None:
        command = [sys.executable, "-m", "phaser"]
        for _ in range(workers):
            self.processes.append(
                subprocess.Popen([*command, "worker"], env=self.env)
            )
        self.processes.append(
            subprocess.Popen(
                [*command, "serve", "--port", str(self.port)], env=self.env
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(f"{self.url}/ready", timeout=1).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("stack did not start")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def stack(
    redis: EmbeddedRedis, work: Path, **settings: Any
) -> Iterator[Stack]:
    running = Stack(redis.url, work / uuid.uuid4().hex[:6], **settings)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latencies(url: str, jobs: int) -> list[float]:
    """Create a started noop job and wait (long poll) until it is done."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(jobs):
            started = time.perf_counter()
            job = client.post(
                "/api/v1/jobs", json={"task": "noop", "start": True}
            ).json()
            phase = job["phase"]
            while phase not in {"COMPLETED", "ERROR", "ABORTED"}:
                phase = client.get(
                    f"/api/v1/jobs/{job['id']}",
                    params={"wait": 10, "phase": phase},
                ).json()["phase"]
            out.append((time.perf_counter() - started) * 1000)
    return out


def bench_latency(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B3: end-to-end latency of a no-op job, idle system, one client."""
    p50 = Figure("phaser p50", "ms")
    p99 = Figure("phaser p99", "ms")
    base50 = Figure("arq default pickup (poll 0.5 s) p50", "ms")
    with stack(redis, work) as fast:
        _latencies(fast.url, 10)  # warm up
        for _ in range(scale.rounds):
            values = _latencies(fast.url, scale.latency_jobs)
            p50.rounds.append(_percentile(values, 0.5))
            p99.rounds.append(_percentile(values, 0.99))
    with stack(redis, work, worker_poll_delay=0.5) as slow:
        for _ in range(scale.rounds):
            values = _latencies(slow.url, max(5, scale.latency_jobs // 10))
            base50.rounds.append(_percentile(values, 0.5))
    median50 = statistics.median(p50.rounds)
    median99 = statistics.median(p99.rounds)
    return Result(
        key="B3",
        title="End-to-end latency of a no-op job (create+start, wait)",
        figures=[p50, p99, base50],
        comparison=(
            f"phaser p50 / arq-default-pickup p50 ="
            f" {median50 / statistics.median(base50.rounds):.3f}"
        ),
        target="p50 ≤ 10 ms, p99 ≤ 30 ms",
        met=median50 <= 10 and median99 <= 30,
    )


async def _fill(
    redis_url: str,
    prefix: str,
    jobs: int,
    *,
    owner: str | None = "alice",
    destroy_now: bool = False,
) -> None:
    """Store finished small jobs exactly as the service does."""
    from redis.asyncio import Redis as AsyncRedis

    from phaser.clock import now, to_ms
    from phaser.models.job import Job, JobResult
    from phaser.models.phase import ExecutionPhase
    from phaser.services.ids import new_job_id
    from phaser.storage.job_store import JobStore
    from phaser.storage.keys import KeyLayout

    client = AsyncRedis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, KeyLayout(prefix))
    await store.load_scripts()
    batch = 500
    for start in range(0, jobs, batch):
        created = []
        for _ in range(min(batch, jobs - start)):
            moment = now()
            job = Job(
                id=new_job_id(to_ms(moment)),
                task="noop",
                owner=owner,
                phase=ExecutionPhase.PENDING,
                parameters={"n": 1},
                created_at=moment,
                execution_duration=600,
                destruction_time=(
                    moment if destroy_now else moment + timedelta(days=1)
                ),
            )
            created.append(job)
        await asyncio.gather(*(store.create(job) for job in created))
        await asyncio.gather(
            *(
                store.transition(
                    job,
                    allowed=[ExecutionPhase.PENDING],
                    to=ExecutionPhase.COMPLETED,
                    fields={
                        "started_at": job.created_at,
                        "ended_at": job.created_at,
                        "attempts": 1,
                        "results": [
                            JobResult(
                                "result",
                                2,
                                "application/json",
                                f"{job.id}/1-result",
                            )
                        ],
                    },
                    event="",
                )
                for job in created
            )
        )
    await client.aclose()


def bench_memory(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B5: Redis memory per finished small job (record and indexes)."""
    per_job = Figure("used_memory per job", "bytes")
    client = Redis.from_url(redis.url)
    for _ in range(scale.rounds):
        prefix = f"m{uuid.uuid4().hex[:6]}"
        before = int(client.info("memory")["used_memory"])
        asyncio.run(_fill(redis.url, prefix, scale.memory_jobs))
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


def bench_lists(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B4: first page of one owner's jobs as the job count grows."""
    figures = []
    medians: dict[tuple[str, int], float] = {}
    with stack(redis, work) as running:
        stored = 0
        for size in scale.list_sizes:
            asyncio.run(
                _fill(redis.url, running.prefix, size - stored, owner=None)
            )
            stored = size
            for dialect, path in (
                ("UWS LAST=100", "/noop/jobs?LAST=100"),
                ("JSON limit=100", "/api/v1/jobs?limit=100"),
            ):
                figure = Figure(f"{dialect} at {size:,} jobs, p50", "ms")
                for _ in range(scale.rounds):
                    values = _list_times(running.url, path, 50)
                    figure.rounds.append(_percentile(values, 0.5))
                figures.append(figure)
                medians[dialect, size] = statistics.median(figure.rounds)
    small, large = scale.list_sizes[0], scale.list_sizes[-1]
    ratios = {
        d: medians[d, large] / medians[d, small]
        for d in ("UWS LAST=100", "JSON limit=100")
    }
    return Result(
        key="B4",
        title="Job list, first page, one owner",
        figures=figures,
        comparison="; ".join(
            f"{d}: {large:,}/{small:,} = {r:.2f}" for d, r in ratios.items()
        ),
        target="p50 ≤ 10 ms at 1M; 1M/10k ≤ 1.5",
        met=all(r <= 1.5 for r in ratios.values())
        and all(medians[d, large] <= 10 for d in ratios),
    )


def bench_destruction(
    redis: EmbeddedRedis, work: Path, scale: Scale
) -> Result:
    """B7: maintenance destroys expired jobs."""
    figure = Figure(
        f"destroy {scale.destroy_jobs:,} expired jobs (incl. worker start)",
        "s",
    )
    client = Redis.from_url(redis.url)
    for _ in range(scale.rounds_slow):
        running = Stack(
            redis.url, work / uuid.uuid4().hex[:6], maintenance_interval=0.2
        )
        asyncio.run(
            _fill(
                redis.url,
                running.prefix,
                scale.destroy_jobs,
                owner=None,
                destroy_now=True,
            )
        )
        schedule = f"{running.prefix}:schedule:destruction"
        # Timed from the worker's start, which it spends starting up too.
        started = time.monotonic()
        running.start(workers=1)
        try:
            while client.zcard(schedule):
                if time.monotonic() - started > 600:
                    raise RuntimeError("destruction took over 10 minutes")
                time.sleep(0.05)
            figure.rounds.append(time.monotonic() - started)
        finally:
            running.stop()
    median = statistics.median(figure.rounds)
    return Result(
        key="B7",
        title="Destruction of expired jobs (one worker's maintenance)",
        figures=[figure],
        comparison=f"{scale.destroy_jobs / median:,.0f} jobs/s",
        target="100k in ≤ 10 s",
        met=scale.destroy_jobs / median >= 10_000,
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


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
    rss_before = _rss_mib(frontend)
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
        cpu_before = _cpu_seconds(frontend)
        await asyncio.sleep(seconds)
        idle_cpu = (_cpu_seconds(frontend) - cpu_before) / seconds
        rss_growth = _rss_mib(frontend) - rss_before
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
            delay99.rounds.append(_percentile(delays, 0.99))
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


@dataclass(frozen=True)
class Scale:
    rounds: int
    rounds_slow: int
    latency_jobs: int
    memory_jobs: int
    list_sizes: tuple[int, ...]
    destroy_jobs: int
    waiters: int


FULL = Scale(
    rounds=5,
    rounds_slow=1,
    latency_jobs=200,
    memory_jobs=20_000,
    list_sizes=(10_000, 100_000, 1_000_000),
    destroy_jobs=100_000,
    waiters=2_000,
)
SMOKE = Scale(
    rounds=1,
    rounds_slow=1,
    latency_jobs=10,
    memory_jobs=200,
    list_sizes=(100, 1_000),
    destroy_jobs=200,
    waiters=20,
)

BENCHMARKS: dict[str, Callable[[EmbeddedRedis, Path, Scale], Result]] = {
    "B3": bench_latency,
    "B4": bench_lists,
    "B5": bench_memory,
    "B6": bench_waits,
    "B7": bench_destruction,
}


def _markdown(results: list[Result], command: str) -> str:
    lines = [
        f"Produced by `{command}` on {os.cpu_count()} cores.",
        "",
        "| # | what | figure | median | min | max | comparison | target |"
        " met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for figure in result.figures:
            row = figure.row()
            verdict = {True: "yes", False: "**no**", None: "—"}[result.met]
            lines.append(
                f"| {result.key} | {result.title} | {figure.name}"
                f" | {row['median']:.1f} {figure.unit}"
                f" | {row['min']:.1f} | {row['max']:.1f}"
                f" | {result.comparison} | {result.target} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    work = Path(tempfile.mkdtemp(prefix="phaser-bench-"))
    redis = EmbeddedRedis(work / "redis", find_redis_server())
    redis.start()
    results = []
    try:
        for key in args.only or sorted(BENCHMARKS):
            results.append(BENCHMARKS[key](redis, work, scale))
            print(f"{key} done", flush=True)
    finally:
        redis.stop()
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(_markdown(results, command.strip()))
    (args.out / "results.json").write_text(
        json.dumps(
            [
                {
                    "key": r.key,
                    "title": r.title,
                    "figures": [f.row() for f in r.figures],
                    "comparison": r.comparison,
                    "target": r.target,
                    "met": r.met,
                }
                for r in results
            ],
            indent=2,
        )
    )
    print(_markdown(results, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
