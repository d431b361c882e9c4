"""Relations between jobs: who waits for whom (``after``), and parents'
children. The creation script writes them (``create.lua``: a job names
itself in each of its dependencies' dependants sets, and in its owner's
index of its parent's children); the deletion script drops them."""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from ..clock import to_ms
from .keys import KeyLayout

__all__ = ["Relations"]

#: Jobs a dependency check of maintenance reads per pass.
_BATCH = 1000


class Relations:
    """Reads of the relations, and the dependency check schedule.

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

    async def dependants(self, job_id: str) -> list[str]:
        """The jobs that named ``job_id`` in their ``after``."""
        members: set[str] = await self._redis.smembers(  # type: ignore[misc]
            self._keys.dependants(job_id)
        )
        return sorted(members)

    async def children(
        self, owner: str | None, parent_id: str, *, limit: int
    ) -> list[str]:
        """Ids of an owner's jobs whose parent is ``parent_id``, newest
        first."""
        ids: list[str] = await self._redis.zrevrangebylex(
            self._keys.by_parent(owner, parent_id), "+", "-", 0, limit
        )
        return ids

    async def due_checks(self, until: datetime) -> list[str]:
        """Jobs waiting for others that were last checked before
        ``until``."""
        ids: list[str] = await self._redis.zrangebyscore(
            self._keys.after_checks, "-inf", to_ms(until), 0, _BATCH
        )
        return ids

    async def checked(
        self, ids: list[str], still: list[str], at: datetime
    ) -> None:
        """Record a check: the jobs of ``ids`` not in ``still`` no longer
        wait (they leave the schedule); those in it were checked ``at``."""
        done = sorted(set(ids) - set(still))
        async with self._redis.pipeline(transaction=False) as pipe:
            if done:
                pipe.zrem(self._keys.after_checks, *done)
            if still:
                pipe.zadd(
                    self._keys.after_checks,
                    dict.fromkeys(still, to_ms(at)),
                    xx=True,
                )
            await pipe.execute()
