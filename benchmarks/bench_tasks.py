"""Tasks for the benchmarks."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis as AsyncRedis

from phaser.tasks import TaskContext, task


class QuietParameters(BaseModel):
    seconds: float = 1.0


@task("quiet", parameters=QuietParameters)
async def quiet(params: QuietParameters, ctx: TaskContext) -> None:
    """Sleep without reporting progress (no events until the end)."""
    await asyncio.sleep(params.seconds)


_counter: AsyncRedis | None = None


@task("count", parameters=None)
async def count(params: dict[str, Any], ctx: TaskContext) -> None:
    """B8's no-op: increment a counter in the Redis named by
    ``BENCH_COUNTER_URL``, as every system's no-op in B8 does."""
    global _counter
    if _counter is None:
        _counter = AsyncRedis.from_url(os.environ["BENCH_COUNTER_URL"])
    await _counter.incr("bench:done")
