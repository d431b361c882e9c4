"""Maintenance: destruction, missed deadlines and stalled jobs.

One worker at a time (the holder of the maintenance lease) runs a pass
every few seconds. Every action is the same compare-and-set the rest of
phaser uses, so a pass racing a live worker or a client never overwrites
what they did: it only acts on what it saw, if that is still so.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import timedelta

import structlog

from ..clock import now, to_ms
from ..config import Settings
from ..models.job import ErrorCode, ErrorType, JobError, duration_exceeded
from ..models.phase import (
    CLAIMED_PHASES,
    HELD,
    RUNNING,
    SUSPENDED,
    WAITING,
    Action,
)
from ..storage.job_store import JobStore
from ..storage.transitions import Beat, Changed, Claim
from .ids import created_ms, is_job_id
from .lifecycle import JobLifecycle

__all__ = ["Maintenance", "MaintenanceReport"]

_logger = structlog.get_logger("phaser.maintenance")

#: Jobs handled per schedule and pass.
_BATCH = 1000

#: Message of a job whose worker disappeared.
WORKER_LOST = "worker lost"


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one pass did."""

    destroyed: int
    deadlines: int
    recovered: int
    failed: int
    requeued: int

    @property
    def more(self) -> bool:
        """Whether a schedule had more due jobs than one pass handles."""
        return self.destroyed >= _BATCH


class Maintenance:
    """The maintenance rules.

    Parameters
    ----------
    settings
        Timeouts and the destruction mode.
    lifecycle
        Job lifecycle (destroy, archive, requeue, finish, resend).
    store
        Job store, for the schedules.
    """

    def __init__(
        self, *, settings: Settings, lifecycle: JobLifecycle, store: JobStore
    ) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
        self._store = store
        # When this process last reached the store, and until when running
        # jobs are not taken from their workers (see `store_reached`).
        self._contact: float | None = None
        self._quiet_until = 0.0

    def store_reached(self) -> None:
        """Called whenever this process has reached the store (each turn
        of the maintenance loop, lease holder or not).

        After a gap of more than half the stall timeout — Redis down or
        failing over, or this process stalled — running jobs' workers may
        have been as unable to send heartbeats as this one was to read
        them: their silence counts from now, and stalled jobs are
        recovered only a stall timeout later (a job is not run twice
        because Redis was away for longer than the stall timeout).
        """
        at = asyncio.get_running_loop().time()
        gap = self._settings.stall_timeout / 2
        if self._contact is not None and at - self._contact > gap:
            self._quiet_until = at + self._settings.stall_timeout
            _logger.info(
                "Store back after a gap: stalled jobs wait",
                gap_seconds=round(at - self._contact, 1),
            )
        self._contact = at

    def store_unreachable(self) -> None:
        """Called when this process failed to reach the store: the next
        contact ends a gap (also for a process that has not reached it
        yet, started while Redis was away)."""
        self._contact = -math.inf

    async def run(self) -> MaintenanceReport:
        """One pass over all schedules."""
        destroyed = await self.destroy_expired()
        deadlines = await self.enforce_deadlines()
        recovered, failed = await self.recover_stalled()
        requeued = await self.requeue_lost()
        await self.sweep_orphans()
        followers = self._lifecycle.followers
        requeued += await followers.reconcile_limits()
        requeued += await followers.check_waiting(
            self._settings.queue_check_after
        )
        report = MaintenanceReport(
            destroyed, deadlines, recovered, failed, requeued
        )
        if any((destroyed, deadlines, recovered, failed, requeued)):
            _logger.info(
                "Maintenance pass",
                destroyed=destroyed,
                deadlines=deadlines,
                recovered=recovered,
                failed=failed,
                requeued=requeued,
            )
        return report

    async def sweep_orphans(self) -> int:
        """Delete the stored files of jobs that are gone: left by a crash
        between deleting a job's record and its files. Once every
        ``PHASER_ORPHAN_SWEEP_INTERVAL`` (by one process), for jobs
        created more than that long ago (a new job's uploads are stored
        just before its record). Returns how many jobs' files went."""
        every = self._settings.orphan_sweep_interval
        if not await self._store.activity.due_once("orphan-sweep", every):
            return 0
        results = self._lifecycle.results
        listed = await asyncio.to_thread(lambda: list(results.job_ids()))
        before = to_ms(now()) - int(every * 1000)
        old = [
            job_id
            for job_id in listed
            if is_job_id(job_id) and created_ms(job_id) < before
        ]
        swept = 0
        for start in range(0, len(old), _BATCH):
            gone = await self._store.activity.missing_jobs(
                old[start : start + _BATCH]
            )
            if gone:
                await asyncio.to_thread(results.delete_jobs, gone)
                swept += len(gone)
        if swept:
            _logger.info("Orphaned files deleted", jobs=swept)
        return swept

    async def requeue_lost(self) -> int:
        """Queue again jobs that have been QUEUED for long and are no
        longer waiting in the queue (see `JobLifecycle.resend`)."""
        checked = now()
        until = checked - timedelta(seconds=self._settings.queue_check_after)
        ids = await self._store.schedules.due(
            "queued", until=until, limit=_BATCH
        )
        count = 0
        for job in await self._store.get_many(ids):
            if job.phase is not WAITING:
                continue
            count += await self._lifecycle.sending.resend(job)
            await self._store.schedules.touch_queued(job.id, checked)
        return count

    async def start_scheduled(self) -> int:
        """Queue HELD jobs whose start time (``run_after``) has come, and
        send QUEUED jobs whose deferred send (a retry's backoff) is due.
        The start is the same compare-and-set as a client's and a send
        goes to the worker that takes its entry, so a job is queued once,
        whoever else (another worker running this, a client releasing or
        aborting it) acts meanwhile; every worker runs this, outside the
        maintenance lease."""
        ids = await self._store.schedules.due(
            "scheduled", until=now(), limit=_BATCH
        )
        count = 0
        stale = set(ids)
        for job in await self._store.get_many(ids):
            if job.phase is HELD and job.run_after is not None:
                stale.discard(job.id)
                outcome = await self._lifecycle.start(job)
                count += isinstance(outcome, Changed)
            elif job.phase is WAITING:
                stale.discard(job.id)
                count += await self._lifecycle.sending.send_due(job)
        # Entries of jobs that are gone or left HELD some other way.
        await self._store.schedules.unschedule("scheduled", sorted(stale))
        return count

    async def next_start(self) -> float | None:
        """Seconds until the next scheduled start, if there is one (a
        pass sleeps no longer than that: starts come on time)."""
        return await self._store.schedules.next_due("scheduled")

    async def destroy_expired(self) -> int:
        """Delete (or archive) jobs whose destruction time has passed."""
        ids = await self._store.schedules.due(
            "destruction", until=now(), limit=_BATCH
        )
        jobs = await self._store.refs(ids)
        if self._settings.destruction_mode == "archive":
            archived = await asyncio.gather(
                *(self._lifecycle.archive(job) for job in jobs)
            )
            return sum(archived)
        return await self._lifecycle.destroy_many(jobs)

    async def enforce_deadlines(self) -> int:
        """Abort running jobs past their deadline whose worker did not.

        The worker enforces execution durations itself; this is the
        backstop for a worker that is gone or stuck, after a short grace.
        """
        grace = timedelta(seconds=2 * self._settings.heartbeat_interval)
        ids = await self._store.schedules.due(
            "deadline", until=now() - grace, limit=_BATCH
        )
        count = 0
        for job in await self._store.get_many(ids):
            if job.phase is not RUNNING or job.claim is None:
                continue
            count += await self._lifecycle.finish(
                job,
                Action.ABORT,
                guard=Claim(job.claim, holder=False),
                error=duration_exceeded(job),
            )
        return count

    async def recover_stalled(self) -> tuple[int, int]:
        """Re-queue running jobs whose worker stopped sending heartbeats,
        or fail them once their attempts are used up.

        Returns (re-queued, failed).
        """
        if asyncio.get_running_loop().time() < self._quiet_until:
            return 0, 0  # just back from a gap (`store_reached`)
        silent = timedelta(seconds=self._settings.stall_timeout)
        ids = await self._store.schedules.due(
            "heartbeat", until=now() - silent, limit=_BATCH
        )
        recovered = failed = 0
        for job in await self._store.get_many(ids):
            if job.phase not in CLAIMED_PHASES:
                continue
            # Act only if the worker has stayed silent since we looked: a
            # heartbeat arriving now changes the value and the guard fails.
            guard = Beat(job.heartbeat_at)
            # A suspended one waits HELD for its client (see requeue).
            if job.phase is SUSPENDED or job.attempts < (
                self._lifecycle.max_attempts(job)
            ):
                recovered += await self._lifecycle.requeue(
                    job,
                    attempt=job.attempts,
                    guard=guard,
                    error=JobError(
                        ErrorType.TRANSIENT,
                        WORKER_LOST,
                        code=ErrorCode.WORKER_LOST,
                    ),
                )
            else:
                failed += await self._lifecycle.finish(
                    job,
                    Action.FAIL,
                    guard=guard,
                    error=JobError(
                        ErrorType.FATAL,
                        WORKER_LOST,
                        code=ErrorCode.WORKER_LOST,
                    ),
                )
        return recovered, failed
