"""Waiting for jobs: long polls and event streams.

Waits are woken by the job's events (`phaser.storage.events`), never by
polling, and re-read the job with the other waiters of the same moment
(`JobStore.get_batched`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from ..config import Settings
from ..metrics import OPEN_WAITS
from ..models.caller import Caller
from ..models.errors import (
    JobNotFoundError,
    PhaseConflictError,
    SyncTimeoutError,
)
from ..models.job import Job
from ..models.phase import (
    ACTIVE_PHASES,
    FINAL_PHASES,
    SUCCEEDED,
    ExecutionPhase,
)
from ..storage.events import (
    EventHub,
    EventQueue,
    JobEvent,
    ended_job,
    next_event,
)
from ..storage.job_store import JobStore
from .jobs import JobService

__all__ = ["JobWaiter"]

_logger = structlog.get_logger("phaser.sync")

#: Keep-alive interval of event streams, so proxies keep them open.
_KEEPALIVE = 15.0


class JobWaiter:
    """Long polls and event streams of jobs.

    Parameters
    ----------
    settings
        The longest wait.
    jobs
        Client operations (who may see which job).
    store
        Job store (batched re-reads).
    hub
        Event hub of this process.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        jobs: JobService,
        store: JobStore,
        hub: EventHub,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._store = store
        self._hub = hub

    @property
    def max_wait(self) -> float:
        """The longest a wait may last, in seconds."""
        return float(self._settings.max_wait)

    async def wait(
        self,
        caller: Caller,
        job_id: str,
        timeout: float,
        *,
        phase: ExecutionPhase | None = None,
        final: bool = False,
        children: bool = False,
    ) -> Job:
        """The job once its phase changes (with ``final``: once it has
        ended; with ``children``: once none of its children is pending
        or running), or after ``timeout`` seconds.

        Blocks only while the job is PENDING, QUEUED or EXECUTING (and, with
        ``phase``, only while it is in that phase; with ``children``, only
        while one of its children is). The wait is capped by the
        configured maximum and woken by the job's events (a child's
        changes publish one on its parent), never by polling.

        Raises
        ------
        JobNotFoundError
            No such job, or it was deleted while waiting.
        """
        timeout = min(max(timeout, 0), self._settings.max_wait)
        deadline = asyncio.get_running_loop().time() + timeout
        with OPEN_WAITS.labels("wait").track_inprogress():
            return await self._wait(
                caller, job_id, deadline, _Until(phase, final, children)
            )

    async def _wait(
        self, caller: Caller, job_id: str, deadline: float, until: _Until
    ) -> Job:
        loop = asyncio.get_running_loop()
        # Subscribe before reading, so no event can slip in between.
        async with self._hub.subscribe(job_id) as events:
            job = await self._jobs.get(caller, job_id)
            holds = until.holds(job)
            goes_on = until.goes_on(job)
            # Whether events since the last read changed the job in ways
            # the wait does not end on (progress, a phase it waits
            # through): read again before answering, unless the answer
            # comes from a read after them anyway.
            stale = False
            while holds(job):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                event = await next_event(events, remaining)
                if event is None:
                    break
                if goes_on(event):
                    # No read for a change the wait goes on through: a job
                    # waited for until its end is not read again when it
                    # starts executing, only when the event of its end
                    # comes (one Redis round trip fewer on the way).
                    stale = True
                    continue
                job = ended_job(event) or await self._reread(job)
                stale = False
                if event.kind == "closing":
                    break
            if stale:
                job = await self._reread(job)
            return job

    async def finish_sync(self, caller: Caller, job: Job, instead: str) -> Job:
        """A synchronous request's job once it has ended.

        Waits up to the sync timeout (``PHASER_SYNC_TIMEOUT``), then aborts
        the job. If the waiting is cancelled (the client went away), the
        job is aborted too: nobody is left to receive its result.

        Parameters
        ----------
        instead
            What the client should use for jobs this long (named in the
            timeout's message).

        Raises
        ------
        SyncTimeoutError
            The job did not end in time, and was aborted.
        JobNotFoundError
            The job was deleted meanwhile.
        """
        loop = asyncio.get_running_loop()
        timeout = self._settings.sync_timeout
        deadline = loop.time() + timeout
        try:
            while job.is_active:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    job = await self._jobs.abort(
                        caller, job.id, strict=False, by_limit=True
                    )
                    if job.phase is SUCCEEDED:  # it ended just in time
                        return job
                    raise SyncTimeoutError(
                        f"Job {job.id} did not finish within the sync"
                        f" timeout of {timeout} s and was aborted; for"
                        f" longer jobs use the asynchronous endpoint"
                        f" {instead}"
                    )
                job = await self.wait(caller, job.id, remaining, final=True)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(caller, job.id))
            raise
        return job

    async def _abandon(self, caller: Caller, job_id: str) -> None:
        """Abort a job whose synchronous client went away."""
        try:
            await self._jobs.abort(caller, job_id, strict=False)
        except (JobNotFoundError, PhaseConflictError, RedisError) as exc:
            _logger.warning(
                "Abandoned sync job not aborted", job_id=job_id, error=str(exc)
            )
        else:
            _logger.info("Sync client went away: job aborted", job_id=job_id)

    async def _reread(self, job: Job) -> Job:
        """A waiter's job read again after an event, batched with the other
        waiters' reads (see `JobStore.get_batched`).

        Raises
        ------
        JobNotFoundError
            The job was deleted meanwhile.
        """
        current = await self._store.get_batched(job.id)
        if current is None:
            raise JobNotFoundError(job.id)
        return current

    async def watch(
        self, caller: Caller, job_id: str
    ) -> AsyncGenerator[tuple[str, Job | None], None]:
        """Changes of a job: ``(kind, job)`` pairs until it has ended.

        The first pair is ``("job", job)``; then ``("phase", job)`` and
        ``("progress", job)`` as they happen, ``("deleted", None)`` if the job
        is deleted, and ``("keepalive", None)`` when nothing happened for a
        while. The stream ends after a final phase.

        Raises
        ------
        JobNotFoundError
            No such job (raised before the first pair).
        """
        async with self._hub.subscribe(job_id) as events:
            job = await self._jobs.get(caller, job_id)
            OPEN_WAITS.labels("events").inc()
            try:
                async for change in self._changes(job, events):
                    yield change
            finally:
                OPEN_WAITS.labels("events").dec()

    async def _changes(
        self, job: Job, events: EventQueue
    ) -> AsyncGenerator[tuple[str, Job | None], None]:
        """`watch`, once subscribed and the job read."""
        yield "job", job
        while job.phase not in FINAL_PHASES:
            event = await next_event(events, _KEEPALIVE)
            if event is None:
                yield "keepalive", None
                continue
            if event.kind == "closing":
                return
            current = ended_job(event)
            if current is None:
                current = await self._store.get_batched(job.id)
            if current is None:
                yield "deleted", None
                return
            if current.phase != job.phase:
                yield "phase", current
            elif _reported(job) != _reported(current):
                yield "progress", current
            job = current


@dataclass(frozen=True, slots=True)
class _Until:
    """What a long poll waits for."""

    phase: ExecutionPhase | None
    final: bool
    children: bool

    def holds(self, first: Job) -> Callable[[Job], bool]:
        """Whether the wait goes on, for a job first read as ``first``."""
        if self.children:
            return _children_active
        if not first.is_active or self.phase not in (None, first.phase):
            return lambda _: False
        if self.final:
            return lambda job: job.is_active
        return lambda job: job.phase == first.phase

    def goes_on(self, first: Job) -> Callable[[JobEvent], bool]:
        """Whether an event shows by itself that the wait goes on, for a
        job first read as ``first``: progress and results, and a change
        to a phase the wait waits through. Anything else, and events
        that do not name the new phase, need the job read again."""
        through: frozenset[str] = frozenset()
        if self.children or self.phase not in (None, first.phase):
            pass  # a parent's counts, or a wait that ends at once
        elif self.final:
            through = _ACTIVE_NAMES
        else:
            through = frozenset({first.phase.value})
        return lambda event: (
            event.kind in _QUIET
            or (event.kind == "phase" and event.phase in through)
        )


#: Events that change no phase (a wait ends only on phases).
_QUIET = frozenset({"progress", "result"})

#: The phases a job may still leave by itself, as events name them.
_ACTIVE_NAMES = frozenset(phase.value for phase in ACTIVE_PHASES)


def _children_active(job: Job) -> bool:
    """Whether any of a parent's children is still to end."""
    counts = job.child_counts
    return counts is not None and counts["pending"] + counts["running"] > 0


def _reported(job: Job) -> tuple[object, ...]:
    """What a running job's event stream tells of besides its phase: the
    task's progress, results, messages and say on aborts, and a parent's
    children."""
    return (
        job.progress,
        job.results,
        job.info,
        job.warnings,
        job.no_abort,
        job.children,
    )
