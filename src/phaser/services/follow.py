"""What a change of one job means for others: room in its concurrency
groups, the end of a job others wait for, the abort of a parent.

The job lifecycle hands every transition it makes to `Followers.changed`
(and the jobs waiting for deleted ones to `Followers.deleted`); the
follow-ups are transitions of their own (a start, a failure, an abort),
made through the lifecycle and followed in turn: a failed job fails the
jobs waiting for it, and theirs, through a work list rather than
recursion, so a chain of any length is followed to its end.

Every follow-up is a compare-and-set, so one made twice (by two
processes, or by maintenance's backstop) happens once.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from ..clock import now
from ..models.job import ErrorCode, ErrorType, Job, JobError
from ..models.phase import (
    ADMITTED_PHASES,
    ARCHIVED,
    FINAL_PHASES,
    HELD,
    STOPPED,
    SUCCEEDED,
    ExecutionPhase,
)
from ..storage.job_store import JobStore
from ..storage.transitions import Changed, TransitionOutcome

if TYPE_CHECKING:
    from .lifecycle import JobLifecycle

__all__ = ["Followers", "dependency_error"]

#: Most children a parent's abort aborts in one go.
_MAX_CHILDREN = 10_000

#: Follow-ups still to make in the current task (see `Followers.changed`).
_PENDING: contextvars.ContextVar[list[TransitionOutcome] | None] = (
    contextvars.ContextVar("phaser_follow_ups", default=None)
)


def dependency_error(job_id: str, ending: str) -> JobError:
    """The error of a job whose dependency did not complete."""
    return JobError(
        ErrorType.FATAL,
        f"Dependency {job_id} {ending}; this job waited for it to complete",
        code=ErrorCode.DEPENDENCY_FAILED,
    )


def _ending(job: Job | None) -> ExecutionPhase | None:
    """How a dependency ended: its final phase (an archived job's, from
    its history); `None` while it has not ended."""
    if job is None or job.phase not in FINAL_PHASES:
        return None
    if job.phase is not ARCHIVED:
        return job.phase
    ended = [
        change.phase
        for change in job.history
        if change.phase in FINAL_PHASES and change.phase is not ARCHIVED
    ]
    return ended[-1] if ended else ARCHIVED


class Followers:
    """Follow-ups of job changes.

    Parameters
    ----------
    lifecycle
        Makes the follow-up transitions (and hands them back here).
    store
        Job store (records, dependants, children, limit groups).
    """

    def __init__(self, lifecycle: JobLifecycle, store: JobStore) -> None:
        self._lifecycle = lifecycle
        self._store = store

    async def changed(self, outcome: TransitionOutcome) -> None:
        """Make the follow-ups of one transition, and of those."""
        pending = _PENDING.get()
        if pending is not None:
            pending.append(outcome)  # a follow-up's own: the loop below
            return
        work = [outcome]
        token = _PENDING.set(work)
        try:
            while work:
                await self._follow(work.pop(0))
        finally:
            _PENDING.reset(token)

    async def deleted(self, waiting: list[str]) -> None:
        """Jobs that were waiting for deleted ones: decide them now."""
        if waiting:
            await self.resolve(waiting)

    async def _follow(self, outcome: TransitionOutcome) -> None:
        if not isinstance(outcome, Changed):
            return
        job, was = outcome.job, outcome.was
        if job.phase is was:
            return
        if (
            job.limits
            and was in ADMITTED_PHASES
            and job.phase not in ADMITTED_PHASES
        ):
            await self._lifecycle.sending.send_admitted(
                await self._store.limits.admit_next(job.limits)
            )
        if job.phase in FINAL_PHASES and was not in FINAL_PHASES:
            if job.has_dependants:
                await self.resolve(
                    await self._store.relations.dependants(job.id)
                )
            if job.has_children and job.phase is STOPPED:
                await self._abort_children(job)

    async def resolve(self, job_ids: Iterable[str]) -> int:
        """Queue or fail HELD jobs whose dependencies have all ended (or
        one did not complete); leave the others waiting. Returns how many
        were decided."""
        decided = 0
        for job in await self._store.get_many(sorted(set(job_ids))):
            if job.phase is not HELD or not job.after:
                continue
            deps = {d.id: d for d in await self._store.get_many(job.after)}
            waiting = False
            for dep_id in job.after:
                ending = _ending(deps.get(dep_id))
                if dep_id not in deps:
                    reason = "was deleted"
                elif ending is None:
                    waiting = True
                    continue
                else:
                    reason = f"ended {ending.value}"
                if job.after_policy == "all_completed" and (
                    ending is not SUCCEEDED
                ):
                    outcome = await self._lifecycle.fail_held(
                        job, dependency_error(dep_id, reason)
                    )
                    decided += isinstance(outcome, Changed)
                    break
            else:
                if not waiting:
                    outcome = await self._lifecycle.start(job)
                    decided += isinstance(outcome, Changed)
        return decided

    async def check_waiting(self, older_than: float) -> int:
        """Maintenance's backstop for jobs waiting for others: decide
        those not looked at for ``older_than`` seconds (their dependencies
        tell them; this covers a process that died in between). Returns
        how many were decided."""
        relations = self._store.relations
        until = now() - timedelta(seconds=older_than)
        ids = await relations.due_checks(until)
        if not ids:
            return 0
        decided = await self.resolve(ids)
        still = [
            job.id
            for job in await self._store.get_many(ids)
            if job.phase is HELD and job.after
        ]
        await relations.checked(ids, still, now())
        return decided

    async def reconcile_limits(self) -> int:
        """Repair the concurrency groups after a crash between two steps,
        and queue what that admits (maintenance). Returns how many."""
        return await self._lifecycle.sending.send_admitted(
            await self._store.limits.reconcile()
        )

    async def _abort_children(self, parent: Job) -> None:
        children = await self._store.relations.children(
            parent.owner, parent.id, limit=_MAX_CHILDREN
        )
        for child in await self._store.get_many(children):
            if child.phase not in FINAL_PHASES:
                # A child whose task may not be aborted now goes on.
                await self._lifecycle.abort(child, asked=True)
