"""The job lifecycle: every change of a job after its creation.

The runner (claim, heartbeat, progress, results, the end of an attempt),
maintenance (destruction, deadlines, recovery, lost queue entries) and the
client operations (start, abort, delete) all change jobs through this
service, so each change has one home: the store's named transition, the
queue entry that goes with it, and the metrics that count it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from ..clock import now
from ..config import Settings
from ..metrics import JOBS_FINISHED, JOBS_STARTED
from ..models.errors import PhaseConflictError, PhaserError
from ..models.job import (
    AttemptRun,
    Job,
    JobError,
    JobResult,
    Progress,
)
from ..models.phase import (
    FINAL_PHASES,
    HELD,
    SUSPENDED,
    WAITING,
    Action,
    target_phase,
)
from ..queue import JobQueue
from ..storage.codec import AnyJob
from ..storage.job_store import JobStore
from ..storage.results import ResultStore
from ..storage.transitions import (
    Beat,
    Changed,
    Claim,
    Missing,
    Stale,
    Transition,
    TransitionOutcome,
    WrongPhase,
)
from ..tasks.registry import TaskRegistry
from .follow import Followers
from .sending import Sending

__all__ = ["JobLifecycle", "not_abortable"]

#: How a running job can end.
Ending = Literal[Action.COMPLETE, Action.FAIL, Action.ABORT]


class JobLifecycle:
    """Moves jobs through their phases.

    Parameters
    ----------
    settings
        Limits and queue names.
    store
        Job store (its transitions, and deletion).
    results
        Result store.
    queue
        Queue to the workers.
    registry
        Tasks (for their attempt limits).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        results: ResultStore,
        queue: JobQueue,
        registry: TaskRegistry,
    ) -> None:
        self._settings = settings
        self._store = store
        self._change = store.transitions
        self._results = results
        self._registry = registry
        #: Sends jobs to the queue.
        self.sending = Sending(settings=settings, store=store, queue=queue)
        #: What a change means for other jobs.
        self.followers = Followers(self, store)

    @property
    def results(self) -> ResultStore:
        """Where results are kept."""
        return self._results

    async def start(
        self,
        job: Job,
        changes: Mapping[str, Any] | None = None,
        changes_need: Action = Action.RELABEL,
    ) -> TransitionOutcome:
        """Queue a pending or held job as its next attempt (with
        ``changes`` to its fields, in the same step). The record says
        QUEUED before the queue hears of the job, so a worker that picks
        it up at once finds it claimable."""
        outcome = await self._change.start(
            job, changes, changes_need=changes_need
        )
        if isinstance(outcome, Changed):
            await self.sending.send(outcome.job, outcome.job.attempts)
        return outcome

    async def hold(
        self,
        job: AnyJob,
        changes: Mapping[str, Any] | None = None,
        changes_need: Action = Action.RELABEL,
    ) -> TransitionOutcome:
        """Hold a pending or queued job (a queued one's queue entry stays:
        a worker that takes it finds the job not claimable)."""
        outcome = await self._change.hold(
            job, changes, changes_need=changes_need
        )
        await self.followers.changed(outcome)
        return outcome

    async def claim(
        self,
        job: AnyJob,
        *,
        attempt: int,
        token: str,
        at: datetime,
        quote: datetime | None,
        run: AttemptRun | None = None,
    ) -> TransitionOutcome:
        """A worker takes an attempt of a queued job (counted as
        started, by the transition itself); ``run`` says which queue
        entry and worker, for operators."""
        outcome = await self._change.claim(
            job, attempt=attempt, token=token, at=at, quote=quote, run=run
        )
        if isinstance(outcome, Changed):
            JOBS_STARTED.labels(job.task).inc()
        return outcome

    async def heartbeat(self, job: Job, *, token: str) -> None:
        """The worker holding ``token`` is alive."""
        await self._change.heartbeat(job, token=token, at=now())

    async def report_progress(
        self, job: Job, *, token: str, progress: Progress
    ) -> None:
        """The running task's progress."""
        await self._change.report_progress(job, token=token, progress=progress)

    async def report(
        self,
        job: Job,
        *,
        token: str,
        fields: Mapping[str, Any],
        clear: Sequence[str] = (),
    ) -> None:
        """The running task's messages, or whether it may be aborted."""
        await self._change.report(job, token=token, fields=fields, clear=clear)

    async def add_result(
        self, job: Job, *, token: str, result: JobResult
    ) -> None:
        """Record a result the task wrote; if the job was deleted
        meanwhile, its files go too."""
        outcome = await self._change.add_result(
            job, token=token, result=result
        )
        if isinstance(outcome, Missing):
            await asyncio.to_thread(self._results.delete_job, job.id)

    async def finish(
        self,
        job: Job,
        action: Ending,
        *,
        guard: Claim | Beat,
        error: JobError | None = None,
    ) -> bool:
        """End a running job while ``guard`` holds. Returns whether it
        did."""
        outcome = await self._change.finish(
            job, action, guard=guard, at=now(), error=error
        )
        await self.followers.changed(outcome)
        if isinstance(outcome, Changed):
            self._count_end(job, action)
            return True
        return False

    async def requeue(
        self,
        job: Job,
        *,
        attempt: int,
        guard: Claim | Beat,
        error: JobError | None,
        defer: float = 0,
    ) -> bool:
        """Send a running job back to the queue as attempt ``attempt + 1``
        (a transient failure, a lost worker, a shutdown). ``guard`` names
        what must not have changed since the caller looked, so a requeue
        cannot hit a job someone else has moved on. A suspended job waits
        HELD instead: its process is gone, and its client resumes it (to
        start over). Returns whether the job was re-queued or held."""
        outcome = await self._change.requeue(
            job, guard=guard, attempts=attempt + 1, error=error
        )
        match outcome:
            case Changed(changed):
                await self.sending.send(
                    changed, attempt + 1, defer=defer or None
                )
                return True
            case WrongPhase(phase) if phase is SUSPENDED:
                clear = ("claim", "heartbeat_at")
                change = Transition(Action.SHELVE, guard, clear=clear)
                return isinstance(await self.apply(job, change), Changed)
        return False

    async def apply(
        self, job: AnyJob, change: Transition
    ) -> TransitionOutcome:
        """Any other transition, followed (`Followers`)."""
        outcome = await self._change.apply(job, change)
        await self.followers.changed(outcome)
        return outcome

    async def abort(
        self,
        job: AnyJob,
        changes: Mapping[str, Any] | None = None,
        changes_need: Action = Action.RELABEL,
        *,
        asked: bool = False,
    ) -> TransitionOutcome:
        """Abort an active job (with ``changes`` to its fields, in the
        same step); a worker running it hears the event and stops the
        task. An abort a client ``asked`` for is refused while the task
        says it may not be aborted (`Stale` with its reason)."""
        outcome = await self._change.abort(
            job,
            at=now(),
            changes=changes,
            changes_need=changes_need,
            asked=asked,
        )
        await self.followers.changed(outcome)
        if isinstance(outcome, Changed):
            self._count_end(job, Action.ABORT)
        return outcome

    async def fail_held(self, job: Job, error: JobError) -> TransitionOutcome:
        """End a HELD job in error without running it (a job it waited
        for did not complete)."""
        fields = {"ended_at": now(), "errors": [error]}
        change = Transition(
            Action.FAIL, None, fields, only_from=frozenset({HELD})
        )
        outcome = await self.apply(job, change)
        if isinstance(outcome, Changed):
            self._count_end(job, Action.FAIL)
        return outcome

    async def edit(
        self, job: Job, changes: Mapping[str, Any], action: Action
    ) -> TransitionOutcome:
        """Change a job's fields in one step (see `JobTransitions.edit`);
        a new priority of a queued job moves its queue entry too."""
        outcome = await self._change.edit(job, changes, action=action)
        match outcome:
            case Changed(changed) if (
                "priority" in changes and changed.phase is WAITING
            ):
                await self.sending.reprioritise(changed)
        return outcome

    async def destroy(self, job: AnyJob, *, asked: bool = False) -> bool:
        """Abort the job if it is active, then delete it and its results.
        Returns whether the job still existed.

        Raises
        ------
        PhaseConflictError
            A client ``asked`` and the running task may not be aborted
            now (nothing was deleted).
        """
        return await self.destroy_many([job], asked=asked) == 1

    async def destroy_many(
        self, jobs: Sequence[AnyJob], *, asked: bool = False
    ) -> int:
        """`destroy` for a batch: one thread hop for the files and one
        script call for the records. Returns how many still existed."""
        for job in jobs:
            if job.phase not in FINAL_PHASES:
                # Abort first so a worker running it stops. Losing this
                # race (the job ended meanwhile) is fine: it goes anyway.
                outcome = await self.abort(job, asked=asked)
                if isinstance(outcome, Stale) and outcome.reason is not None:
                    raise not_abortable(job.id, "delete", outcome.reason)
        # Results first: whoever sees the job gone must not find its files.
        await asyncio.to_thread(
            self._results.delete_jobs, [job.id for job in jobs]
        )
        deleted = await self._store.delete_many(jobs)
        await self.followers.deleted(deleted.waiting)
        return sum(phase is not None for phase in deleted.phases)

    async def archive(self, job: AnyJob) -> bool:
        """Abort the job if it is active, delete its results and keep its
        metadata in phase ARCHIVED. Returns whether it was archived."""
        if job.phase not in FINAL_PHASES:
            await self.abort(job)
        await asyncio.to_thread(self._results.delete_job, job.id)
        return isinstance(await self._change.archive(job), Changed)

    def max_attempts(self, job: Job) -> int:
        """How many attempts the job's task gets."""
        try:
            limit = self._registry.get(job.task).max_attempts
        except PhaserError:
            limit = None
        return limit or self._settings.max_attempts

    def _count_end(self, job: AnyJob, action: Ending) -> None:
        """The process's metric (the statistics' per-minute counts are
        kept by the transition script)."""
        phase = target_phase(action)
        JOBS_FINISHED.labels(job.task, phase).inc()


def not_abortable(job_id: str, verb: str, reason: str) -> PhaseConflictError:
    """The 409 (UWS 403) for a client's request that would abort a job
    whose running task says it may not be aborted now."""
    return PhaseConflictError(
        f"Cannot {verb} job {job_id}: its task may not be aborted now"
        f" ({reason})"
    )
