"""B8: streaq (Redis streams); one worker process, concurrency 10."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from peer_common import URL, Peer, count_async, main, time_each
from streaq import Worker

worker = Worker(redis_url=URL, concurrency=10)


@worker.task(silent=True)
async def count() -> None:
    await count_async()


async def _fill_async(jobs: int) -> None:
    async with worker:
        for begin in range(0, jobs, 500):
            await worker.enqueue_many(
                [count.enqueue() for _ in range(min(500, jobs - begin))]
            )


async def _one() -> None:
    task = await count.enqueue()
    await task.result(timeout=30)


async def _latencies_async(jobs: int) -> list[float]:
    async with worker:
        return await time_each(jobs, _one)


PEER = Peer(
    name="streaq",
    worker=[
        str(Path(sys.executable).with_name("streaq")),
        *("run", "streaq_peer:worker"),
    ],
    fill=lambda jobs: asyncio.run(_fill_async(jobs)),
    latencies=lambda jobs: asyncio.run(_latencies_async(jobs)),
)

if __name__ == "__main__":
    sys.exit(main(PEER))
