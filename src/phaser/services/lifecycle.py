"""The job lifecycle: every change of a job after its creation.

The runner (claim, heartbeat, progress, results, the end of an attempt),
maintenance (destruction, deadlines, recovery, lost queue entries) and the
client operations (start, abort, delete) all change jobs through this
service, so each change has one home: the store's named transition, the
queue entry that goes with it, and the metrics that count it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from redis.exceptions import RedisError

from ..clock import now
from ..config import Settings
from ..metrics import JOBS_FINISHED, JOBS_STARTED
from ..models.errors import PhaserError
from ..models.job import (
    Job,
    JobError,
    JobResult,
    Progress,
)
from ..models.phase import (
    FINAL_PHASES,
    HELD,
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
    Transition,
    TransitionOutcome,
)
from ..tasks.registry import TaskRegistry
from .follow import Followers

__all__ = ["JobLifecycle"]

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
        self._queue = queue
        self._registry = registry
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
            await self.send(outcome.job, outcome.job.attempts)
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

    async def _enqueue(self, job: Job, attempt: int) -> None:
        await self._queue.enqueue(
            job.id, attempt, queue=self._queue_of(job), priority=job.priority
        )

    async def claim(
        self,
        job: Job,
        *,
        attempt: int,
        token: str,
        at: datetime,
        quote: datetime | None,
    ) -> TransitionOutcome:
        """A worker takes an attempt of a queued job (counted as
        started)."""
        outcome = await self._change.claim(
            job, attempt=attempt, token=token, at=at, quote=quote
        )
        if isinstance(outcome, Changed):
            JOBS_STARTED.labels(job.task).inc()
            await self.count("started")
        return outcome

    async def heartbeat(self, job: Job, *, token: str) -> None:
        """The worker holding ``token`` is alive."""
        await self._change.heartbeat(job, token=token, at=now())

    async def report_progress(
        self, job: Job, *, token: str, progress: Progress
    ) -> None:
        """The running task's progress."""
        await self._change.report_progress(job, token=token, progress=progress)

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
            await self._count_end(job, action)
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
        cannot hit a job someone else has moved on. Returns whether the
        job was re-queued."""
        outcome = await self._change.requeue(
            job, guard=guard, attempts=attempt + 1, error=error
        )
        if isinstance(outcome, Changed):
            await self.send(outcome.job, attempt + 1, defer=defer or None)
            return True
        return False

    async def hand_back(
        self, job: Job, *, attempt: int, defer: float | None = None
    ) -> bool:
        """Send a QUEUED job's attempt ``attempt`` back to the queue as the
        next attempt, unless someone has moved the job on meanwhile.

        Also for a worker that took an attempt of a task it does not know
        (a rolling deploy that adds a task; pools with different task
        modules): the job waits for a worker that does, instead of failing.
        """
        outcome = await self._change.resend(job, attempt=attempt)
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

    async def abort(
        self,
        job: AnyJob,
        changes: Mapping[str, Any] | None = None,
        changes_need: Action = Action.RELABEL,
    ) -> TransitionOutcome:
        """Abort an active job (with ``changes`` to its fields, in the
        same step); a worker running it hears the event and stops the
        task."""
        outcome = await self._change.abort(
            job, at=now(), changes=changes, changes_need=changes_need
        )
        await self.followers.changed(outcome)
        if isinstance(outcome, Changed):
            await self._count_end(job, Action.ABORT)
        return outcome

    async def fail_held(self, job: Job, error: JobError) -> TransitionOutcome:
        """End a HELD job in error without running it (a job it waited
        for did not complete)."""
        outcome = await self._change.apply(
            job,
            Transition(
                Action.FAIL,
                fields={"ended_at": now(), "errors": [error]},
                only_from=frozenset({HELD}),
            ),
        )
        await self.followers.changed(outcome)
        if isinstance(outcome, Changed):
            await self._count_end(job, Action.FAIL)
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
                await self._queue.reprioritise(
                    changed.id,
                    changed.attempts,
                    changed.priority,
                    queue=self._queue_of(changed),
                )
        return outcome

    async def destroy(self, job: AnyJob) -> bool:
        """Abort the job if it is active, then delete it and its results.
        Returns whether the job still existed."""
        return await self.destroy_many([job]) == 1

    async def destroy_many(self, jobs: Sequence[AnyJob]) -> int:
        """`destroy` for a batch: one thread hop for the files and one
        script call for the records. Returns how many still existed."""
        for job in jobs:
            if job.phase not in FINAL_PHASES:
                # Abort first so a worker running it stops. Losing this
                # race (the job ended meanwhile) is fine: it goes anyway.
                await self.abort(job)
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

    async def count(self, kind: str) -> None:
        """Count a job started or finished (for the statistics); a Redis
        failure loses the count, never the job."""
        with contextlib.suppress(RedisError, OSError):
            await self._store.activity.count_throughput(kind, now())

    async def _count_end(self, job: AnyJob, action: Ending) -> None:
        phase = target_phase(action)
        JOBS_FINISHED.labels(job.task, phase).inc()
        await self.count("finished")
