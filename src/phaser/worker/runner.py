"""The job runner: one attempt of one job, from QUEUED to its end.

The runner claims the job (QUEUED → EXECUTING, compare-and-set on the
attempt number), runs the task while watching for an abort and the execution
deadline (`phaser.worker.supervise`), and writes the outcome only while it
still holds its claim. Every write can lose a race against a client (abort,
delete) or a limit; losing is normal and leaves the winner's state alone.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from datetime import datetime, timedelta
from typing import assert_never

import structlog

from ..backoff import delay_after, patiently
from ..clock import now
from ..config import Settings
from ..metrics import JOB_DURATION, JOB_QUEUE_WAIT
from ..models.errors import UnknownTaskError
from ..models.job import AttemptRun, Job, duration_exceeded
from ..models.phase import Action
from ..services.lifecycle import JobLifecycle
from ..storage.codec import JobRef
from ..storage.events import EventHub
from ..storage.job_store import JobStore
from ..storage.keys import entry_name
from ..storage.results import ResultStore
from ..storage.transitions import Changed, Claim
from ..tasks.registry import Task, TaskRegistry
from ..tracing import trace_id, tracing
from .context import Failure
from .files import prune_strays
from .supervise import Stop, Supervisor

__all__ = ["JobRunner", "retry_delay"]

_logger = structlog.get_logger("phaser.worker")

#: Delay before a job this worker cannot run is offered again (s).
_HAND_BACK_DELAY = 1.0

#: Outcomes of an attempt that ended it itself, under its claim.
_OWN_END = frozenset({"completed", "failed"})

#: Outcomes of an attempt that mark its span failed.
_FAILED = frozenset({"failed", "retried", "duration exceeded"})


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
        Heartbeats, stall timeout and upload limits of the running task
        (`phaser.worker.supervise.Supervisor`).
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
        self._worker_id = worker_id
        # Claim tokens: unique in this process (a counter), and across its
        # restarts under the same host name and pid (a random start). No
        # system call per job, as a fresh random suffix took.
        self._claims = itertools.count(secrets.randbits(32))
        self._supervisor = Supervisor(
            lifecycle=lifecycle,
            store=store,
            results=self._results,
            settings=settings,
        )

    async def run(
        self,
        job_id: str,
        attempt: int,
        *,
        enqueued_at: datetime | None = None,
        trace: str | None = None,
        ref: JobRef | None = None,
    ) -> None:
        """Run one attempt of a job, if it is still waiting for it.

        ``enqueued_at``, when the attempt entered the queue, measures its
        wait in the queue (metric ``phaser_job_queue_wait_seconds``, span
        ``phaser.job.queued``); ``trace``, the job's trace context from
        the queue entry, is where the attempt's spans go (`phaser.tracing`).
        ``ref``, the job's keys from the queue entry, lets the claim read
        the job instead of a read before it (one round trip less), unless
        the task is unknown here or its time estimate needs the job's
        parameters.
        """
        # Every line logged while running this job, by any module, carries
        # these (arq runs each job in a task of its own, with its own
        # context).
        structlog.contextvars.bind_contextvars(job_id=job_id, attempt=attempt)
        task = self._claimable_unread(ref)
        queued: Job | JobRef
        if ref is not None and task is not None:
            queued = ref
        else:
            record = await patiently(lambda: self._store.get(job_id))
            if record is None:
                _logger.info("Job is gone, skipping")
                return
            task = await self._task_or_hand_back(record, attempt)
            if task is None:
                return
            queued = record
            trace = trace or record.trace
        structlog.contextvars.bind_contextvars(
            task=queued.task, owner=queued.owner
        )
        if trace is not None:
            # Logs and traces meet.
            structlog.contextvars.bind_contextvars(trace_id=trace_id(trace))
        with tracing().span(
            "phaser.job.run",
            parent=trace,
            kind="consumer",
            attributes={
                "phaser.job.id": job_id,
                "phaser.task": queued.task,
                "phaser.attempt": attempt,
                "phaser.worker": self._worker_id,
            },
        ) as span:
            ended = await self._attempt(
                queued, task, attempt, enqueued_at, trace
            )
            span.set("phaser.outcome", ended)
            if ended in _FAILED:
                span.fail(ended)

    def _claimable_unread(self, ref: JobRef | None) -> Task | None:
        """The task of a job that can be claimed from its queue entry's
        reference alone, without reading the job first."""
        if ref is None:
            return None
        try:
            task = self._registry.get(ref.task)
        except UnknownTaskError:
            return None
        return None if task.estimate_reads_parameters else task

    async def _task_or_hand_back(
        self, queued: Job, attempt: int
    ) -> Task | None:
        """The job's task; `None` if this worker does not know it, after
        handing the job back. Not ours to fail: another worker (of a newer
        deploy, or another pool) may know the task."""
        try:
            return self._registry.get(queued.task)
        except UnknownTaskError:
            handed = await patiently(
                lambda: self._lifecycle.sending.hand_back(
                    queued, attempt=attempt, defer=_HAND_BACK_DELAY
                )
            )
            _logger.warning(
                "Job's task is unknown to this worker, handed back",
                task=queued.task,
                handed_back=handed,
            )
            return None

    async def _attempt(
        self,
        queued: Job | JobRef,
        task: Task,
        attempt: int,
        enqueued_at: datetime | None,
        trace: str | None,
    ) -> str:
        """Claim, run and finish the attempt; how it went."""
        job_id = queued.id
        claim = f"{self._worker_id}/{attempt}/{self._claim_suffix()}"
        started = now()
        expected = task.expected_seconds(
            queued.parameters if isinstance(queued, Job) else {}
        )
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
                    # For operators: the attempt's queue entry and worker.
                    run=AttemptRun(
                        attempt,
                        entry_name(job_id, attempt),
                        self._worker_id,
                        started,
                    ),
                )
            )
            if not isinstance(claimed, Changed):
                # Aborted, deleted, or already taken while it was queued.
                _logger.info(
                    "Job not claimable", outcome=type(claimed).__name__
                )
                return "not claimable"
            job = claimed.job
            _logger.info("Job started")
            if enqueued_at is not None:
                JOB_QUEUE_WAIT.labels(job.task).observe(
                    max(0.0, (started - enqueued_at).total_seconds())
                )
                tracing().record(
                    "phaser.job.queued",
                    parent=trace,
                    start=enqueued_at,
                    end=started,
                    attributes={"phaser.attempt": attempt},
                )
            try:
                outcome = await self._supervisor.run(
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
        ended = await patiently(
            lambda: self._finish(job, attempt, claim, task, outcome)
        )
        if attempt > 1 or ended not in _OWN_END:
            # An earlier attempt, or this one after losing its claim, may
            # have left files the record does not name.
            await prune_strays(self._store, self._results, job)
        JOB_DURATION.labels(job.task).observe(
            (now() - started).total_seconds()
        )
        return ended

    def _claim_suffix(self) -> str:
        return f"{next(self._claims) & 0xFFFFFFFF:08x}"

    async def _finish(
        self,
        job: Job,
        attempt: int,
        claim: str,
        task: Task,
        outcome: Failure | Stop | None,
    ) -> str:
        """Record the attempt's outcome; what it was, in a word."""
        # Only with our claim: a client may have aborted or deleted the job
        # after the task returned.
        guard = Claim(claim)
        match outcome:
            case None:
                if not await self._lifecycle.finish(
                    job, Action.COMPLETE, guard=guard
                ):
                    return self._lost_at_the_end()
                _logger.info("Job completed")
                return "completed"
            case Stop.LOST:
                _logger.info("Job stopped: aborted or deleted")
                return "stopped"
            case Stop.DEADLINE:
                await self._lifecycle.finish(
                    job,
                    Action.ABORT,
                    guard=guard,
                    error=duration_exceeded(job),
                )
                _logger.info("Job aborted: execution duration exceeded")
                return "duration exceeded"
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
                return "retried"
            case Failure():
                if not await self._lifecycle.finish(
                    job, Action.FAIL, guard=guard, error=outcome.error
                ):
                    return self._lost_at_the_end()
                _logger.info("Job failed", error=outcome.message)
                return "failed"
            case _:
                assert_never(outcome)

    @staticmethod
    def _lost_at_the_end() -> str:
        """The task ended, but the job was no longer ours to end."""
        _logger.info("Job stopped: aborted or deleted before its end")
        return "stopped"
