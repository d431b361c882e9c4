"""B8: taskiq with taskiq-redis' stream broker (acknowledged deliveries)
and its Redis result backend; one worker process, 10 tasks at once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from peer_common import URL, Peer, count_async, main, send_all, time_each
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

broker = RedisStreamBroker(URL).with_result_backend(
    RedisAsyncResultBackend(URL)
)


@broker.task(task_name="count")
async def count() -> None:
    await count_async()


async def _fill_async(jobs: int) -> None:
    await broker.startup()  # declares the stream's consumer group
    try:
        await send_all(jobs, count.kiq)
    finally:
        await broker.shutdown()


async def _one() -> None:
    task = await count.kiq()
    # taskiq polls for the result; 5 ms, not its default 0.2 s.
    await task.wait_result(check_interval=0.005, timeout=30)


async def _latencies_async(jobs: int) -> list[float]:
    await broker.startup()
    try:
        return await time_each(jobs, _one)
    finally:
        await broker.shutdown()


PEER = Peer(
    name="taskiq",
    worker=[
        str(Path(sys.executable).with_name("taskiq")),
        *("worker", "taskiq_peer:broker", "--workers", "1"),
        *("--max-async-tasks", "10", "--log-level", "WARNING"),
    ],
    fill=lambda jobs: asyncio.run(_fill_async(jobs)),
    latencies=lambda jobs: asyncio.run(_latencies_async(jobs)),
)

if __name__ == "__main__":
    sys.exit(main(PEER))
