"""Tasks for the benchmarks."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from phaser.tasks import TaskContext, task


class QuietParameters(BaseModel):
    seconds: float = 1.0


@task("quiet", parameters=QuietParameters)
async def quiet(params: QuietParameters, ctx: TaskContext) -> None:
    """Sleep without reporting progress (no events until the end)."""
    await asyncio.sleep(params.seconds)
