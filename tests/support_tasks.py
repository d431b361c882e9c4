"""Tasks used by the tests (loaded through PHASER_TASK_MODULES).

They leave evidence on disk that the tests read: which job ran how often,
which process ran it, whether it was cancelled.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from phaser.tasks import TaskContext, TaskError, Upload, task


class CountParameters(BaseModel):
    directory: str
    delay: float = 0.0


class BurnParameters(BaseModel):
    directory: str
    seconds: float = 30.0


class MarkParameters(BaseModel):
    directory: str
    seconds: float = 30.0


@task("count", parameters=CountParameters)
async def count(params: CountParameters, ctx: TaskContext) -> str:
    """Append the job id to an executions file when it starts, and to a
    finished file when it returns: once per execution each."""
    _append(_evidence(params.directory) / "executions", ctx.job_id)
    if params.delay:
        await asyncio.sleep(params.delay)
    _append(_evidence(params.directory) / "finished", ctx.job_id)
    return f"{ctx.job_id} attempt {ctx.attempt}"


def _evidence(directory: str) -> Path:
    """The directory a job leaves its evidence in: only under the system's
    temporary directory (the tests' ``tmp_path``), so that a fuzzer's
    ``"."`` or ``"/"`` cannot make the test servers write into the
    checkout or anywhere else."""
    path = Path(directory).resolve()
    if not path.is_relative_to(Path(tempfile.gettempdir()).resolve()):
        raise TaskError(f"evidence directory {directory!r} is not temporary")
    return path


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@task("burn", parameters=BurnParameters)
def burn(params: BurnParameters, ctx: TaskContext) -> str:
    """Spin the CPU in a child process, recording its pid first."""
    pidfile = _evidence(params.directory) / f"{ctx.job_id}.pid"
    pidfile.write_text(str(os.getpid()))
    ctx.progress(0, "burning")
    end = time.monotonic() + params.seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return f"burned {n}"


@task("mark", parameters=MarkParameters, max_execution_duration=40)
async def mark(params: MarkParameters, ctx: TaskContext) -> str:
    """Sleep; leave a file saying it was cancelled if it was."""
    ctx.add_result("partial", result_id="partial")
    started = _evidence(params.directory) / f"{ctx.job_id}.started"
    started.write_text("started")
    try:
        await asyncio.sleep(params.seconds)
    except asyncio.CancelledError:
        (_evidence(params.directory) / f"{ctx.job_id}.cancelled").write_text(
            "aborted" if ctx.aborted else "cancelled"
        )
        raise
    return "done"


class TickParameters(BaseModel):
    directory: str
    seconds: float = 30.0


@task("tick", parameters=TickParameters)
def tick(params: TickParameters, ctx: TaskContext) -> str:
    """Busy in a child process, appending ``attempt time`` to a file every
    20 ms: the lines of one attempt span the time it ran."""
    evidence = _evidence(params.directory)
    path = evidence / f"{ctx.job_id}.ticks"
    (evidence / f"{ctx.job_id}.{ctx.attempt}.pid").write_text(str(os.getpid()))
    end = time.monotonic() + params.seconds
    while time.monotonic() < end:
        _append(path, f"{ctx.attempt} {time.time():.6f}")
        spin = time.monotonic() + 0.02
        while time.monotonic() < spin:
            pass
    return "ticked"


#: Text no XML document can carry, and no UTF-8 either (a lone surrogate).
NASTY_TEXT = "bad \x00\x01\x0b\ufffe\uffff \ud800 end"


@task("nasty", parameters=None)
async def nasty(params: dict[str, object], ctx: TaskContext) -> None:
    """Report progress and fail with text XML cannot carry."""
    ctx.progress(50, NASTY_TEXT)
    await asyncio.sleep(0.05)
    raise TaskError(NASTY_TEXT)


@task("crash", parameters=None)
async def crash(params: dict[str, object], ctx: TaskContext) -> None:
    """Break: an exception that is not a `TaskError`."""
    raise RuntimeError("the task broke")


class RowsParameters(BaseModel):
    table: Upload


@task("rows", parameters=RowsParameters)
async def rows(params: RowsParameters, ctx: TaskContext) -> None:
    """Count the rows of an uploaded VOTable; the count as a VOTable."""
    from io import BytesIO

    from astropy.io.votable import parse_single_table
    from astropy.table import Table

    table = parse_single_table(str(params.table)).to_table()
    out = BytesIO()
    Table({"n_rows": [len(table)]}).write(out, format="votable")
    ctx.add_result(out.getvalue(), mime_type="application/x-votable+xml")


class LinesParameters(BaseModel):
    text: Upload
    label: str = "lines"


@task("lines", parameters=LinesParameters)
def lines(params: LinesParameters, ctx: TaskContext) -> str:
    """Count the lines of an uploaded file, in a child process; the names
    of every upload it sees in ``ctx.uploads`` too."""
    count = len(params.text.read_bytes().splitlines())
    return f"{params.label} {count} {sorted(ctx.uploads)}"


class SlotParameters(BaseModel):
    directory: str
    seconds: float = 0.1


async def _occupy(params: SlotParameters, ctx: TaskContext) -> str:
    """Record ``time start|end job`` around a sleep: the intervals in
    which the task held its slot."""
    evidence = _evidence(params.directory) / "slots"
    _append(evidence, f"{time.time():.6f} start {ctx.job_id}")
    await asyncio.sleep(params.seconds)
    _append(evidence, f"{time.time():.6f} end {ctx.job_id}")
    return "done"


@task("keyed", parameters=SlotParameters, key_limit=2)
async def keyed(params: SlotParameters, ctx: TaskContext) -> str:
    """At most two of one owner's jobs with one concurrency key run."""
    return await _occupy(params, ctx)


@task("exclusive", parameters=SlotParameters, max_running=2)
async def exclusive(params: SlotParameters, ctx: TaskContext) -> str:
    """At most two jobs of this task run, whoever owns them."""
    return await _occupy(params, ctx)


class BlobParameters(BaseModel):
    directory: str
    size: int = Field(0, ge=0, le=64 * 1024 * 1024)


@task("blob", parameters=BlobParameters)
def blob(params: BlobParameters, ctx: TaskContext) -> None:
    """Write ``size`` bytes (1 MiB at a time) to a file and store it as
    the result, in a child process; record the process's peak memory
    (VmHWM, kB) afterwards: storing must not have read the file whole."""
    evidence = _evidence(params.directory)
    path = ctx.scratch_dir / "blob.bin"
    chunk = bytes(range(256)) * 4096
    with path.open("wb") as out:
        left = params.size
        while left > 0:
            out.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    ctx.add_result(path, mime_type="application/octet-stream")
    status = Path("/proc/self/status").read_text()
    [peak] = [line for line in status.splitlines() if line.startswith("VmHWM")]
    (evidence / f"{ctx.job_id}.peak").write_text(peak.split()[1])


class ChattyParameters(BaseModel):
    directory: str
    info: int = 3
    #: Stay in a section that may not be aborted until a ``.release``
    #: file appears.
    locked: bool = False


@task("chatty", parameters=ChattyParameters, retain_after_end=3600)
async def chatty(params: ChattyParameters, ctx: TaskContext) -> str:
    """Log ``info`` lines and a warning; then, with ``locked``, wait in a
    section that may not be aborted until told to leave it."""
    evidence = _evidence(params.directory)
    for number in range(params.info):
        ctx.info(f"line {number}")
    ctx.warning("careful\x00 now")
    if params.locked:
        async with ctx.not_abortable("migrating step"):
            (evidence / f"{ctx.job_id}.locked").write_text("locked")
            # The test writes the file from another process: polled.
            while not (evidence / f"{ctx.job_id}.release").exists():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        (evidence / f"{ctx.job_id}.unlocked").write_text("unlocked")
        await asyncio.sleep(30)  # abortable again: the test aborts it
    return "said"


@task("chatty_process", parameters=ChattyParameters)
def chatty_process(params: ChattyParameters, ctx: TaskContext) -> str:
    """`chatty` as a ``def`` task (its updates cross the child's pipe)."""
    evidence = _evidence(params.directory)
    for number in range(params.info):
        ctx.info(f"line {number}")
    ctx.warning("careful\x00 now")
    if params.locked:
        with ctx.not_abortable("migrating step"):
            time.sleep(0.3)  # the worker records it meanwhile
            (evidence / f"{ctx.job_id}.locked").write_text("locked")
            while not (evidence / f"{ctx.job_id}.release").exists():
                time.sleep(0.02)
    return "said"
