"""Supervising a running task: its progress and results written as they
come, heartbeats, suspension, and stopping it when the job is aborted,
deleted or taken, or its execution duration runs out."""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum

import structlog
from redis.exceptions import RedisError

from ..clock import now
from ..config import Settings
from ..models.job import Job, JobMessage
from ..models.phase import CLAIMED_PHASES, RUNNING, Action
from ..services.lifecycle import JobLifecycle
from ..storage.events import EventQueue, next_event
from ..storage.job_store import JobStore
from ..storage.results import ResultStore
from ..storage.transitions import Claim, Transition
from ..tasks.context import TaskError
from ..tasks.registry import Task
from ..tracing import tracing
from .context import Failure, LocalTaskContext, Update, failure_of
from .files import remove_tree
from .pausing import Budget, follow_suspension
from .process import run_in_child
from .uploads import local_uploads

__all__ = ["Stop", "Supervisor"]

_logger = structlog.get_logger("phaser.worker")

#: How often a running job re-reads its record in case an event was lost.
_WATCH_INTERVAL = 2.0


class Stop(Enum):
    """Why a task was stopped before it returned."""

    LOST = "lost"  # aborted, deleted, or claimed by someone else
    DEADLINE = "deadline"  # execution duration exceeded


class Supervisor:
    """Runs claimed attempts' tasks (for `phaser.worker.runner.JobRunner`).

    Parameters
    ----------
    lifecycle
        Heartbeats, progress, results, resumption.
    store
        Job store (re-reading the record).
    results
        Result store (scratch directories, the task's results).
    settings
        ``heartbeat_interval`` (seconds between heartbeats of a running
        job), ``stall_timeout`` (a task's child process whose worker is
        silent for half of it kills itself), upload limits.
    """

    def __init__(
        self,
        *,
        lifecycle: JobLifecycle,
        store: JobStore,
        results: ResultStore,
        settings: Settings,
    ) -> None:
        self._lifecycle = lifecycle
        self._store = store
        self._results = results
        self._settings = settings
        beat = self._heartbeat_interval = settings.heartbeat_interval
        self._child_timeout = max(2 * beat, settings.stall_timeout / 2)

    async def run(
        self,
        job: Job,
        task: Task,
        attempt: int,
        claim: str,
        events: EventQueue,
    ) -> Failure | Stop | None:
        """Run the claimed attempt's task to its end, or stop it when
        the job is no longer ours or its time is up."""
        pump = _UpdatePump(self._lifecycle, job, claim)
        scratch = self._results.scratch_dir(job.id)
        ctx = LocalTaskContext(
            job_id=job.id,
            attempt=attempt,
            store=self._results,
            scratch_dir=scratch,
            updates=pump.put,
        )
        budget = Budget(job.execution_duration or None)
        execution = asyncio.create_task(self._execute(task, job, ctx))
        watcher = asyncio.create_task(
            self._watch(job, claim, events, ctx, budget, task)
        )
        # The first heartbeat is due after an interval: most jobs have
        # ended by then, and a timer costs less than a task that sleeps.
        beating: asyncio.Task[None] | None = None

        def start_beating() -> None:
            nonlocal beating
            beating = asyncio.create_task(self._heartbeat(job, claim))

        first_beat = asyncio.get_running_loop().call_later(
            self._heartbeat_interval, start_beating
        )
        try:
            ended = await budget.race(execution, watcher)
            outcome: Failure | Stop | None
            if ended == "execution":
                outcome = execution.result()
            else:
                outcome = Stop.LOST if ended == "watcher" else Stop.DEADLINE
                ctx.aborting = True
        finally:
            first_beat.cancel()
            tasks = [execution, watcher] + ([beating] if beating else [])
            for running in tasks:
                running.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pump.close()
            if ctx.scratch_maybe_made and scratch.exists():
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(remove_tree, scratch)
        return outcome

    async def _execute(
        self, task: Task, job: Job, ctx: LocalTaskContext
    ) -> Failure | None:
        """Fetch the job's uploads, then run its task, on the event loop
        or in a child process."""
        if job.uploads:
            uploads = await local_uploads(
                job,
                self._results,
                self._settings,
                ctx.scratch_path / ".uploads",
            )
            if isinstance(uploads, Failure):
                return uploads
            ctx.uploads = uploads
        with tracing().span(f"phaser.task {task.name}") as span:
            failure = (
                await self._run_async(task, job, ctx)
                if task.is_async
                else await run_in_child(
                    task,
                    job,
                    ctx,
                    results=self._results,
                    ping_interval=self._heartbeat_interval,
                    parent_timeout=self._child_timeout,
                )
            )
            if failure is not None:
                span.fail(failure.message)
            return failure

    async def _run_async(
        self, task: Task, job: Job, ctx: LocalTaskContext
    ) -> Failure | None:
        try:
            bound = task.bind(job.parameters, ctx.uploads)
            value = await task.function(bound, ctx)
            if value is not None:
                # Off the event loop: an object store uploads over the
                # network (heartbeats and other jobs go on meanwhile).
                result = await asyncio.to_thread(ctx.store, value)
                ctx.emit(Update(result=result))
        except Exception as exc:
            if not isinstance(exc, TaskError):
                _logger.exception("Task raised")
            return failure_of(exc)
        return None

    async def _watch(
        self,
        job: Job,
        claim: str,
        events: EventQueue,
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
        """Tell maintenance that this job's worker is alive, now and every
        interval from now on."""
        while True:
            try:
                await self._lifecycle.heartbeat(job, token=claim)
            except RedisError as exc:
                _logger.warning("Heartbeat failed", error=str(exc))
            await asyncio.sleep(self._heartbeat_interval)


class _UpdatePump:
    """Writes a running task's progress and results into the job record,
    in the order the task reported them, from a task of its own that
    starts with the first update (most jobs report none before the end)."""

    def __init__(self, lifecycle: JobLifecycle, job: Job, claim: str) -> None:
        self._lifecycle = lifecycle
        self._job = job
        self._claim = claim
        #: The job's messages so far (earlier attempts' included).
        self._logs = {"info": job.info, "warnings": job.warnings}
        self._queue: asyncio.Queue[Update | None] | None = None
        self._writer: asyncio.Task[None] | None = None

    def put(self, update: Update) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._write(self._queue))
        self._queue.put_nowait(update)

    async def close(self) -> None:
        """Write what is left, then stop."""
        if self._queue is not None and self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer

    async def _write(self, queue: asyncio.Queue[Update | None]) -> None:
        job, claim = self._job, self._claim
        while (update := await queue.get()) is not None:
            try:
                if update.progress is not None:
                    await self._lifecycle.report_progress(
                        job, token=claim, progress=update.progress
                    )
                if update.result is not None:
                    await self._lifecycle.add_result(
                        job, token=claim, result=update.result
                    )
                if update.level is not None:
                    log = self._logs[update.level].add(
                        JobMessage(now(), update.text)
                    )
                    self._logs[update.level] = log
                    await self._lifecycle.report(
                        job, token=claim, fields={update.level: log}
                    )
                if update.no_abort:
                    await self._lifecycle.report(
                        job, token=claim, fields={"no_abort": update.no_abort}
                    )
                elif update.no_abort is not None:
                    await self._lifecycle.report(
                        job, token=claim, fields={}, clear=("no_abort",)
                    )
            except RedisError as exc:
                _logger.warning("Could not record task update", error=str(exc))
            finally:
                if update.written is not None and not update.written.done():
                    update.written.set_result(None)
