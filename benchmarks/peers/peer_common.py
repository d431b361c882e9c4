"""What every system in B8 shares: the counting no-op, the drain timing,
the latency loop and the JSON answer to the harness (`peers.py`).

Runs in each system's own virtual environment (its only needs beyond the
system are the standard library and redis-py), as::

    PEER_REDIS_URL=redis://127.0.0.1:PORT python celery_peer.py \\
        --jobs 5000 --latency 200

The protocol, the same for every system: with no worker running, enqueue
``--jobs`` jobs of a task that only increments a counter in Redis (the
same one extra round trip for every system, so that completion is seen the
same way for all); start one worker process, concurrency 10; time from the
first completed job to the last. Then, the worker idle, run ``--latency``
jobs one after another, each enqueued and awaited with the system's own
client, and report every latency. What each system keeps in Redis per
finished job is measured too (used memory after the drain, over the jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

HERE = Path(__file__).resolve().parent
COUNTER = "bench:done"
URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")

_async_counter: AsyncRedis | None = None
_sync_counter: Redis | None = None


async def count_async() -> None:
    """The no-op's one step, for asyncio systems (a client per process)."""
    global _async_counter
    if _async_counter is None:
        _async_counter = AsyncRedis.from_url(URL)
    await _async_counter.incr(COUNTER)


def count_sync() -> None:
    """The no-op's one step, for thread pools."""
    global _sync_counter
    if _sync_counter is None:
        _sync_counter = Redis.from_url(URL)
    _sync_counter.incr(COUNTER)


#: Jobs run first in a latency loop, to warm the clients up; not counted.
WARM_UP = 5


async def send_all(jobs: int, send: Callable[[], Awaitable[object]]) -> None:
    """Enqueue ``jobs`` jobs with ``send``, 500 at a time."""
    for begin in range(0, jobs, 500):
        await asyncio.gather(*(send() for _ in range(min(500, jobs - begin))))


async def time_each(
    jobs: int, one: Callable[[], Awaitable[object]]
) -> list[float]:
    """Run ``jobs`` jobs one after another with ``one`` (enqueue, then
    wait for the result); each one's end-to-end time (ms)."""
    out = []
    for _ in range(jobs + WARM_UP):
        started = time.perf_counter()
        await one()
        out.append((time.perf_counter() - started) * 1000)
    return out[WARM_UP:]


def time_each_sync(jobs: int, one: Callable[[], object]) -> list[float]:
    """`time_each` for a blocking client."""
    out = []
    for _ in range(jobs + WARM_UP):
        started = time.perf_counter()
        one()
        out.append((time.perf_counter() - started) * 1000)
    return out[WARM_UP:]


def drain_rate(
    done: Callable[[], int], jobs: int, timeout: float = 600
) -> float:
    """Jobs per second a just-started worker finishes from a filled
    queue, ``done()`` counting the jobs finished so far (B2 and B8).

    Timed from the first finished job to the last, so a worker's start-up
    does not count.
    """
    deadline = time.monotonic() + timeout
    while not (finished := done()):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker finished no job")
        time.sleep(0.002)
    first, done_at_first = time.perf_counter(), finished
    while (finished := done()) < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker finished {finished} of {jobs}")
        time.sleep(0.002)
    return (jobs - done_at_first) / (time.perf_counter() - first)


def counted(client: Redis) -> Callable[[], int]:
    """How many counting no-ops have finished (`count_async`)."""
    return lambda: int(client.get(COUNTER) or 0)


@dataclass
class Peer:
    """One system under test.

    ``worker`` is the command that starts one worker process with
    concurrency 10 (run in this directory); ``fill`` enqueues that many
    counting no-ops; ``latencies`` runs that many jobs one after another
    with the system's own client and answers each end-to-end time (ms).
    """

    name: str
    worker: list[str]
    fill: Callable[[int], None]
    latencies: Callable[[int], list[float]]


def _die_with_parent() -> None:
    """In the worker's process before it runs: SIGTERM when this driver
    dies, however it dies (what `phaser.embedded.die_with_parent` does;
    a peer's environment has no phaser to import it from)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(peer: Peer) -> int:
    parser = argparse.ArgumentParser(description=f"B8: {peer.name}")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency", type=int, default=200)
    args = parser.parse_args()
    client = Redis.from_url(URL)
    client.delete(COUNTER)
    memory_before = int(client.info("memory")["used_memory"])
    peer.fill(args.jobs)
    log = Path(os.environ.get("PEER_LOG", os.devnull))
    with log.open("ab") as output:
        worker = subprocess.Popen(
            peer.worker,
            cwd=HERE,
            env={**os.environ, "PYTHONPATH": str(HERE)},
            stdout=output,
            stderr=output,
            preexec_fn=_die_with_parent,
        )
    try:
        rate = drain_rate(counted(client), args.jobs)
        # What is left once every job has ended: results, records.
        time.sleep(0.2)
        kept = int(client.info("memory")["used_memory"]) - memory_before
        keys = int(client.dbsize())
        latencies = peer.latencies(args.latency)
    finally:
        _stop(worker)
    json.dump(
        {
            "rate": rate,
            "latencies_ms": latencies,
            "bytes_per_job": kept / args.jobs,
            "keys": keys,
        },
        sys.stdout,
    )
    return 0
