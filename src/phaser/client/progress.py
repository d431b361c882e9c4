"""The progress display of a wait on a terminal (rich), or nothing."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..models.api import JobModel
from ..models.phase import SUCCEEDED

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """A live line: the job's phase, a bar of its percent, its message.

    Parameters
    ----------
    enabled
        Whether to show anything (only on a terminal).
    """

    def __init__(self, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]:<9}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[message]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def show(self, job: JobModel) -> None:
        """Show the job as it is now."""
        if self._progress is None:
            return
        percent = job.progress.percent or 0.0
        if job.phase == SUCCEEDED:
            percent = 100.0
        phase, message = job.phase.value, job.progress.message or ""
        if self._task is None:
            self._task = self._progress.add_task(
                job.id, total=100, phase=phase, message=message
            )
        self._progress.update(
            self._task, completed=percent, phase=phase, message=message
        )
