"""Suspending a running job: its process stopped and continued, and its
execution duration counted only while it runs.

A client suspends an EXECUTING job (phase SUSPENDED); its worker's watcher
sees the change and stops the task's process group (``SIGSTOP``), and
continues it (``SIGCONT``) when the job is resumed. The time in between
does not count against the execution duration (`Budget`). A task that
runs on the event loop (``async def``) cannot be stopped: the frontend
refuses to suspend it, and a worker that finds one suspended anyway (a
frontend that did not know the task) resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ..models.job import Job
from ..models.phase import SUSPENDED
from .context import LocalTaskContext

__all__ = ["Budget", "follow_suspension"]


class Budget:
    """The execution duration left to a job, which stops while the job is
    suspended; `None` seconds for no limit."""

    def __init__(self, seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._end = self._clock() + seconds if seconds else None
        self._paused_at: float | None = None
        # Resolved when the clock stops or starts again (a future rather
        # than an event: `race` waits on it without a task of its own).
        self._changed: asyncio.Future[None] = loop.create_future()

    def _signal(self) -> None:
        if not self._changed.done():
            self._changed.set_result(None)

    def pause(self) -> None:
        """Stop the clock."""
        if self._paused_at is None:
            self._paused_at = self._clock()
            self._signal()

    def resume(self) -> None:
        """Start the clock again, where it stopped."""
        if self._paused_at is not None:
            if self._end is not None:
                self._end += self._clock() - self._paused_at
            self._paused_at = None
            self._signal()

    def left(self) -> float | None:
        """Seconds left; `None` while paused or without a limit."""
        if self._end is None or self._paused_at is not None:
            return None
        return max(0.0, self._end - self._clock())

    async def race(
        self, execution: asyncio.Task[Any], watcher: asyncio.Task[Any]
    ) -> Literal["execution", "watcher", "deadline"]:
        """Wait for the task to end, the watcher to give up the job, or
        the duration to run out (not counting suspended time)."""
        while True:
            if self._changed.done():
                self._changed = asyncio.get_running_loop().create_future()
            done, _ = await asyncio.wait(
                {execution, watcher, self._changed},
                timeout=self.left(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if execution in done:
                return "execution"
            if watcher in done:
                return "watcher"
            if self.left() == 0:
                return "deadline"


async def follow_suspension(
    job: Job,
    ctx: LocalTaskContext,
    budget: Budget,
    *,
    can_pause: bool,
    resume: Callable[[], Awaitable[object]],
) -> None:
    """Bring the task's process and clock in line with the job's phase
    (SUSPENDED or not); a task that cannot be paused is resumed."""
    suspended = job.phase is SUSPENDED
    if suspended == ctx.suspended:
        return
    if suspended and not can_pause:
        await resume()
        return
    ctx.suspended = suspended
    signal_group(
        ctx.child_pid, signal.SIGSTOP if suspended else signal.SIGCONT
    )
    if suspended:
        budget.pause()
    else:
        budget.resume()


def signal_group(pid: int | None, sig: signal.Signals) -> None:
    """Signal a task's process group (if it has started)."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
