"""B8: SAQ on Redis; one worker process, concurrency 10."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from peer_common import URL, Peer, count_async, main, send_all, time_each
from saq import Queue

queue = Queue.from_url(URL)


async def count(ctx: dict[str, Any]) -> None:
    await count_async()


settings = {"queue": queue, "functions": [count], "concurrency": 10}


async def _fill_async(jobs: int) -> None:
    client = Queue.from_url(URL)
    await client.connect()
    try:
        await send_all(jobs, lambda: client.enqueue("count"))
    finally:
        await client.disconnect()


async def _latencies_async(jobs: int) -> list[float]:
    client = Queue.from_url(URL)
    await client.connect()
    try:
        # SAQ polls for the result; 5 ms, not its default 0.5 s.
        return await time_each(
            jobs,
            lambda: client.apply("count", timeout=30, poll_interval=0.005),
        )
    finally:
        await client.disconnect()


PEER = Peer(
    name="saq",
    worker=[
        str(Path(sys.executable).with_name("saq")),
        *("saq_peer.settings", "--workers", "1"),
    ],
    fill=lambda jobs: asyncio.run(_fill_async(jobs)),
    latencies=lambda jobs: asyncio.run(_latencies_async(jobs)),
)

if __name__ == "__main__":
    sys.exit(main(PEER))
