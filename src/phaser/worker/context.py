"""Task contexts: how a running task reports progress and results.

Both contexts turn a task's calls into `Update` values. The in-process
context (``async def`` tasks) puts them on a queue that the runner drains;
the child-process context (``def`` tasks) writes them as JSON lines to the
parent, which puts them on the same kind of queue.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from ..models.job import JobResult, Progress
from ..storage.results import LocalResultStore
from ..tasks.context import ResultData

__all__ = ["LocalTaskContext", "Update", "check_percent", "store_result"]


@dataclass(frozen=True, slots=True)
class Update:
    """One change a task asks for: new progress or a new result."""

    progress: Progress | None = None
    result: JobResult | None = None


def store_result(
    store: LocalResultStore,
    job_id: str,
    *,
    data: ResultData | dict[str, object] | list[object],
    result_id: str,
    mime_type: str | None,
) -> JobResult:
    """Put a task's result data into the result store.

    Raises
    ------
    ValueError
        The result id is not acceptable.
    """
    match data:
        case bytes():
            stored = store.put_bytes(job_id, result_id, data)
            mime = mime_type or "application/octet-stream"
        case str():
            stored = store.put_bytes(job_id, result_id, data.encode())
            mime = mime_type or "text/plain; charset=utf-8"
        case Path():
            guessed = mimetypes.guess_type(data.name)[0]
            stored = store.put_file(job_id, result_id, data, move=True)
            mime = mime_type or guessed or "application/octet-stream"
        case dict() | list():
            text = json.dumps(data, sort_keys=True)
            stored = store.put_bytes(job_id, result_id, text.encode())
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
    """Clamp a progress percentage into 0–100."""
    if percent is None:
        return None
    return max(0.0, min(100.0, float(percent)))


class LocalTaskContext:
    """The context of an ``async def`` task, running on the worker loop.

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
    updates
        Queue the runner drains into the job record.
    """

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        store: LocalResultStore,
        scratch_dir: Path,
        updates: asyncio.Queue[Update],
    ) -> None:
        self._job_id = job_id
        self._attempt = attempt
        self._store = store
        self._scratch_dir = scratch_dir
        self._updates = updates
        self.aborting = False

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
        """A private directory for temporary files."""
        return self._scratch_dir

    @property
    def aborted(self) -> bool:
        """Whether the job is being aborted (or timed out)."""
        return self.aborting

    def progress(
        self, percent: float | None = None, message: str | None = None
    ) -> None:
        """Report progress."""
        update = Progress(percent=check_percent(percent), message=message)
        self._updates.put_nowait(Update(progress=update))

    def add_result(
        self,
        data: ResultData,
        *,
        result_id: str = "result",
        mime_type: str | None = None,
    ) -> None:
        """Store a result."""
        result = store_result(
            self._store,
            self._job_id,
            data=data,
            result_id=result_id,
            mime_type=mime_type,
        )
        self._updates.put_nowait(Update(result=result))
