"""Reads and counters about activity rather than single jobs: workers
seen, owners, throughput per minute, counts by task and phase, the
maintenance lease. None of it reads a job record but running jobs'
claims."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from redis.asyncio import Redis

from ..clock import from_ms, to_ms
from ..models.phase import RUNNING, WAITING, ExecutionPhase
from .keys import KeyLayout
from .lua import script_text

__all__ = ["ActivityStore"]


class ActivityStore:
    """Activity records in Redis.

    Parameters
    ----------
    redis
        Client with ``decode_responses=True``.
    keys
        The key layout.
    """

    def __init__(self, redis: Redis, keys: KeyLayout) -> None:
        self._redis = redis
        self._keys = keys
        self._lease = redis.register_script(script_text("lease.lua"))
        #: The scripts, for `phaser.storage.lua.load_scripts`.
        self.scripts = [self._lease]

    async def worker_seen(
        self, worker_id: str, at: datetime, *, forget_before: datetime
    ) -> None:
        """Record that a worker is alive, and forget workers silent since
        before ``forget_before``."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._keys.workers, {worker_id: to_ms(at)})
            pipe.zremrangebyscore(
                self._keys.workers, "-inf", f"({to_ms(forget_before)}"
            )
            await pipe.execute()

    async def workers(self) -> list[tuple[str, datetime]]:
        """Workers seen in the last hour, most recently seen first."""
        seen: list[tuple[str, float]] = await self._redis.zrevrange(
            self._keys.workers, 0, -1, withscores=True
        )
        return [(worker, from_ms(int(ms))) for worker, ms in seen]

    async def owners(self) -> list[str]:
        """Names of every owner who has created a job, sorted."""
        names: set[str] = await self._redis.smembers(  # type: ignore[misc]
            self._keys.owners
        )
        return sorted(names)

    async def claims(
        self, owner: str | None, tasks: Iterable[str], limit: int = 100
    ) -> list[tuple[str, str]]:
        """An owner's EXECUTING jobs (up to ``limit`` per task) with the
        claim each carries (which names the worker running it)."""
        running = await self._oldest(owner, tasks, RUNNING, limit)
        ids = [job_id for chunk in running for job_id in chunk]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._keys.record(job_id), "claim")
            claims: list[str | None] = await pipe.execute()
        return [
            (job_id, claim)
            for job_id, claim in zip(ids, claims, strict=True)
            if claim
        ]

    async def last_worker_seen(self) -> datetime | None:
        """When a worker (any) was last seen alive, if one has been."""
        newest: list[tuple[str, float]] = await self._redis.zrevrange(
            self._keys.workers, 0, 0, withscores=True
        )
        return from_ms(int(newest[0][1])) if newest else None

    async def throughput(
        self, kind: str, until: datetime, minutes: int
    ) -> list[int]:
        """Jobs ``kind`` per minute, the ``minutes`` minutes up to
        ``until``'s (newest first)."""
        last = to_ms(until) // 60_000
        keys = [self._keys.throughput(kind, last - n) for n in range(minutes)]
        values: list[str | None] = await self._redis.mget(keys)
        return [int(value or 0) for value in values]

    async def task_phase_counts(
        self, owner: str | None
    ) -> dict[str, dict[ExecutionPhase, int]]:
        """An owner's jobs counted by task and phase (the sizes of the
        task-and-phase indexes: no job is read)."""
        tasks = sorted(
            await self._redis.smembers(  # type: ignore[misc]
                self._keys.tasks(owner)
            )
        )
        pairs = [(task, phase) for task in tasks for phase in ExecutionPhase]
        async with self._redis.pipeline(transaction=False) as pipe:
            for task, phase in pairs:
                pipe.zcard(self._keys.by_task_phase(owner, task, phase))
            sizes: list[int] = await pipe.execute()
        counts: dict[str, dict[ExecutionPhase, int]] = {}
        for (task, phase), size in zip(pairs, sizes, strict=True):
            if size:
                counts.setdefault(task, {})[phase] = size
        return counts

    async def _oldest(
        self,
        owner: str | None,
        tasks: Iterable[str],
        phase: ExecutionPhase,
        limit: int,
    ) -> list[list[str]]:
        """Per task, the ids of an owner's oldest ``limit`` jobs in a phase
        (ids sort by creation time)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for task in tasks:
                pipe.zrangebylex(
                    self._keys.by_task_phase(owner, task, phase),
                    "-",
                    "+",
                    start=0,
                    num=limit,
                )
            found: list[list[str]] = await pipe.execute()
        return found

    async def oldest_queued(
        self, owner: str | None, tasks: Iterable[str]
    ) -> str | None:
        """The id of an owner's oldest QUEUED job (ids sort by creation)."""
        firsts = await self._oldest(owner, tasks, WAITING, 1)
        ids = [first[0] for first in firsts if first]
        return min(ids) if ids else None

    async def hold_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew a named lease for ``ttl`` seconds; whether we hold
        it. Only the holder of the maintenance lease runs maintenance."""
        reply = await self._lease(
            keys=[self._keys.lease(name)],
            args=[holder, str(int(ttl * 1000))],
        )
        return bool(reply)

    async def due_once(self, name: str, every: float) -> bool:
        """Whether a chore done at most once every ``every`` seconds (by
        any process) is due; the first to ask after that gets true."""
        taken = await self._redis.set(
            self._keys.lease(f"once:{name}"),
            "1",
            nx=True,
            px=max(1, int(every * 1000)),
        )
        return bool(taken)

    async def missing_jobs(self, job_ids: list[str]) -> list[str]:
        """The ids among ``job_ids`` that have no record."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(self._keys.record(job_id))
            found: list[int] = await pipe.execute()
        pairs = zip(job_ids, found, strict=True)
        return [job_id for job_id, n in pairs if not n]
