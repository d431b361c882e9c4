"""The job runner: one attempt of one job, from QUEUED to its end.

The runner claims the job (QUEUED → EXECUTING, compare-and-set on the
attempt number), runs the task while watching for an abort and the execution
deadline, and writes the outcome only while it still holds its claim. Every
write can lose a race against a client (abort, delete) or a limit; losing is
normal and leaves the winner's state alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import datetime, timedelta
from enum import Enum
from typing import TypeVar, assert_never

import structlog
from redis.exceptions import RedisError

from ..backoff import delay_after, patiently
from ..clock import now
from ..config import Settings
from ..metrics import JOB_DURATION, JOB_QUEUE_WAIT
from ..models.errors import UnknownTaskError
from ..models.job import Job, duration_exceeded
from ..models.phase import CLAIMED_PHASES, RUNNING, Action
from ..services.lifecycle import JobLifecycle
from ..storage.events import EventHub, JobEvent, next_event
from ..storage.job_store import JobStore
from ..storage.results import ResultStore
from ..storage.transitions import Changed, Claim, Transition
from ..tasks.context import TaskError
from ..tasks.registry import Task, TaskRegistry
from .context import Failure, LocalTaskContext, Update, failure_of
from .files import prune_strays, remove_tree
from .pausing import Budget, follow_suspension
from .process import run_in_child
from .uploads import local_uploads

__all__ = ["JobRunner", "retry_delay"]

_logger = structlog.get_logger("phaser.worker")

#: How often a running job re-reads its record in case an event was lost.
_WATCH_INTERVAL = 2.0

#: Delay before a job this worker cannot run is offered again (s).
_HAND_BACK_DELAY = 1.0

_T = TypeVar("_T")


class _Stop(Enum):
    """Why a task was stopped before it returned."""

    LOST = "lost"  # aborted, deleted, or claimed by someone else
    DEADLINE = "deadline"  # execution duration exceeded


def retry_delay(attempt: int) -> float:
    """Backoff before the attempt after ``attempt``: 0.5 s, 1 s, 2 s … 60 s."""
    return delay_after(attempt, first=0.5, most=60.0)


class JobRunner:
    """Runs attempts of jobs.

    Parameters
    ----------
    lifecycle
        Job lifecycle: every change the runner makes to a job.
    store
        Job store (reads).
    hub
        Event hub of this process, to notice aborts at once.
    registry
        Tasks.
    settings
        ``heartbeat_interval`` (seconds between heartbeats of a running
        job), ``stall_timeout`` (seconds of silence after which recovery
        re-queues a running job; a task's child process whose worker is
        silent for half of it kills itself first), upload limits.
    worker_id
        Name of this worker process, part of every claim.
    """

    def __init__(
        self,
        *,
        lifecycle: JobLifecycle,
        store: JobStore,
        hub: EventHub,
        registry: TaskRegistry,
        settings: Settings,
        worker_id: str,
    ) -> None:
        self._lifecycle = lifecycle
        self._store = store
        self._results: ResultStore = lifecycle.results
        self._hub = hub
        self._registry = registry
        self._settings = settings
        beat = self._heartbeat_interval = settings.heartbeat_interval
        self._child_timeout = max(2 * beat, settings.stall_timeout / 2)
        self._worker_id = worker_id

    async def run(
        self, job_id: str, attempt: int, *, enqueued_at: datetime | None = None
    ) -> None:
        """Run one attempt of a job, if it is still waiting for it.

        ``enqueued_at``, when the attempt entered the queue, measures its
        wait in the queue (metric ``phaser_job_queue_wait_seconds``).
        """
        # Every line logged while running this job, by any module, carries
        # these (arq runs each job in a task of its own, with its own
        # context).
        structlog.contextvars.bind_contextvars(job_id=job_id, attempt=attempt)
        record = await patiently(lambda: self._store.get(job_id))
        if record is None:
            _logger.info("Job is gone, skipping")
            return
        queued = record
        structlog.contextvars.bind_contextvars(
            task=queued.task, owner=queued.owner
        )
        try:
            task = self._registry.get(queued.task)
        except UnknownTaskError:
            # Not ours to fail: another worker (of a newer deploy, or
            # another pool) may know the task.
            handed = await patiently(
                lambda: self._lifecycle.sending.hand_back(
                    queued, attempt=attempt, defer=_HAND_BACK_DELAY
                )
            )
            _logger.warning(
                "Job's task is unknown to this worker, handed back",
                handed_back=handed,
            )
            return
        claim = f"{self._worker_id}/{attempt}/{secrets.token_hex(4)}"
        started = now()
        expected = task.expected_seconds(queued.parameters)
        # UWS: when the job is expected to complete.
        quote = (
            started + timedelta(seconds=expected)
            if expected is not None
            else None
        )
        async with self._hub.subscribe(job_id) as events:
            # If Redis ran the claim but the answer was lost, the retry sees
            # EXECUTING and gives up; recovery re-queues the silent job.
            claimed = await patiently(
                lambda: self._lifecycle.claim(
                    queued,
                    attempt=attempt,
                    token=claim,
                    at=started,
                    quote=quote,
                )
            )
            if not isinstance(claimed, Changed):
                # Aborted, deleted, or already taken while it was queued.
                _logger.info(
                    "Job not claimable", outcome=type(claimed).__name__
                )
                return
            job = claimed.job
            _logger.info("Job started")
            if enqueued_at is not None:
                JOB_QUEUE_WAIT.labels(job.task).observe(
                    max(0.0, (started - enqueued_at).total_seconds())
                )
            try:
                outcome = await self._supervise(
                    job, task, attempt, claim, events
                )
            except asyncio.CancelledError:
                # The worker is shutting down: give the job back to the
                # queue (the task was stopped, so it starts over).
                await self._lifecycle.requeue(
                    job, attempt=attempt, guard=Claim(claim), error=None
                )
                _logger.info("Job handed back to the queue at shutdown")
                raise
        # Recording the outcome outlasts a short Redis outage, so a job that
        # ran is not run again by recovery just because Redis blinked.
        await patiently(
            lambda: self._finish(job, attempt, claim, task, outcome)
        )
        await prune_strays(self._store, self._results, job)
        JOB_DURATION.labels(job.task).observe(
            (now() - started).total_seconds()
        )

    async def _supervise(
        self,
        job: Job,
        task: Task,
        attempt: int,
        claim: str,
        events: asyncio.Queue[JobEvent],
    ) -> Failure | _Stop | None:
        updates: asyncio.Queue[Update | None] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(job, claim, updates))
        scratch = self._results.scratch_dir(job.id)
        ctx = LocalTaskContext(
            job_id=job.id,
            attempt=attempt,
            store=self._results,
            scratch_dir=scratch,
            updates=updates,
        )
        budget = Budget(job.execution_duration or None)
        execution = asyncio.create_task(self._execute(task, job, ctx))
        watcher = asyncio.create_task(
            self._watch(job, claim, events, ctx, budget, task)
        )
        beating = asyncio.create_task(self._heartbeat(job, claim))
        try:
            ended = await budget.race(execution, watcher)
            outcome: Failure | _Stop | None
            if ended == "execution":
                outcome = execution.result()
            else:
                outcome = _Stop.LOST if ended == "watcher" else _Stop.DEADLINE
                ctx.aborting = True
        finally:
            for running in (execution, watcher, beating):
                running.cancel()
            await asyncio.gather(
                execution, watcher, beating, return_exceptions=True
            )
            updates.put_nowait(None)
            await pump
            if scratch.exists():
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(remove_tree, scratch)
        return outcome

    async def _execute(
        self, task: Task, job: Job, ctx: LocalTaskContext
    ) -> Failure | None:
        """Fetch the job's uploads, then run its task, on the event loop
        or in a child process."""
        uploads = await local_uploads(job, self._results, self._settings)
        if isinstance(uploads, Failure):
            return uploads
        ctx.uploads = uploads
        if task.is_async:
            return await self._run_async(task, job, ctx)
        return await run_in_child(
            task,
            job,
            ctx,
            results=self._results,
            ping_interval=self._heartbeat_interval,
            parent_timeout=self._child_timeout,
        )

    async def _run_async(
        self, task: Task, job: Job, ctx: LocalTaskContext
    ) -> Failure | None:
        try:
            bound = task.bind(job.parameters, ctx.uploads)
            value = await task.function(bound, ctx)
            if value is not None:
                ctx.add_result(value)
        except Exception as exc:
            if not isinstance(exc, TaskError):
                _logger.exception("Task raised")
            return failure_of(exc)
        return None

    async def _watch(
        self,
        job: Job,
        claim: str,
        events: asyncio.Queue[JobEvent],
        ctx: LocalTaskContext,
        budget: Budget,
        task: Task,
    ) -> None:
        """Follow suspension (`follow_suspension`); return once the job
        is no longer ours to run."""
        resume = Transition(Action.RESUME, Claim(claim))
        while True:
            # On a timeout, re-read anyway, in case an event was lost.
            event = await next_event(events, _WATCH_INTERVAL)
            if event is not None and (
                event.kind in {"progress", "result"}
                # Our own claim (or anyone's: taking a job from us goes
                # through QUEUED or a final phase first, which we do read).
                or (
                    event.kind == "phase"
                    and event.phase == RUNNING
                    and not ctx.suspended
                )
            ):
                continue
            try:
                current = await self._store.get(job.id)
            except RedisError:
                continue
            if (
                current is None
                or current.phase not in CLAIMED_PHASES
                or current.claim != claim
            ):
                return
            await follow_suspension(
                current,
                ctx,
                budget,
                can_pause=not task.is_async,
                resume=lambda: self._lifecycle.apply(job, resume),
            )

    async def _heartbeat(self, job: Job, claim: str) -> None:
        """Tell maintenance that this job's worker is alive."""
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                await self._lifecycle.heartbeat(job, token=claim)
            except RedisError as exc:
                _logger.warning("Heartbeat failed", error=str(exc))

    async def _pump(
        self, job: Job, claim: str, updates: asyncio.Queue[Update | None]
    ) -> None:
        """Write the task's progress and results into the record."""
        while (update := await updates.get()) is not None:
            try:
                if update.progress is not None:
                    await self._lifecycle.report_progress(
                        job, token=claim, progress=update.progress
                    )
                if update.result is not None:
                    await self._lifecycle.add_result(
                        job, token=claim, result=update.result
                    )
            except RedisError as exc:
                _logger.warning("Could not record task update", error=str(exc))

    async def _finish(
        self,
        job: Job,
        attempt: int,
        claim: str,
        task: Task,
        outcome: Failure | _Stop | None,
    ) -> None:
        # Only with our claim: a client may have aborted or deleted the job
        # after the task returned.
        guard = Claim(claim)
        match outcome:
            case None:
                await self._lifecycle.finish(job, Action.COMPLETE, guard=guard)
                _logger.info("Job completed")
            case _Stop.LOST:
                _logger.info("Job stopped: aborted or deleted")
            case _Stop.DEADLINE:
                await self._lifecycle.finish(
                    job,
                    Action.ABORT,
                    guard=guard,
                    error=duration_exceeded(job),
                )
                _logger.info("Job aborted: execution duration exceeded")
            case Failure(transient=True) if attempt < (
                self._lifecycle.max_attempts(job)
            ):
                await self._lifecycle.requeue(
                    job,
                    attempt=attempt,
                    guard=guard,
                    error=outcome.error,
                    defer=retry_delay(attempt),
                )
                _logger.info("Job will be retried", error=outcome.message)
            case Failure():
                await self._lifecycle.finish(
                    job, Action.FAIL, guard=guard, error=outcome.error
                )
                _logger.info("Job failed", error=outcome.message)
            case _:
                assert_never(outcome)
