"""How many of an owner's jobs match a list's filters, from the indexes
alone (no job is read): the answer to ``total`` and ``/jobs/count``.

- By phase only (or no filter): the owner's per-phase counts (one
  ``HMGET``), kept by the same atomic steps that change phases.
- By task and/or phase, and creation time (``after``): one ``ZCARD`` (or
  ``ZLEXCOUNT`` from the time's bound: ids sort by creation time) per
  task-and-phase index, in one pipeline; tasks × phases indexes, a bounded
  number.
- A parent's children by phase: the counts on its record (see
  `phaser.storage.values.CHILD_FIELD`).

Other filters (run id, top-level only, a parent's children by task or
time) would need the jobs read: no total (`None`).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from ..models.phase import ExecutionPhase
from .keys import KeyLayout
from .values import CHILD_FIELD

__all__ = ["JobCounting"]


class JobCounting:
    """Counts of an owner's jobs by task, phase and creation time.

    Parameters
    ----------
    redis
        Client with ``decode_responses=True``.
    keys
        Key layout.
    """

    def __init__(self, redis: Redis, keys: KeyLayout) -> None:
        self._redis = redis
        self._keys = keys

    async def count(
        self,
        *,
        owner: str | None,
        tasks: Sequence[str] | None,
        phases: Sequence[ExecutionPhase],
        newer_than: str | None,
    ) -> int:
        """How many of ``owner``'s jobs of ``tasks`` (`None`: any) are in
        one of ``phases`` and have an id above ``newer_than`` (if given)."""
        if tasks is None and newer_than is None:
            values = await self._redis.hmget(  # type: ignore[misc]
                self._keys.counts(owner), [p.value for p in phases]
            )
            return sum(max(int(v or 0), 0) for v in values)
        if tasks is None:
            tasks = list(
                await self._redis.smembers(  # type: ignore[misc]
                    self._keys.tasks(owner)
                )
            )
        async with self._redis.pipeline(transaction=False) as pipe:
            for task in tasks:
                for phase in phases:
                    index = self._keys.by_task_phase(owner, task, phase)
                    if newer_than is None:
                        pipe.zcard(index)
                    else:
                        pipe.zlexcount(index, f"({newer_than}", "+")
            counts: list[int] = await pipe.execute()
        return sum(counts)

    async def children(
        self,
        owner: str | None,
        job_id: str,
        phases: Sequence[ExecutionPhase],
    ) -> int:
        """How many of ``owner``'s parent's children are in one of
        ``phases`` (0 if it is no job of ``owner``'s)."""
        whose, *values = await self._redis.hmget(  # type: ignore[misc]
            self._keys.record(job_id),
            ["owner", *(CHILD_FIELD[p] for p in phases)],
        )
        if whose != owner:
            return 0
        return sum(max(int(v or 0), 0) for v in values)
