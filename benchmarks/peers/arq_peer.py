"""B8: raw arq (the queue phaser is built on), JSON payloads, uvloop; one
worker process, ``max_jobs`` 10. arq polls: the worker's queue and the
client's result every 5 ms here (arq's defaults are 0.5 s; B3 measures
those)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, ClassVar

import uvloop
from arq.connections import ArqRedis, RedisSettings
from peer_common import URL, Peer, count_async, main, send_all, time_each
from redis.asyncio import ConnectionPool

uvloop.install()


async def count(ctx: dict[str, Any]) -> None:
    await count_async()


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _loads(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(data)
    return value


class WorkerSettings:
    functions: ClassVar[list[Any]] = [count]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = 10
    poll_delay = 0.005
    job_serializer = staticmethod(_dumps)
    job_deserializer = staticmethod(_loads)


def _client() -> ArqRedis:
    return ArqRedis(
        pool_or_conn=ConnectionPool.from_url(URL),
        job_serializer=_dumps,
        job_deserializer=_loads,
    )


async def _fill_async(jobs: int) -> None:
    arq = _client()
    try:
        await send_all(jobs, lambda: arq.enqueue_job("count"))
    finally:
        await arq.aclose()


async def _latencies_async(jobs: int) -> list[float]:
    arq = _client()

    async def one() -> None:
        job = await arq.enqueue_job("count")
        assert job is not None
        await job.result(timeout=30, poll_delay=0.005)

    try:
        return await time_each(jobs, one)
    finally:
        await arq.aclose()


PEER = Peer(
    name="arq",
    worker=[sys.executable, "-m", "arq", "arq_peer.WorkerSettings"],
    fill=lambda jobs: asyncio.run(_fill_async(jobs)),
    latencies=lambda jobs: asyncio.run(_latencies_async(jobs)),
)

if __name__ == "__main__":
    sys.exit(main(PEER))
