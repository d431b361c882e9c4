"""The schedules maintenance reads: sorted sets of job ids scored by a
time (destruction, deadline, heartbeat, queued since, start). The
scripts keep them in step with the records; this reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from redis.asyncio import Redis

from ..clock import now, to_ms
from .keys import KeyLayout

__all__ = ["Schedule", "Schedules"]

#: A schedule's name.
Schedule = Literal[
    "destruction", "deadline", "heartbeat", "queued", "scheduled"
]


class Schedules:
    """Reads (and a few writes) of the schedules.

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

    async def due(
        self,
        schedule: Schedule,
        *,
        until: datetime,
        limit: int,
    ) -> list[str]:
        """Ids of jobs whose time in a schedule is at or before ``until``."""
        key = getattr(self._keys, schedule)
        ids: list[str] = await self._redis.zrangebyscore(
            key, "-inf", to_ms(until), start=0, num=limit
        )
        return ids

    async def next_due(self, schedule: Schedule) -> float | None:
        """Seconds from now until the first time in a schedule (0 if it
        has passed); `None` for an empty schedule."""
        first = await self._redis.zrange(
            getattr(self._keys, schedule), 0, 0, withscores=True
        )
        if not first:
            return None
        return max(0.0, (first[0][1] - to_ms(now())) / 1000)

    async def unschedule(self, schedule: Schedule, ids: list[str]) -> None:
        """Drop entries of a schedule (jobs that are gone, or no longer in
        the phase the schedule is for)."""
        if ids:
            await self._redis.zrem(getattr(self._keys, schedule), *ids)

    async def defer(self, job_id: str, at: datetime) -> None:
        """Put a QUEUED job's next send in the start schedule at ``at``
        (a retry after its backoff)."""
        await self._redis.zadd(self._keys.scheduled, {job_id: to_ms(at)})

    async def take(self, schedule: Schedule, job_id: str) -> bool:
        """Remove a job's entry; true for the one caller that removed it."""
        removed: int = await self._redis.zrem(
            getattr(self._keys, schedule), job_id
        )
        return removed == 1

    async def holds(self, schedule: Schedule, job_id: str) -> bool:
        """Whether a job has an entry in a schedule."""
        score = await self._redis.zscore(getattr(self._keys, schedule), job_id)
        return score is not None

    async def touch_queued(self, job_id: str, at: datetime) -> None:
        """Move a queued job's time in the queued schedule (if it is there)."""
        await self._redis.zadd(self._keys.queued, {job_id: to_ms(at)}, xx=True)
