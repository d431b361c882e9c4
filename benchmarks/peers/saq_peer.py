"""B8: SAQ on Redis; one worker process, concurrency 10."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from peer_common import URL, Peer, count_async, main
from saq import Queue

queue = Queue.from_url(URL)


async def count(ctx: dict[str, Any]) -> None:
    await count_async()


settings = {"queue": queue, "functions": [count], "concurrency": 10}


async def _fill_async(jobs: int) -> None:
    client = Queue.from_url(URL)
    await client.connect()
    try:
        for begin in range(0, jobs, 500):
            batch = min(500, jobs - begin)
            sends = (client.enqueue("count") for _ in range(batch))
            await asyncio.gather(*sends)
    finally:
        await client.disconnect()


async def _latencies_async(jobs: int) -> list[float]:
    client = Queue.from_url(URL)
    await client.connect()
    out = []
    try:
        for _ in range(jobs + 5):
            started = time.perf_counter()
            # SAQ polls for the result; 5 ms, not its default 0.5 s.
            await client.apply("count", timeout=30, poll_interval=0.005)
            out.append((time.perf_counter() - started) * 1000)
    finally:
        await client.disconnect()
    return out[5:]


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
