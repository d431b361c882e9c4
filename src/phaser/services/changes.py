"""A client's changes to a job, applied in one step: fields, a phase
action (start, hold, abort, suspend, resume) or a new start time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, assert_never

from ..clock import now
from ..models.errors import (
    InvalidRequestError,
    JobNotFoundError,
    PhaseConflictError,
    UnknownTaskError,
)
from ..models.job import Job
from ..models.phase import (
    FINAL_PHASES,
    HELD,
    WAITING,
    Action,
    allowed_from,
)
from ..storage.job_store import JobStore
from ..storage.transitions import (
    Changed,
    Missing,
    Stale,
    Transition,
    TransitionOutcome,
    WrongPhase,
)
from ..tasks.registry import TaskRegistry
from .checks import JobChecks, JobUpdate, start_time, utc
from .lifecycle import JobLifecycle, not_abortable

__all__ = ["JobChanges", "changed"]


class JobChanges:
    """Applies clients' changes.

    Parameters
    ----------
    lifecycle
        The transitions.
    checks
        Checks of the values.
    registry
        Tasks.
    store
        Job store (to read a job back).
    """

    def __init__(
        self,
        *,
        lifecycle: JobLifecycle,
        checks: JobChecks,
        registry: TaskRegistry,
        store: JobStore,
    ) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._checks = checks
        self._registry = registry

    async def apply(self, job: Job, update: JobUpdate) -> Job:
        """Apply a client's changes in one step: all or nothing.

        Parameters and execution duration change only while the job has
        not started; the destruction time and run id can change in any
        phase. Requested values beyond the configured maxima are clamped
        to them. With ``update.action``, the job is also started or
        aborted in the same step; a non-strict abort of a job that has
        ended applies the other changes alone.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is in a phase where a change asked for cannot happen
            (and then none happened).
        InvalidParametersError
            The new parameters do not fit the task.
        """
        changes = self._checks.changes(job, update, self._registry)
        need = update.edit_action
        if update.run_after is not None:
            return await self._reschedule(job, update, changes)
        match update.action:
            case Action.START:
                outcome = await self._lifecycle.start(job, changes, need)
                return changed(job, outcome, "start")
            case Action.HOLD:
                outcome = await self._lifecycle.hold(job, changes, need)
                return changed(job, outcome, "hold")
            case Action.SUSPEND | Action.RESUME:
                return await self._pause(job, update.action, changes, need)
            case Action.ABORT:
                outcome = await self._lifecycle.abort(
                    job, changes, need, asked=not update.by_limit
                )
                if update.strict or not isinstance(outcome, WrongPhase):
                    return changed(job, outcome, "abort")
                if outcome.phase not in FINAL_PHASES:
                    # Not abortable here because of an edit's phases.
                    return changed(job, outcome, "change")
            case None:
                pass
            case _:
                assert_never(update.action)
        if not changes:
            current = await self._store.get(job.id)
            if current is None:
                raise JobNotFoundError(job.id)
            return current
        return changed(
            job, await self._lifecycle.edit(job, changes, need), "change"
        )

    async def _pause(
        self,
        job: Job,
        action: Action,
        changes: dict[str, Any],
        need: Action,
    ) -> Job:
        """Suspend or resume, with ``changes`` in the same step."""
        if action is Action.RESUME and job.phase is HELD:
            outcome = await self._lifecycle.start(job, changes, need)
            return changed(job, outcome, "resume")
        if action is Action.SUSPEND and self._is_async(job.task):
            raise PhaseConflictError(
                f"Cannot suspend job {job.id}: its task {job.task} is an"
                " async def task, which runs on its worker's event loop and"
                " cannot be paused (only def tasks, which run in a process"
                " of their own, can)"
            )
        change = Transition(
            action, fields=changes, only_from=allowed_from(need)
        )
        outcome = await self._lifecycle.apply(job, change)
        return changed(job, outcome, action.value)

    def _is_async(self, task: str) -> bool:
        """Whether a task runs on its worker's event loop (a task this
        process does not know is left to its worker, which resumes a job
        it cannot pause)."""
        try:
            return self._registry.get(task).is_async
        except UnknownTaskError:
            return False

    async def _reschedule(
        self, job: Job, update: JobUpdate, changes: dict[str, Any]
    ) -> Job:
        """A new start time for a waiting job (with ``changes``, in the
        same step): a future one holds it until then (PENDING or QUEUED
        jobs become HELD; a HELD one moves to the new time), one that has
        passed starts it now."""
        assert update.run_after is not None
        if job.after and job.phase is HELD and not job.run_after:
            raise PhaseConflictError(
                f"Cannot reschedule job {job.id}: it waits for its"
                " dependencies, and is queued when they have ended"
            )
        if update.action is not None:
            raise InvalidRequestError(
                "A new start time and a phase change are separate requests",
                fields=[{"field": "run_after", "message": "with a phase"}],
            )
        latest = job.destruction_time or now() + timedelta(days=36500)
        at = start_time(utc("run_after", update.run_after), latest)
        need = update.edit_action
        if at is None:
            if job.phase is WAITING:
                outcome = await self._lifecycle.edit(job, changes, need)
            else:
                outcome = await self._lifecycle.start(job, changes, need)
        elif job.phase is HELD:
            outcome = await self._lifecycle.edit(
                job, {**changes, "run_after": at}, Action.RESCHEDULE
            )
        else:
            outcome = await self._lifecycle.hold(
                job, {**changes, "run_after": at}, need
            )
        return changed(job, outcome, "reschedule")


def changed(job: Job, outcome: TransitionOutcome, verb: str) -> Job:
    """The job after a client's change, or the 4xx that says why there
    was none."""
    match outcome:
        case Changed(current, _):
            return current
        case Missing():
            raise JobNotFoundError(job.id)
        case Stale(_, reason) if reason is not None:
            raise not_abortable(job.id, verb, reason)
        case WrongPhase(phase) | Stale(phase):
            raise PhaseConflictError(
                f"Cannot {verb} job {job.id} in phase {phase.value}"
            )
        case _:
            assert_never(outcome)
