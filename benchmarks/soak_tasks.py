"""Tasks for the soak and scale-out runs: they count their executions on
disk, one line per finished run: the job id and the worker's process id."""

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
        os.write(fd, f"{ctx.job_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return "ok"


def finished_runs(directory: Path) -> list[tuple[str, int]]:
    """Every finished run on record: (job id, worker process id)."""
    runs = []
    for line in (directory / "finished").read_text().splitlines():
        job_id, pid = line.split()
        runs.append((job_id, int(pid)))
    return runs
