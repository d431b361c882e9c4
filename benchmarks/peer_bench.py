"""B8: phaser beside the queues users would pick instead.

The same workload for each system, each on its own redis-server, in one
run: enqueue ``worker_jobs`` jobs of a no-op that increments a counter,
start one worker process with concurrency 10, time from the first finished
job to the last; then one job at a time, enqueued and awaited with the
system's own client, end-to-end latency p50/p99; and what the system
keeps in Redis per finished job. Each peer runs from a virtual environment
of its own (pinned in `peers/*.txt`, made on first use under
``PHASER_BENCH_PEERS``, default ``~/.cache/phaser/bench-peers``), driven
by its module in `peers/` through `peers/peer_common.py`; raw arq runs in
phaser's own environment (it is phaser's dependency), phaser as its
processes (`harness.Stack`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness import (
    HERE,
    Figure,
    Result,
    Scale,
    Stack,
    median,
    percentile,
    quiesce,
    ratio,
)
from latency import _latencies
from peer_common import counted, drain_rate
from redis import Redis
from throughput import _fill_queue

from phaser.embedded import EmbeddedRedis, die_with_parent, find_redis_server

PEERS = HERE / "peers"

#: The peers with an environment of their own, in the table's order.
_VENVS = ("celery", "taskiq", "saq", "streaq")

#: What each system keeps per job, said once for the table.
STORES = {
    "phaser": (
        "the job record (parameters, phases and their times, history,"
        " owner, result list) and its list indexes until its destruction"
        " time; the arq queue entry while queued"
    ),
    "arq": "the job payload while queued; the result for 1 h (keep_result)",
    "celery": "the message while queued; the result for 1 day",
    "taskiq": "a stream entry while queued; the result (no expiry set)",
    "saq": "the job (a hash of its state) for 600 s after it ends",
    "streaq": "a stream entry and the task while queued; the result 5 min",
}


def _redis_version(binary: Path) -> tuple[int, ...]:
    shown = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    version = shown.split("v=", 1)[1].split()[0]
    return tuple(int(part) for part in version.split(".")[:2])


def redis7_server(work: Path) -> Path:
    """A redis-server of version 7 or later, which every system of B8
    runs on (streaq uses Redis functions, new in 7): the one phaser would
    run if it is recent enough, else the binary of ``redis-sentinel``
    (Debian's package, which ``.ci/run`` installs; Redis decides by the
    name it was run under, so a link named ``redis-server`` runs it as a
    server)."""
    found = find_redis_server()
    if _redis_version(found) >= (7, 0):
        return found
    sentinel = shutil.which("redis-sentinel")
    if sentinel:
        link = work / "redis7" / "redis-server"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(Path(sentinel).resolve())
        if _redis_version(link) >= (7, 0):
            return link
    raise RuntimeError(
        f"B8 needs Redis 7 or later (streaq uses Redis functions); found"
        f" {found} and no redis-sentinel of version 7: install Redis 7"
    )


def _peer_python(name: str) -> Path:
    """The Python of ``name``'s own environment, made once per pin set."""
    pins = PEERS / f"{name}.txt"
    tag = hashlib.sha256(pins.read_bytes()).hexdigest()[:12]
    root = Path(
        os.environ.get(
            "PHASER_BENCH_PEERS", Path.home() / ".cache/phaser/bench-peers"
        )
    )
    venv = root / f"{name}-{tag}"
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-r", pins],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode:
        raise RuntimeError(f"B8: {name} did not install:\n{installed.stderr}")
    (venv / ".ready").touch()
    return python


@dataclass
class _Round:
    """One round of one system."""

    rate: float
    latencies: list[float]
    bytes_per_job: float


def _run_peer(
    python: Path, name: str, redis: EmbeddedRedis, work: Path, scale: Scale
) -> _Round:
    """One round of one peer: its driver's JSON answer."""
    done = subprocess.run(
        [
            *(python, PEERS / f"{name}_peer.py"),
            *("--jobs", str(scale.worker_jobs)),
            *("--latency", str(scale.latency_jobs)),
        ],
        cwd=PEERS,
        env={
            **os.environ,
            "PEER_REDIS_URL": redis.url,
            "PEER_LOG": str(work / f"{name}.log"),
            "PYTHONPATH": str(PEERS),
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        # A driver killed by the timeout (or with this run) takes its
        # worker with it (peer_common).
        preexec_fn=die_with_parent,
    )
    if done.returncode:
        raise RuntimeError(f"B8: {name} failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout)
    return _Round(
        float(answer["rate"]),
        [float(v) for v in answer["latencies_ms"]],
        float(answer["bytes_per_job"]),
    )


def _run_phaser(redis: EmbeddedRedis, work: Path, scale: Scale) -> _Round:
    """One round of phaser, as the peers are run: fill, one worker, drain;
    then latencies through the HTTP API (create started, long-poll)."""
    running = Stack(
        redis.url,
        work / uuid.uuid4().hex[:6],
        env={"BENCH_COUNTER_URL": redis.url},
    )
    client = Redis.from_url(redis.url)
    before = int(client.info("memory")["used_memory"])
    jobs = scale.worker_jobs
    asyncio.run(
        _fill_queue(
            redis.url,
            running.prefix,
            running.env["PHASER_QUEUE_NAME"],
            jobs,
            task="count",
        )
    )
    quiesce(redis.url)
    running.start(workers=1, frontend=False)
    try:
        rate = drain_rate(counted(client), jobs)
        kept = int(client.info("memory")["used_memory"]) - before
        running.start(workers=0)  # the frontend, for the clients' path
        _latencies(running.url, 5, task="count")  # warm up
        latencies = _latencies(running.url, scale.latency_jobs, task="count")
    finally:
        running.stop()
    return _Round(rate, latencies, kept / jobs)


def bench_peers(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B8: phaser, raw arq, Celery, taskiq, SAQ and streaq side by side."""
    pythons = {name: _peer_python(name) for name in _VENVS}
    pythons["arq"] = Path(sys.executable)
    systems = ["phaser", "arq", *_VENVS]
    figures: dict[str, dict[str, Figure]] = {
        name: {
            "rate": Figure(f"{name}: no-op jobs/s, one worker", "jobs/s"),
            "p50": Figure(f"{name}: one job end to end, p50", "ms"),
            "p99": Figure(f"{name}: one job end to end, p99", "ms"),
            "bytes": Figure(f"{name}: Redis memory kept per job", "bytes"),
        }
        for name in systems
    }
    binary = redis7_server(work)
    for round_ in range(scale.rounds_slow):
        for name in systems:
            own = EmbeddedRedis(work / f"peer-{name}-{round_}", binary)
            own.start()
            try:
                answer = (
                    _run_phaser(own, work, scale)
                    if name == "phaser"
                    else _run_peer(pythons[name], name, own, work, scale)
                )
            finally:
                own.stop()
            by = figures[name]
            by["rate"].rounds.append(answer.rate)
            by["p50"].rounds.append(percentile(answer.latencies, 0.5))
            by["p99"].rounds.append(percentile(answer.latencies, 0.99))
            by["bytes"].rounds.append(answer.bytes_per_job)
    ours = median(figures["phaser"]["rate"])
    ratios = ", ".join(
        f"{name} {ratio(median(figures[name]['rate']), ours):.2f}"
        for name in systems[1:]
    )
    return Result(
        key="B8",
        title=(
            f"Peers: {scale.worker_jobs:,} queued no-op jobs, one worker"
            " process, concurrency 10; one job at a time end to end"
        ),
        figures=[f for by in figures.values() for f in by.values()],
        comparison=f"throughput of each / phaser: {ratios}",
        target="none (a comparison); see docs/performance.md",
        met=None,
    )
