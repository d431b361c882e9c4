"""B3: end-to-end latency of a no-op job on an idle system, one client."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from pathlib import Path

import arq_baseline
import httpx
from harness import (
    Figure,
    Result,
    Scale,
    Sink,
    baseline_app,
    median,
    percentile,
    ratio,
    stack,
    stop_processes,
)
from redis import Redis

from phaser.embedded import EmbeddedRedis


def _latencies(url: str, jobs: int, task: str = "noop") -> list[float]:
    """Create a started job of ``task`` (a no-op), then long-poll until
    it has ended."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(jobs):
            started = time.perf_counter()
            job = client.post(
                "/api/v1/jobs", json={"task": task, "start": True}
            ).json()
            while job["phase"] not in {"COMPLETED", "ERROR", "ABORTED"}:
                job = client.get(
                    f"/api/v1/jobs/{job['id']}",
                    params={"wait": 10, "until": "final"},
                ).json()
            out.append((time.perf_counter() - started) * 1000)
    return out


def _sync_latencies(url: str, jobs: int) -> list[float]:
    """Create a no-op job with ``?sync=true``: one request that answers
    once the job has ended."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(jobs):
            started = time.perf_counter()
            job = client.post(
                "/api/v1/jobs", params={"sync": "true"}, json={"task": "noop"}
            ).json()
            assert job["phase"] == "COMPLETED", job
            out.append((time.perf_counter() - started) * 1000)
    return out


def _commands_per_job(redis_url: str, url: str, jobs: int) -> float:
    """Commands phaser's processes send to Redis per job of `_latencies`
    (not those scripts run inside Redis), counted with MONITOR: the round
    trips on a job's way, whatever the machine. Idle polls and
    maintenance in the window are counted too (a few hundredths)."""
    commands = 0
    marker = f"end-{uuid.uuid4().hex}"
    listening = threading.Event()

    def listen() -> None:
        nonlocal commands
        with Redis.from_url(redis_url).monitor() as monitor:
            listening.set()
            for record in monitor.listen():
                if record["command"] == f"ECHO {marker}":
                    return
                if record.get("client_type") != "lua":
                    commands += 1

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    listening.wait(10)
    _latencies(url, jobs)
    with Redis.from_url(redis_url) as redis:
        while thread.is_alive():
            redis.echo(marker)
            thread.join(0.2)
    return commands / jobs


def _floor_latencies(url: str, jobs: int) -> list[float]:
    """The same client's two requests against the bare FastAPI app: a POST
    that stores the job (one Redis command), a GET that reads it back (one
    more). What any server answering in two requests costs on this
    machine, before it runs anything."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(jobs):
            started = time.perf_counter()
            job = client.post(
                "/json", json={"task": "noop", "start": True}
            ).json()
            client.get(f"/json/{job['id']}").raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


async def _arq_latencies(redis_url: str, queue: str, jobs: int) -> list[float]:
    """Enqueue a no-op with arq and wait for its result, arq's defaults."""
    arq = arq_baseline.client(redis_url, queue)
    out = []
    try:
        for _ in range(jobs):
            started = time.perf_counter()
            job = await arq.enqueue_job("noop")
            assert job is not None
            await job.result(timeout=30)
            out.append((time.perf_counter() - started) * 1000)
    finally:
        await arq.aclose()
    return out


def bench_latency(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B3: create with start, then wait until COMPLETED, one idle client."""
    p50 = Figure("phaser p50", "ms")
    p99 = Figure("phaser p99", "ms")
    traced50 = Figure("phaser p50, tracing on (OTLP to loopback)", "ms")
    traced99 = Figure("phaser p99, tracing on (OTLP to loopback)", "ms")
    base50 = Figure("raw arq, defaults (poll 0.5 s) p50", "ms")
    sync50 = Figure("phaser p50, one request (POST ?sync=true)", "ms")
    commands = Figure("Redis commands sent per job (MONITOR)", "")
    floor50 = Figure(
        "floor: bare FastAPI POST + GET, one Redis command each, p50", "ms"
    )
    collector = Sink()
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    variants = (
        (p50, p99, "off", None),
        (traced50, traced99, "otlp", traced),
    )
    for mid, tail, mode, env in variants:
        with stack(redis, work, env=env, tracing=mode) as running:
            _latencies(running.url, 10)  # warm up
            for _ in range(scale.rounds):
                values = _latencies(running.url, scale.latency_jobs)
                mid.rounds.append(percentile(values, 0.5))
                tail.rounds.append(percentile(values, 0.99))
                if mode == "off":
                    sync = _sync_latencies(running.url, scale.latency_jobs)
                    sync50.rounds.append(percentile(sync, 0.5))
            if mode == "off":
                # After the timed rounds: MONITOR slows Redis down.
                commands.rounds.append(
                    _commands_per_job(redis.url, running.url, 100)
                )
    collector.stop()
    bare, bare_url = baseline_app(redis.url)
    try:
        _floor_latencies(bare_url, 10)  # warm up
        for _ in range(scale.rounds):
            values = _floor_latencies(bare_url, scale.latency_jobs)
            floor50.rounds.append(percentile(values, 0.5))
    finally:
        stop_processes([bare])
    queue = f"arq{uuid.uuid4().hex[:6]}"
    worker: subprocess.Popen[bytes] = arq_baseline.start_worker(
        redis.url, queue, poll_delay=0.5, keep_result=3600
    )
    try:
        time.sleep(2)  # the worker is up
        for _ in range(scale.rounds):
            values = asyncio.run(
                _arq_latencies(
                    redis.url, queue, max(5, scale.latency_jobs // 20)
                )
            )
            base50.rounds.append(percentile(values, 0.5))
    finally:
        stop_processes([worker])
    return Result(
        key="B3",
        title="End-to-end latency of a no-op job (create+start, wait)",
        figures=[
            p50,
            p99,
            traced50,
            traced99,
            sync50,
            floor50,
            base50,
            commands,
        ],
        comparison=(
            "phaser p50 / raw arq p50 ="
            f" {ratio(median(p50), median(base50)):.3f}; tracing on /"
            f" off, p50: {ratio(median(traced50), median(p50)):.2f};"
            " phaser p50 / floor p50:"
            f" {ratio(median(p50), median(floor50)):.2f}"
            f" ({median(p50) - median(floor50):.1f} ms above it)"
        ),
        target="p50 ≤ 3 ms, p99 ≤ 10 ms",
        met=median(p50) <= 3 and median(p99) <= 10,
    )
