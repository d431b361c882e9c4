"""Sending jobs to the queue: at their priority, after their
concurrency admission, deferred through the start schedule, again when a
queue entry was lost or a worker could not run it."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from ..clock import now
from ..config import Settings
from ..models.job import Job
from ..models.phase import WAITING
from ..queue import JobQueue, QueueEntry
from ..storage.job_store import JobStore
from ..storage.transitions import Changed

__all__ = ["Sending"]


class _Carried(TypedDict):
    """What a job's queue entries carry, and where they go."""

    task: str
    owner: str | None
    queue: str
    priority: int
    trace: str | None


class Sending:
    """Puts attempts of jobs on the queue.

    Parameters
    ----------
    settings
        Queue names.
    store
        Job store (schedules, limits, the resend transition).
    queue
        Queue to the workers.
    """

    def __init__(
        self, *, settings: Settings, store: JobStore, queue: JobQueue
    ) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue

    async def send(
        self, job: Job, attempt: int, *, defer: float | None = None
    ) -> None:
        """Queue an attempt on the job's queue (the one it was created
        for), at the job's priority. One ``defer`` seconds later goes to
        the start schedule first (queue scores are priorities, not times:
        see `phaser.queue`) and is queued when due (`send_due`). A job
        with concurrency limits is sent only once admitted: otherwise it
        waits, QUEUED, until a job of its group leaves
        (`phaser.storage.limits`)."""
        if job.limits and not await self._store.limits.admit(
            job.id, self._queue.score(job.priority)
        ):
            return
        if defer:
            await self._store.schedules.defer(
                job.id, now() + timedelta(seconds=defer)
            )
            return
        await self._enqueue(job, attempt)

    async def send_due(self, job: Job) -> bool:
        """Queue a QUEUED job whose deferred send is due, once: the worker
        that takes the schedule entry sends it. Returns whether this one
        did."""
        if not await self._store.schedules.take("scheduled", job.id):
            return False
        await self.send(job, job.attempts)
        return True

    def _queue_of(self, job: Job) -> str:
        return job.queue or self._settings.queue_of(job.task)

    async def send_admitted(self, ids: list[str]) -> int:
        """Queue jobs just admitted to their concurrency groups (see
        `Followers`). Returns how many were still QUEUED."""
        sent = 0
        for job in await self._store.get_many(ids):
            if job.phase is WAITING:
                await self._enqueue(job, job.attempts)
                sent += 1
        return sent

    def entry(self, job: Job, attempt: int) -> QueueEntry | None:
        """The queue entry `send` would write for an attempt of a job
        with no concurrency limits, for its creation to write in the
        same step; `None` for a job with limits (admitted first)."""
        if job.limits:
            return None
        return self._queue.entry(job.id, attempt, **self._carried(job))

    async def _enqueue(self, job: Job, attempt: int) -> None:
        await self._queue.enqueue(
            self._queue.entry(job.id, attempt, **self._carried(job))
        )

    def _carried(self, job: Job) -> _Carried:
        return {
            "task": job.task,
            "owner": job.owner,
            "queue": self._queue_of(job),
            "priority": job.priority,
            "trace": job.trace,
        }

    async def hand_back(
        self, job: Job, *, attempt: int, defer: float | None = None
    ) -> bool:
        """Send a QUEUED job's attempt ``attempt`` back to the queue as the
        next attempt, unless someone has moved the job on meanwhile.

        Also for a worker that took an attempt of a task it does not know
        (a rolling deploy that adds a task; pools with different task
        modules): the job waits for a worker that does, instead of failing.
        """
        outcome = await self._store.transitions.resend(job, attempt=attempt)
        if isinstance(outcome, Changed):
            await self.send(outcome.job, attempt + 1, defer=defer)
            return True
        return False

    async def resend(self, job: Job) -> bool:
        """Queue a QUEUED job again if its queue entry is gone.

        The entry can be lost when Redis goes away between the QUEUED write
        and the queue write, or when a worker took the entry and failed
        before claiming the job. The job is sent as a new attempt, so arq's
        leftovers of the old one can neither block nor run it. Returns
        whether the job was sent again.
        """
        if await self._store.schedules.holds("scheduled", job.id):
            return False  # a deferred send (a retry's backoff) is due later
        if job.limits and await self._store.limits.is_waiting(
            job.id, job.limits
        ):
            return False  # waits for room in a concurrency group
        if await self._queue.is_waiting(
            job.id, job.attempts, queue=self._queue_of(job)
        ):
            return False
        return await self.hand_back(job, attempt=job.attempts)

    async def reprioritise(self, job: Job) -> None:
        """Move a queued job's entry to its place for its (new)
        priority."""
        await self._queue.reprioritise(
            job.id, job.attempts, job.priority, queue=self._queue_of(job)
        )
