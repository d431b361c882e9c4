"""Task contexts: how a running task reports progress and results.

Both contexts turn a task's calls into `Update` values. The in-process
context (``async def`` tasks) puts them on a queue that the runner drains;
the child-process context (``def`` tasks) writes them as JSON lines to the
parent, which puts them on the same kind of queue.
"""

from __future__ import annotations

import asyncio
import json
import math
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..models.job import ErrorCode, ErrorType, JobError, JobResult, Progress
from ..storage.results import RESULT_ID_PATTERN, ResultStore
from ..tasks.context import ResultData, TaskError, TransientError

__all__ = [
    "BaseTaskContext",
    "Failure",
    "Level",
    "LocalTaskContext",
    "NotAbortable",
    "Update",
    "check_percent",
    "failure_of",
    "store_result",
]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed, whether another attempt may help, and what
    failed (`ErrorCode`: the task refused what it was asked with a
    `TaskError`, broke, or an upload could not be fetched)."""

    message: str
    transient: bool
    code: ErrorCode = ErrorCode.TASK_ERROR

    @property
    def error(self) -> JobError:
        """The job's error for this failure."""
        kind = ErrorType.TRANSIENT if self.transient else ErrorType.FATAL
        return JobError(kind, self.message, code=self.code)


def failure_of(exc: Exception) -> Failure:
    """What a task's exception means for its job, in both kinds of task:
    a `TaskError` is the task's own message (a `TransientError` asks for a
    retry); anything else is a fatal failure named by its type."""
    if isinstance(exc, TaskError):
        return Failure(str(exc), isinstance(exc, TransientError))
    return Failure(
        f"{type(exc).__name__}: {exc}", False, code=ErrorCode.TASK_FAILED
    )


#: A message's level (``ctx.info``, ``ctx.warning``).
Level = Literal["info", "warnings"]


@dataclass(frozen=True, slots=True)
class Update:
    """One change a task asks for: new progress, a new result, a message
    (``level``, ``text``), or whether it may be aborted now
    (``no_abort``: the reason it may not, ``""`` for "it may again")."""

    progress: Progress | None = None
    result: JobResult | None = None
    level: Level | None = None
    text: str = ""
    no_abort: str | None = None
    #: Set once the update is in the job record (in-process tasks only).
    written: asyncio.Future[None] | None = field(default=None, compare=False)

    def to_message(self) -> dict[str, Any]:
        """The update as a JSON message (child process → worker)."""
        if self.result is not None:
            result = self.result
            return {
                "type": "result",
                "id": result.id,
                "size": result.size,
                "mime_type": result.mime_type,
                "key": result.key,
            }
        if self.level is not None:
            return {"type": "message", "level": self.level, "text": self.text}
        if self.no_abort is not None:
            return {"type": "abortable", "reason": self.no_abort}
        progress = self.progress or Progress()
        return {
            "type": "progress",
            "percent": progress.percent,
            "message": progress.message,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Update:
        """The update a `to_message` message describes."""
        match message["type"]:
            case "result":
                return cls(
                    result=JobResult(
                        id=message["id"],
                        size=int(message["size"]),
                        mime_type=message["mime_type"],
                        key=message["key"],
                    )
                )
            case "message":
                level: Level = (
                    "warnings" if message["level"] == "warnings" else "info"
                )
                return cls(level=level, text=str(message["text"]))
            case "abortable":
                return cls(no_abort=str(message["reason"]))
        return cls(progress=Progress(message["percent"], message["message"]))


class NotAbortable:
    """``with ctx.not_abortable(reason):`` — while inside, a client's
    abort (and DELETE) of the job is refused with ``reason``.

    Entering tells the worker, which records it in the job (in order with
    the task's other updates, within milliseconds); ``async with``, in an
    ``async def`` task, returns only once it is recorded. Execution
    duration limits and destruction still stop the job.
    """

    def __init__(self, ctx: BaseTaskContext, reason: str) -> None:
        self._ctx = ctx
        self._reason = reason.strip() or "the task said so"

    def __enter__(self) -> None:
        self._ctx.emit(Update(no_abort=self._reason))

    def __exit__(self, *exc: object) -> None:
        self._ctx.emit(Update(no_abort=""))

    async def __aenter__(self) -> None:
        written = asyncio.get_running_loop().create_future()
        self._ctx.emit(Update(no_abort=self._reason, written=written))
        await written

    async def __aexit__(self, *exc: object) -> None:
        self._ctx.emit(Update(no_abort=""))


def store_result(
    store: ResultStore,
    job_id: str,
    *,
    attempt: int,
    data: ResultData | dict[str, object] | list[object],
    result_id: str,
    mime_type: str | None,
) -> JobResult:
    """Put a task's result data into the result store.

    Each attempt writes its own files (``{attempt}-{result_id}``), so an
    attempt that lost its claim (a worker that was presumed dead) cannot
    overwrite the bytes the record of a later attempt points to.

    Raises
    ------
    ValueError
        The result id is not acceptable.
    """
    if not RESULT_ID_PATTERN.match(result_id):
        raise ValueError(f"invalid result id {result_id!r}")
    name = f"{attempt}-{result_id}"
    match data:
        case bytes():
            stored = store.put_bytes(job_id, name, data)
            mime = mime_type or "application/octet-stream"
        case str():
            stored = store.put_bytes(job_id, name, data.encode())
            mime = mime_type or "text/plain; charset=utf-8"
        case Path():
            guessed = mimetypes.guess_type(data.name)[0]
            stored = store.put_file(job_id, name, data, move=True)
            mime = mime_type or guessed or "application/octet-stream"
        case dict() | list():
            # No NaN or infinities: they would not be JSON (ValueError).
            text = json.dumps(data, sort_keys=True, allow_nan=False)
            stored = store.put_bytes(job_id, name, text.encode())
            mime = mime_type or "application/json"
        case _:
            raise TypeError(
                f"a result must be bytes, str, a Path or JSON data, not"
                f" {type(data).__name__}"
            )
    return JobResult(
        id=result_id, size=stored.size, mime_type=mime, key=stored.key
    )


def check_percent(percent: float | None) -> float | None:
    """Clamp a progress percentage into 0–100 (`None` for no number)."""
    if percent is None:
        return None
    value = float(percent)
    if math.isnan(value):
        return None
    return max(0.0, min(100.0, value))


class BaseTaskContext:
    """What both contexts share; subclasses say where updates go.

    Parameters
    ----------
    job_id
        The job.
    attempt
        Attempt number.
    store
        Result store the results go to.
    scratch_dir
        Private temporary directory.
    uploads
        The local files of the job's uploads, by name.
    """

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        store: ResultStore,
        scratch_dir: Path,
        uploads: dict[str, Path] | None = None,
    ) -> None:
        self._job_id = job_id
        self._attempt = attempt
        self._store = store
        self._scratch_dir = scratch_dir
        self._scratch_handed_out = False
        self.uploads: dict[str, Path] = uploads or {}

    @property
    def job_id(self) -> str:
        """Id of the job being run."""
        return self._job_id

    @property
    def attempt(self) -> int:
        """Attempt number, from 1."""
        return self._attempt

    @property
    def scratch_dir(self) -> Path:
        """A private directory for temporary files, made on first use (most
        tasks never ask, and an unused directory costs two file system
        round trips per job)."""
        self._scratch_handed_out = True
        if not self._scratch_dir.is_dir():
            self._scratch_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self._scratch_dir, 0o700)
        return self._scratch_dir

    @property
    def scratch_path(self) -> Path:
        """Where the scratch directory is (made or not)."""
        self._scratch_handed_out = True
        return self._scratch_dir

    @property
    def scratch_maybe_made(self) -> bool:
        """Whether anyone was told where the scratch directory is (the
        task, a child process, the uploads): if not, there is none to
        remove and no need to look."""
        return self._scratch_handed_out

    @property
    def aborted(self) -> bool:
        """Whether the job is being aborted (or timed out)."""
        return False

    def progress(
        self, percent: float | None = None, message: str | None = None
    ) -> None:
        """Report progress."""
        update = Progress(percent=check_percent(percent), message=message)
        self.emit(Update(progress=update))

    def info(self, text: str) -> None:
        """Add a line to the job's ``info`` messages."""
        self.emit(Update(level="info", text=str(text)))

    def warning(self, text: str) -> None:
        """Add a line to the job's ``warnings``."""
        self.emit(Update(level="warnings", text=str(text)))

    def not_abortable(self, reason: str) -> NotAbortable:
        """A ``with`` (or ``async with``) block in which a client's abort
        of the job is refused with ``reason``."""
        return NotAbortable(self, str(reason))

    def add_result(
        self,
        data: ResultData,
        *,
        result_id: str = "result",
        mime_type: str | None = None,
    ) -> None:
        """Store a result."""
        stored = self.store(data, result_id=result_id, mime_type=mime_type)
        self.emit(Update(result=stored))

    def store(
        self,
        data: ResultData,
        *,
        result_id: str = "result",
        mime_type: str | None = None,
    ) -> JobResult:
        """Put result data into the result store (`store_result`),
        without reporting it yet (safe in a thread)."""
        return store_result(
            self._store,
            self._job_id,
            attempt=self._attempt,
            data=data,
            result_id=result_id,
            mime_type=mime_type,
        )

    def emit(self, update: Update) -> None:
        """Hand an update towards the job record."""
        raise NotImplementedError


class LocalTaskContext(BaseTaskContext):
    """The context of an ``async def`` task, running on the worker loop.

    Updates go to ``updates`` (the supervisor's pump, which writes them
    into the job record in order).
    """

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        store: ResultStore,
        scratch_dir: Path,
        updates: Callable[[Update], None],
    ) -> None:
        super().__init__(
            job_id=job_id,
            attempt=attempt,
            store=store,
            scratch_dir=scratch_dir,
        )
        self.updates = updates
        self.aborting = False
        #: The task's process (a ``def`` task's), once started.
        self.child_pid: int | None = None
        #: Whether the job is suspended (its process is stopped).
        self.suspended = False

    @property
    def aborted(self) -> bool:
        """Whether the job is being aborted (or timed out)."""
        return self.aborting

    def emit(self, update: Update) -> None:
        """Hand the update to the supervisor."""
        self.updates(update)
