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
import json
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from ..backoff import Backoff
from ..clock import now
from ..metrics import JOB_DURATION, JOB_QUEUE_WAIT, JOBS_STARTED
from ..models.errors import UnknownTaskError
from ..models.job import ErrorType, Job, JobError
from ..models.phase import (
    FINAL_PHASES,
    Action,
    ExecutionPhase,
    allowed_from,
)
from ..services.jobs import JobService, duration_exceeded
from ..storage.events import EventHub, JobEvent, next_event
from ..storage.job_store import JobStore, Outcome
from ..storage.results import LocalResultStore
from ..tasks.context import TaskError
from ..tasks.registry import Task, TaskRegistry
from .context import Failure, LocalTaskContext, Update, failure_of

__all__ = ["JobRunner", "retry_delay"]

_logger = structlog.get_logger("phaser.worker")

#: How often a running job re-reads its record in case an event was lost.
_WATCH_INTERVAL = 2.0

#: Delay before a job this worker cannot run is offered again (s).
_HAND_BACK_DELAY = 1.0

#: How long the runner retries Redis operations during an outage (s).
_REDIS_PATIENCE = 60.0

_T = TypeVar("_T")


class _Stop(Enum):
    """Why a task was stopped before it returned."""

    LOST = "lost"  # aborted, deleted, or claimed by someone else
    DEADLINE = "deadline"  # execution duration exceeded


def retry_delay(attempt: int) -> float:
    """Backoff before the attempt after ``attempt``: 0.5 s, 1 s, 2 s … 60 s."""
    return float(min(60.0, 0.5 * 2 ** (attempt - 1)))


class JobRunner:
    """Runs attempts of jobs.

    Parameters
    ----------
    service
        Job service (ends and re-queues jobs).
    store
        Job store.
    results
        Result store.
    hub
        Event hub of this process, to notice aborts at once.
    registry
        Tasks.
    heartbeat_interval
        Seconds between heartbeats of a running job.
    stall_timeout
        Seconds of silence after which recovery re-queues a running job;
        a task's child process whose worker is silent for half of it
        kills itself first.
    worker_id
        Name of this worker process, part of every claim.
    """

    def __init__(
        self,
        *,
        service: JobService,
        store: JobStore,
        results: LocalResultStore,
        hub: EventHub,
        registry: TaskRegistry,
        heartbeat_interval: float,
        stall_timeout: float,
        worker_id: str,
    ) -> None:
        self._service = service
        self._store = store
        self._results = results
        self._hub = hub
        self._registry = registry
        self._heartbeat_interval = heartbeat_interval
        self._child_timeout = max(2 * heartbeat_interval, stall_timeout / 2)
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
        job = await _patiently(lambda: self._store.get(job_id))
        if job is None:
            _logger.info("Job is gone, skipping")
            return
        structlog.contextvars.bind_contextvars(task=job.task, owner=job.owner)
        try:
            task = self._registry.get(job.task)
        except UnknownTaskError:
            # Not ours to fail: another worker (of a newer deploy, or
            # another pool) may know the task.
            handed = await _patiently(
                lambda: self._service.hand_back(
                    job, attempt=attempt, defer=_HAND_BACK_DELAY
                )
            )
            _logger.warning(
                "Job's task is unknown to this worker, handed back",
                handed_back=handed,
            )
            return
        claim = f"{self._worker_id}/{attempt}/{secrets.token_hex(4)}"
        started = now()
        duration = job.execution_duration
        deadline = started + timedelta(seconds=duration) if duration else None
        fields: dict[str, Any] = {
            "started_at": started,
            "claim": claim,
            "heartbeat_at": started,
        }
        expected = task.expected_seconds(job.parameters)
        if expected is not None:
            # UWS: when the job is expected to complete.
            fields["quote"] = started + timedelta(seconds=expected)
        async with self._hub.subscribe(job_id) as events:
            # If Redis ran the claim but the answer was lost, the retry sees
            # EXECUTING and gives up; recovery re-queues the silent job.
            claimed = await _patiently(
                lambda: self._store.transition(
                    job,
                    allowed=allowed_from(Action.CLAIM),
                    to=ExecutionPhase.EXECUTING,
                    check=("attempts", str(attempt)),
                    fields=fields,
                    deadline=deadline,
                    heartbeat=started,
                )
            )
            if not claimed.ok:
                # Aborted, deleted, or already taken while it was queued.
                _logger.info(
                    "Job not claimable", outcome=claimed.outcome.value
                )
                return
            _logger.info("Job started")
            JOBS_STARTED.labels(job.task).inc()
            await self._service.count("started")
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
                await self._service.requeue(
                    job, attempt=attempt, check=("claim", claim), error=None
                )
                _logger.info("Job handed back to the queue at shutdown")
                raise
        # Recording the outcome outlasts a short Redis outage, so a job that
        # ran is not run again by recovery just because Redis blinked.
        await _patiently(
            lambda: self._finish(job, attempt, claim, task, outcome)
        )
        await self._prune(job)
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
        work: Coroutine[Any, Any, Failure | None]
        if task.is_async:
            work = self._run_async(task, job, ctx)
        else:
            work = self._run_process(task, job, attempt, scratch, updates)
        execution = asyncio.create_task(work)
        watcher = asyncio.create_task(self._watch(job, claim, events))
        beating = asyncio.create_task(self._heartbeat(job, claim))
        timeout = job.execution_duration or None
        try:
            done, _ = await asyncio.wait(
                {execution, watcher},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            outcome: Failure | _Stop | None
            if execution in done:
                outcome = execution.result()
            else:
                outcome = _Stop.LOST if watcher in done else _Stop.DEADLINE
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
                    await asyncio.to_thread(_remove_tree, scratch)
        return outcome

    async def _run_async(
        self, task: Task, job: Job, ctx: LocalTaskContext
    ) -> Failure | None:
        try:
            value = await task.function(task.bind(job.parameters), ctx)
            if value is not None:
                ctx.add_result(value)
        except Exception as exc:
            if not isinstance(exc, TaskError):
                _logger.exception("Task raised")
            return failure_of(exc)
        return None

    async def _run_process(
        self,
        task: Task,
        job: Job,
        attempt: int,
        scratch: Path,
        updates: asyncio.Queue[Update | None],
    ) -> Failure | None:
        """Run a ``def`` task in a child process that can be killed."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "phaser.worker.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        request = {
            "task": task.name,
            "module": task.function.__module__,
            "job_id": job.id,
            "attempt": attempt,
            "parameters": job.parameters,
            "results_dir": str(self._results.root),
            "scratch_dir": str(scratch),
            "parent_pid": os.getpid(),
            "parent_timeout": self._child_timeout,
        }
        pinging: asyncio.Task[None] | None = None
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            pinging = asyncio.create_task(self._ping(process.stdin))
            failure: Failure | None = None
            finished = False
            async for line in process.stdout:
                message = json.loads(line)
                match message["type"]:
                    case "progress" | "result":
                        updates.put_nowait(Update.from_message(message))
                    case "error":
                        failure = Failure(
                            message["message"], message["transient"]
                        )
                        finished = True
                    case "done":
                        finished = True
            code = await process.wait()
            if not finished:
                return Failure(f"task process exited with code {code}", False)
            return failure
        finally:
            if pinging is not None:
                pinging.cancel()
            if process.returncode is None:
                # Cancelled (abort or deadline): kill the whole group.
                with contextlib.suppress(ProcessLookupError):
                    _kill_group(process.pid)
                await process.wait()

    async def _prune(self, job: Job) -> None:
        """Delete result files the record does not point to (written by an
        earlier attempt that ran on after losing its claim), once the job
        has ended: no attempt can be writing any more."""
        if not await asyncio.to_thread(self._results.has_files, job.id):
            return
        try:
            current = await self._store.get(job.id)
        except RedisError:
            return
        if current is None or current.phase not in FINAL_PHASES:
            return
        keys = [result.key for result in current.results]
        pruned = await asyncio.to_thread(self._results.prune, job.id, keys)
        if pruned:
            _logger.warning("Stray result files deleted", count=pruned)

    async def _ping(self, stdin: asyncio.StreamWriter) -> None:
        """Tell a task's child process that its worker is alive (see
        `phaser.worker.child`): a frozen worker stops pinging, and its
        child kills itself before recovery runs the job elsewhere."""
        with contextlib.suppress(OSError, RuntimeError):
            while True:
                await asyncio.sleep(self._heartbeat_interval)
                stdin.write(b"\n")
                await stdin.drain()

    async def _watch(
        self, job: Job, claim: str, events: asyncio.Queue[JobEvent]
    ) -> None:
        """Return once the job is no longer ours to run."""
        while True:
            # On a timeout, re-read anyway, in case an event was lost.
            event = await next_event(events, _WATCH_INTERVAL)
            if event is not None and (
                event.kind in {"progress", "result"}
                # Our own claim (or anyone's: taking a job from us goes
                # through QUEUED or a final phase first, which we do read).
                or (event.kind == "phase" and event.phase == "EXECUTING")
            ):
                continue
            try:
                current = await self._store.get(job.id)
            except RedisError:
                continue
            if (
                current is None
                or current.phase != ExecutionPhase.EXECUTING
                or current.claim != claim
            ):
                return

    async def _heartbeat(self, job: Job, claim: str) -> None:
        """Tell maintenance that this job's worker is alive."""
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            beat = now()
            try:
                await self._store.transition(
                    job,
                    allowed=[ExecutionPhase.EXECUTING],
                    check=("claim", claim),
                    fields={"heartbeat_at": beat},
                    heartbeat=beat,
                    event="",
                )
            except RedisError as exc:
                _logger.warning("Heartbeat failed", error=str(exc))

    async def _pump(
        self, job: Job, claim: str, updates: asyncio.Queue[Update | None]
    ) -> None:
        """Write the task's progress and results into the record."""
        while (update := await updates.get()) is not None:
            try:
                if update.progress is not None:
                    await self._store.transition(
                        job,
                        allowed=[ExecutionPhase.EXECUTING],
                        check=("claim", claim),
                        fields={"progress": update.progress},
                        event="progress",
                    )
                if update.result is not None:
                    outcome = await self._store.record_result(
                        job, claim=claim, result=update.result
                    )
                    if outcome is Outcome.MISSING:
                        # Deleted meanwhile: do not leave files behind.
                        self._results.delete_job(job.id)
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
        # Only from EXECUTING and only with our claim: a client may have
        # aborted or deleted the job after the task returned.
        check = ("claim", claim)
        match outcome:
            case None:
                await self._service.end(
                    job, phase=ExecutionPhase.COMPLETED, check=check
                )
                _logger.info("Job completed")
            case _Stop.LOST:
                _logger.info("Job stopped: aborted or deleted")
            case _Stop.DEADLINE:
                await self._service.end(
                    job,
                    phase=ExecutionPhase.ABORTED,
                    check=check,
                    error=duration_exceeded(job),
                )
                _logger.info("Job aborted: execution duration exceeded")
            case Failure(transient=True) if attempt < (
                self._service.max_attempts(job)
            ):
                await self._service.requeue(
                    job,
                    attempt=attempt,
                    check=check,
                    error=JobError(ErrorType.TRANSIENT, outcome.message),
                    defer=retry_delay(attempt),
                )
                _logger.info("Job will be retried", error=outcome.message)
            case Failure():
                error_type = (
                    ErrorType.TRANSIENT
                    if outcome.transient
                    else ErrorType.FATAL
                )
                await self._service.end(
                    job,
                    phase=ExecutionPhase.ERROR,
                    check=check,
                    error=JobError(error_type, outcome.message),
                )
                _logger.info("Job failed", error=outcome.message)


async def _patiently(operation: Callable[[], Awaitable[_T]]) -> _T:
    """Run a Redis operation, retrying through an outage of up to a minute.

    Only for operations that are safe to repeat (reads, and writes guarded
    by a compare-and-set).
    """
    backoff = Backoff()
    deadline = asyncio.get_running_loop().time() + _REDIS_PATIENCE
    while True:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            _logger.warning("Redis unavailable, retrying", error=str(exc))
            await backoff.wait()


def _kill_group(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
