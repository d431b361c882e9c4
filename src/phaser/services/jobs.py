"""Client operations on jobs, for both dialects: create, read, list,
change, start, abort, delete, download.

Every rule a client meets lives here or in `phaser.services.checks`; the
changes themselves go through `phaser.services.lifecycle`, waiting through
`phaser.services.waiting`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import Settings
from ..models.caller import Caller
from ..models.errors import (
    JobNotFoundError,
    PhaseConflictError,
    ResultNotFoundError,
)
from ..models.job import Job, JobResult
from ..models.phase import (
    HELD,
    Action,
)
from ..storage.events import EventHub
from ..storage.job_store import JobStore
from ..storage.results import Download
from ..tasks.registry import Task, TaskRegistry
from .changes import JobChanges, changed
from .checks import JobChecks, JobUpdate
from .creation import CreatedJob, JobCreator, NewJob
from .ids import is_job_id
from .lifecycle import JobLifecycle
from .listing import JobFilters, JobPage, count_jobs, list_jobs
from .subscriptions import Subscriptions

__all__ = ["CreatedJob", "JobPage", "JobService", "JobUpdate", "NewJob"]


class JobService:
    """What clients do with jobs.

    Parameters
    ----------
    settings
        Limits and defaults.
    store
        Job store (creation and reads).
    lifecycle
        Every change after creation.
    hub
        Event hub of this process.
    registry
        Tasks.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        lifecycle: JobLifecycle,
        hub: EventHub,
        registry: TaskRegistry,
    ) -> None:
        self._settings = settings
        self._store = store
        self._lifecycle = lifecycle
        self._hub = hub
        self._registry = registry
        self._checks = JobChecks(settings)
        self._creator = JobCreator(
            settings=settings,
            store=store,
            lifecycle=lifecycle,
            registry=registry,
            checks=self._checks,
        )
        #: Standing webhook subscriptions.
        self.subscriptions = Subscriptions(
            settings=settings, store=store, registry=registry
        )
        self._changes = JobChanges(
            lifecycle=lifecycle,
            checks=self._checks,
            registry=registry,
            store=store,
        )

    def tasks(self) -> list[Task]:
        """The registered tasks, by name."""
        return list(self._registry)

    def task(self, name: str) -> Task:
        """The task of that name.

        Raises
        ------
        UnknownTaskError
            No such task.
        """
        return self._registry.get(name)

    @property
    def settings(self) -> Settings:
        """The limits clients meet (the OpenAPI document states them)."""
        return self._settings

    @property
    def hub(self) -> EventHub:
        """This process's event hub (live views subscribe to it)."""
        return self._hub

    async def stored(self, key: str) -> Download | None:
        """How to answer a download of a stored file (a result's, an
        upload's), if it is still there."""
        return await self._lifecycle.results.download(key)

    async def stored_head(self, key: str, limit: int) -> bytes | None:
        """The first bytes of a stored file, if it is still there."""
        return await self._lifecycle.results.peek(key, limit)

    async def create(self, caller: Caller, new: NewJob) -> CreatedJob:
        """Create a job (`phaser.services.creation.JobCreator.create`)."""
        return await self._creator.create(caller, new)

    async def get(self, caller: Caller, job_id: str) -> Job:
        """The job, if it exists and the caller may see it (its owner, or an
        admin).

        Raises
        ------
        JobNotFoundError
            No such job, or another owner's (indistinguishable).
        """
        job = await self._store.get(job_id) if is_job_id(job_id) else None
        if job is None or not _visible(caller, job):
            raise JobNotFoundError(job_id)
        return job

    async def peek(self, caller: Caller, job_id: str) -> Job | None:
        """`get` for live views: the read batched with the other live
        views' reads of the same moment (`JobStore.get_batched`), `None`
        where `get` raises (gone, or not the caller's)."""
        job = await self._store.get_batched(job_id)
        return job if job is not None and _visible(caller, job) else None

    async def list(
        self,
        caller: Caller,
        *,
        cursor: str | None = None,
        limit: int = 100,
        **filters: Any,
    ) -> JobPage:
        """The caller's jobs (an admin's: ``owner``'s), newest first, one
        page at a time; ``filters`` are `JobFilters`'s fields
        (`phaser.services.listing.list_jobs`)."""
        return await list_jobs(
            self._store,
            caller,
            JobFilters(**filters),
            cursor=cursor,
            limit=limit,
        )

    async def count(self, caller: Caller, **filters: Any) -> int | None:
        """How many jobs `list` would give over every page, where the
        indexes know (`phaser.services.listing.count_jobs`)."""
        return await count_jobs(self._store, caller, JobFilters(**filters))

    async def start(self, caller: Caller, job_id: str) -> Job:
        """Queue a pending job.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is not PENDING (or HELD).
        """
        job = await self.get(caller, job_id)
        return changed(job, await self._lifecycle.start(job), "start")

    async def hold(self, caller: Caller, job_id: str) -> Job:
        """Hold a pending or queued job back from the queue (HELD) until
        it is started again.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is not PENDING or QUEUED.
        """
        return await self.update(caller, job_id, JobUpdate(action=Action.HOLD))

    async def release(self, caller: Caller, job_id: str) -> Job:
        """Queue a held job (before its start time, if it has one).

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is not HELD.
        """
        job = await self.get(caller, job_id)
        if job.phase is not HELD:
            raise PhaseConflictError(
                f"Cannot release job {job.id} in phase {job.phase.value}"
            )
        return changed(job, await self._lifecycle.start(job), "release")

    async def abort(
        self,
        caller: Caller,
        job_id: str,
        *,
        strict: bool = True,
        by_limit: bool = False,
    ) -> Job:
        """Abort a pending, queued or running job.

        A running task is stopped by its worker, which is listening for the
        ABORTED event: async tasks are cancelled, process tasks killed.
        With ``strict`` unset (UWS), aborting a job that has ended is a
        no-op rather than a conflict.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job has already ended and ``strict`` is set.
        """
        return await self.update(
            caller,
            job_id,
            JobUpdate(action=Action.ABORT, strict=strict, by_limit=by_limit),
        )

    async def update(
        self, caller: Caller, job_id: str, update: JobUpdate
    ) -> Job:
        """Apply a client's changes to a job the caller may see, in one
        step, all or nothing: `JobChanges.apply` (which says what it
        raises), after `get` (`JobNotFoundError`)."""
        return await self._changes.apply(
            await self.get(caller, job_id), update
        )

    async def suspend(self, caller: Caller, job_id: str) -> Job:
        """Pause a running job of a ``def`` task (SUSPENDED): its worker
        stops its process, and its execution duration stops counting.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is not EXECUTING, or its task cannot be paused.
        """
        update = JobUpdate(action=Action.SUSPEND)
        return await self.update(caller, job_id, update)

    async def resume(self, caller: Caller, job_id: str) -> Job:
        """Let a suspended job go on; a suspended job whose worker stopped
        (now HELD) is queued to start over.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is not SUSPENDED (or HELD).
        """
        update = JobUpdate(action=Action.RESUME)
        return await self.update(caller, job_id, update)

    async def deliveries(
        self, caller: Caller, job_id: str
    ) -> Sequence[dict[str, Any]]:
        """The attempts to deliver a job's webhook, oldest first.

        Raises
        ------
        JobNotFoundError
            No such job.
        """
        job = await self.get(caller, job_id)
        return await self._store.webhooks.attempts(job.id)

    async def delete(self, caller: Caller, job_id: str) -> None:
        """Delete a job and its results, aborting it first if it is active.

        Raises
        ------
        JobNotFoundError
            No such job.
        """
        job = await self.get(caller, job_id)
        if not await self._lifecycle.destroy(job, asked=True):
            raise JobNotFoundError(job_id)

    async def result(
        self, caller: Caller, job_id: str, result_id: str
    ) -> tuple[JobResult, Download]:
        """A result of a job and how to answer a download of it.

        Raises
        ------
        JobNotFoundError
            No such job.
        ResultNotFoundError
            No such result, or its data is gone.
        """
        job = await self.get(caller, job_id)
        return await self.located_result(job, result_id)

    async def located_result(
        self, job: Job, result_id: str
    ) -> tuple[JobResult, Download]:
        """`result` of a job already read (and checked to be visible)."""
        result = job.result(result_id)
        found = await self.stored(result.key) if result else None
        if result is None or found is None:
            # astroquery fetches results before it looks at the phase.
            error = job.shown_error
            raise ResultNotFoundError(
                f"Job {job.id} has no result {result_id}"
                + (
                    f" (it ended in {job.phase.value}: {error.message})"
                    if error
                    else ""
                )
            )
        return result, found


def _visible(caller: Caller, job: Job) -> bool:
    """Whether the caller may see the job: its owner, or an admin."""
    return job.owner == caller.name or caller.admin
