"""What a running task sees: the context and the errors it may raise."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TypeAlias

__all__ = [
    "ResultData",
    "TaskContext",
    "TaskError",
    "TransientError",
    "Unabortable",
]

#: What a task may hand over as a result: bytes, text, or a file path.
ResultData: TypeAlias = bytes | str | Path


class TaskError(Exception):
    """The task failed; the job ends in ERROR with exactly this message.

    Any other exception also ends the job in ERROR, with the exception's
    type name before its message.
    """


class TransientError(TaskError):
    """The task failed for a reason that may go away: retry it.

    phaser re-queues the job with exponential backoff until the task's
    attempts are used up; then the job ends in ERROR with this message.
    """


class Unabortable(Protocol):
    """What `TaskContext.not_abortable` returns: a block for ``with`` or
    ``async with``."""

    def __enter__(self) -> None: ...

    def __exit__(self, *exc: object) -> None: ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(self, *exc: object) -> None: ...


class TaskContext(Protocol):
    """The interface a task uses to talk to phaser.

    The same methods work in ``async def`` tasks (run on the worker's event
    loop) and plain ``def`` tasks (run in a child process); they never block
    on the network.
    """

    @property
    def job_id(self) -> str:
        """Id of the job being run."""
        ...

    @property
    def attempt(self) -> int:
        """Attempt number, from 1."""
        ...

    @property
    def scratch_dir(self) -> Path:
        """A private directory for temporary files, removed afterwards."""
        ...

    @property
    def uploads(self) -> Mapping[str, Path]:
        """The files the job was given (uploaded, or fetched by reference
        before the task started), by name: local paths to read."""
        ...

    @property
    def aborted(self) -> bool:
        """Whether the job has been aborted or ran out of time.

        An ``async def`` task is cancelled at once on abort, so this is for
        clean-up code that catches the cancellation. A ``def`` task's
        process is killed, so it never sees this become true.
        """
        ...

    def progress(
        self, percent: float | None = None, message: str | None = None
    ) -> None:
        """Report progress (0–100) and/or a short message."""
        ...

    def info(self, text: str) -> None:
        """Add a line to the job's ``info`` messages (shown in the job,
        newest 50 kept, each up to 1,000 characters)."""
        ...

    def warning(self, text: str) -> None:
        """Add a line to the job's ``warnings`` (kept as ``info`` is)."""
        ...

    def not_abortable(self, reason: str) -> Unabortable:
        """A ``with`` block (``async with`` in an ``async def`` task, which
        also waits until it is recorded) in which clients cannot abort or
        delete the job: they are answered 409 (JSON) / 403 (UWS) with
        ``reason``. Its execution duration and destruction time still
        stop it."""
        ...

    def add_result(
        self,
        data: ResultData,
        *,
        result_id: str = "result",
        mime_type: str | None = None,
    ) -> None:
        """Store a result (``result`` is the main one).

        ``bytes`` default to ``application/octet-stream``, ``str`` to
        ``text/plain; charset=utf-8`` and a `~pathlib.Path` to a type
        guessed from its name. A file is moved into the result store.
        """
        ...
