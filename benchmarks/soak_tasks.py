"""Tasks for the soak run: they count their executions on disk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel

from phaser.tasks import TaskContext, TransientError, task


class SoakParameters(BaseModel):
    directory: str
    seconds: float = 0.0
    fail: bool = False


@task("soak", parameters=SoakParameters)
async def soak(params: SoakParameters, ctx: TaskContext) -> str:
    """Sleep a little, maybe fail once, record that it finished."""
    await asyncio.sleep(params.seconds)
    if params.fail and ctx.attempt == 1:
        raise TransientError("first attempts fail")
    fd = os.open(
        Path(params.directory) / "finished",
        os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    )
    try:
        os.write(fd, f"{ctx.job_id}\n".encode())
    finally:
        os.close(fd)
    return "ok"
