"""The raw-arq baselines: a no-op function run by a plain arq worker.

    ARQ_BASELINE_REDIS=redis://127.0.0.1:6379/1 ARQ_BASELINE_QUEUE=q \\
        python -m arq arq_baseline.WorkerSettings

Configured through the environment so that it runs as its own process with
arq's own command: ``ARQ_BASELINE_MAX_JOBS`` (concurrency),
``ARQ_BASELINE_POLL_DELAY`` (seconds, arq's default 0.5) and
``ARQ_BASELINE_KEEP_RESULT`` (seconds, arq's default 3600). Payloads are
JSON and the event loop is uvloop, as in phaser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import uvloop
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool

# The same event loop as phaser's worker, so the baseline is not handicapped
# by asyncio's slower default loop.
uvloop.install()


async def noop(ctx: dict[str, Any]) -> None:
    """Do nothing."""


def dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def loads(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(data)
    return value


def client(redis_url: str, queue: str) -> ArqRedis:
    """An arq client for the baseline's queue, with the same JSON payloads."""
    return ArqRedis(
        pool_or_conn=ConnectionPool.from_url(redis_url),
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=queue,
    )


def start_worker(
    redis_url: str, queue: str, *, poll_delay: float, keep_result: int
) -> subprocess.Popen[bytes]:
    """A plain arq worker process (``python -m arq``) on the baseline's
    queue, concurrency 10 as phaser's default."""
    return subprocess.Popen(
        [sys.executable, "-m", "arq", "arq_baseline.WorkerSettings"],
        cwd=Path(__file__).resolve().parent,
        env={
            **os.environ,
            "ARQ_BASELINE_REDIS": redis_url,
            "ARQ_BASELINE_QUEUE": queue,
            "ARQ_BASELINE_MAX_JOBS": "10",
            "ARQ_BASELINE_POLL_DELAY": str(poll_delay),
            "ARQ_BASELINE_KEEP_RESULT": str(keep_result),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class WorkerSettings:
    """arq worker settings from the environment."""

    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("ARQ_BASELINE_REDIS", "redis://127.0.0.1:6379/1")
    )
    queue_name = os.environ.get("ARQ_BASELINE_QUEUE", "arq:queue")
    max_jobs = int(os.environ.get("ARQ_BASELINE_MAX_JOBS", "10"))
    poll_delay = float(os.environ.get("ARQ_BASELINE_POLL_DELAY", "0.5"))
    keep_result = int(os.environ.get("ARQ_BASELINE_KEEP_RESULT", "3600"))
    job_serializer = staticmethod(dumps)
    job_deserializer = staticmethod(loads)
