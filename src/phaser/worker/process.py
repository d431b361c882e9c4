"""Running a ``def`` task in a child process of its own, which an abort or
a deadline can kill (with every process it started)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys

from ..models.job import ErrorCode, Job
from ..storage.results import ResultStore
from ..tasks.registry import Task
from .context import Failure, LocalTaskContext, Update

__all__ = ["run_in_child"]


async def run_in_child(
    task: Task,
    job: Job,
    ctx: LocalTaskContext,
    *,
    results: ResultStore,
    ping_interval: float,
    parent_timeout: float,
) -> Failure | None:
    """Run a ``def`` task in a child process that can be killed (cancel
    the call: the whole process group is killed). The child reports
    progress and results as lines on its stdout, which go to the updates
    of ``ctx`` (the context the child's stands in for);
    it hears from its worker every ``ping_interval`` and kills itself
    after ``parent_timeout`` of silence (see `phaser.worker.child`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "phaser.worker.child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    ctx.child_pid = process.pid
    if ctx.suspended:  # suspended before its process started
        os.killpg(process.pid, signal.SIGSTOP)
    request = {
        "task": task.name,
        "module": task.function.__module__,
        "job_id": job.id,
        "attempt": ctx.attempt,
        "parameters": job.parameters,
        "uploads": {name: str(path) for name, path in ctx.uploads.items()},
        "results": results.describe(),
        "scratch_dir": str(ctx.scratch_path),
        "parent_pid": os.getpid(),
        "parent_timeout": parent_timeout,
    }
    pinging: asyncio.Task[None] | None = None
    try:
        process.stdin.write(json.dumps(request).encode() + b"\n")
        await process.stdin.drain()
        pinging = asyncio.create_task(_ping(process.stdin, ping_interval))
        failure: Failure | None = None
        finished = False
        async for line in process.stdout:
            message = json.loads(line)
            match message["type"]:
                case "progress" | "result" | "message" | "abortable":
                    ctx.emit(Update.from_message(message))
                case "error":
                    failure = Failure(
                        message["message"],
                        message["transient"],
                        ErrorCode(message["code"]),
                    )
                    finished = True
                case "done":
                    finished = True
        code = await process.wait()
        if not finished:
            return Failure(
                f"task process exited with code {code}",
                False,
                ErrorCode.TASK_FAILED,
            )
        return failure
    finally:
        if pinging is not None:
            pinging.cancel()
        if process.returncode is None:
            # Cancelled (abort or deadline): kill the whole group.
            with contextlib.suppress(ProcessLookupError):
                _kill_group(process.pid)
            await process.wait()


async def _ping(stdin: asyncio.StreamWriter, interval: float) -> None:
    """Tell a task's child process that its worker is alive (see
    `phaser.worker.child`): a frozen worker stops pinging, and its
    child kills itself before recovery runs the job elsewhere."""
    with contextlib.suppress(OSError, RuntimeError):
        while True:
            await asyncio.sleep(interval)
            stdin.write(b"\n")
            await stdin.drain()


def _kill_group(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
