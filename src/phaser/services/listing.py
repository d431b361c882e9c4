"""Job lists: one page of an owner's jobs, newest first, filtered by task,
phase, run id and creation time, read from the store's indexes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..clock import to_ms
from ..models.caller import Caller
from ..models.errors import PhaserError
from ..models.job import Job
from ..models.phase import LISTED_PHASES, ExecutionPhase
from ..storage.job_store import JobStore
from .checks import utc
from .ids import after_bound, is_job_id

__all__ = ["JobFilters", "JobPage", "count_jobs", "list_jobs"]


@dataclass(frozen=True, slots=True)
class JobFilters:
    """Which jobs a list (or a count) takes: an admin's ``owner``'s (the
    caller's own otherwise), of a task, in some phases (`None`: all but
    ARCHIVED), with a run id, a parent's children or only jobs without a
    parent (``top_level``), created after a time."""

    owner: str | None = None
    task: str | None = None
    phases: Sequence[ExecutionPhase] | None = None
    run_id: str | None = None
    parent_id: str | None = None
    after: datetime | None = None
    top_level: bool = False

    def phase_list(self) -> list[ExecutionPhase]:
        """The phases asked for, each once (`LISTED_PHASES` if none)."""
        return list(dict.fromkeys(self.phases or LISTED_PHASES))

    def newer_than(self) -> str | None:
        """The id bound of ``after`` (ids sort by creation time)."""
        if self.after is None:
            return None
        return after_bound(to_ms(utc("after", self.after)))


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job list and the cursor of the next, if any."""

    jobs: list[Job]
    next_cursor: str | None


async def list_jobs(
    store: JobStore,
    caller: Caller,
    filters: JobFilters,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> JobPage:
    """The caller's jobs (an admin's: ``owner``'s), newest first, one
    page at a time.

    Without ``phases``, every phase but ARCHIVED (`LISTED_PHASES`), in
    both dialects: archived jobs are listed only when asked for.

    Task and phase filters read dedicated indexes, and so do ``run_id``
    and ``parent_id`` (a parent's children); with one of those and
    another filter, its jobs are read and filtered, so the cost grows
    with the jobs of that run id (or parent) that the other filters
    skip. With no filter, the
    owner's index is read (one index, not one per task and phase) and
    archived jobs are skipped, so the cost grows with the archived jobs
    among those read, which are the oldest. ``top_level`` (jobs without a
    parent) is a filter on what those indexes give: its cost grows with
    the children skipped.
    """
    task, run_id, parent_id = filters.task, filters.run_id, filters.parent_id
    top_level = filters.top_level
    default = not filters.phases
    phases = filters.phase_list()
    wanted = set(phases)
    whose = caller.acting_for(filters.owner)
    if cursor is not None and not is_job_id(cursor):
        raise PhaserError(f"Invalid cursor {cursor!r}")
    newer_than = filters.newer_than()
    by_index = run_id is not None or parent_id is not None
    owner_index = default and task is None and not by_index
    filtered = owner_index or by_index or top_level
    collected: list[Job] = []
    position = cursor
    batch = max(limit * 2, 100) if by_index or top_level else limit + 1
    while True:
        ids = await store.list_ids(
            owner=whose,
            tasks=[task] if task and not owner_index else None,
            phases=None if owner_index else phases,
            newer_than=newer_than,
            older_than=position,
            limit=batch,
            run_id=run_id,
            parent_id=parent_id,
        )
        for job in await store.get_many(ids):
            if not filtered or (
                (task is None or job.task == task)
                and job.phase in wanted
                and (run_id is None or job.run_id == run_id)
                and not (top_level and job.parent_id is not None)
            ):
                collected.append(job)
            if len(collected) > limit:
                page = collected[:limit]
                return JobPage(jobs=page, next_cursor=page[-1].id)
        if len(ids) < batch:
            return JobPage(jobs=collected, next_cursor=None)
        position = ids[-1]


async def count_jobs(
    store: JobStore, caller: Caller, filters: JobFilters
) -> int | None:
    """How many jobs `list_jobs` would list with these filters, over
    every page, where the indexes say without reading jobs
    (`phaser.storage.counting`): `None` with a run id, ``top_level``, or
    a parent's children filtered by task or time."""
    phases = filters.phase_list()
    whose = caller.acting_for(filters.owner)
    if filters.run_id is not None or filters.top_level:
        return None
    if filters.parent_id is not None:
        if filters.task is not None or filters.after is not None:
            return None
        return await store.counting.children(whose, filters.parent_id, phases)
    return await store.counting.count(
        owner=whose,
        tasks=[filters.task] if filters.task else None,
        phases=phases,
        newer_than=filters.newer_than(),
    )
