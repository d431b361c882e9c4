"""Concurrency limits: at most N admitted (queued-to-run or running) jobs
per group, across every worker.

A job's record names its groups and their limits (``limits``, decided at
creation: its task's ``max_running``, its owner's concurrency key). Its
send to the queue goes through ``admit.lua``: with room in every group it
is admitted (a member of each group's running set) and queued; otherwise
it waits, QUEUED, in a full group's waiting set, in queue order. Leaving
QUEUED/EXECUTING/SUSPENDED drops it from the sets (``transition.lua``),
and whoever made that change admits the jobs that were waiting
(`admit_next`). A claim checks membership, so a job never runs without
its place. `reconcile` (maintenance) repairs what a crash between two of
these steps can leave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from urllib.parse import quote

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ..models.phase import ADMITTED_PHASES, parse_phase
from .keys import KeyLayout
from .lua import script_text

__all__ = ["ConcurrencyLimits", "key_group", "task_group"]


def task_group(task: str) -> str:
    """The group of every job of a task (its ``max_running``)."""
    return f"task:{quote(task, safe='')}"


def key_group(owner: str | None, key: str) -> str:
    """The group of one owner's jobs with one concurrency key."""
    return f"key:{quote(owner or '', safe='')}:{quote(key, safe='')}"


class ConcurrencyLimits:
    """Admission of jobs with concurrency limits.

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
        self._script = redis.register_script(script_text("admit.lua"))
        #: The script, for `phaser.storage.lua.load_scripts`.
        self.scripts = [self._script]

    async def admit(self, job_id: str, score: int) -> bool:
        """Admit a QUEUED job if each of its groups has room, else let it
        wait (keeping its place if it already waits). Returns whether it
        was admitted (then the caller queues it)."""
        admitted = await self._script(
            keys=self._script_keys, args=["job", job_id, score]
        )
        return bool(admitted)

    async def admit_next(self, groups: Iterable[str]) -> list[str]:
        """Admit the jobs waiting for room in ``groups``, in order, while
        there is room. Returns their ids (the caller queues them)."""
        names = sorted(set(groups))
        if not names:
            return []
        admitted: list[str] = await self._script(
            keys=self._script_keys, args=["next", *names]
        )
        return admitted

    async def is_waiting(self, job_id: str, groups: Iterable[str]) -> bool:
        """Whether a job waits for room in one of ``groups``."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zscore(self._wait(group), job_id)
            scores = await pipe.execute()
        return any(score is not None for score in scores)

    async def admitted(self, group: str) -> set[str]:
        """The jobs admitted in a group."""
        members: set[str] = await self._redis.smembers(  # type: ignore[misc]
            self._run(group)
        )
        return members

    async def reconcile(self) -> list[str]:
        """Drop admitted and waiting entries of jobs that are gone or no
        longer QUEUED/EXECUTING/SUSPENDED (a crash between a change and
        its clean-up), forget empty groups, and admit what now has room.
        Returns the ids admitted."""
        groups: set[str] = await self._redis.smembers(  # type: ignore[misc]
            self._groups
        )
        for group in groups:
            admitted = await self.admitted(group)
            waiting = await self._redis.zrange(self._wait(group), 0, 999)
            members = sorted({*admitted, *waiting})
            if not members:
                await self._forget(group)
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in members:
                    pipe.hget(self._keys.record(job_id), "phase")
                phases = await pipe.execute()
            stale = [
                job_id
                for job_id, phase in zip(members, phases, strict=True)
                if phase is None or parse_phase(phase) not in ADMITTED_PHASES
            ]
            if stale:
                await self._redis.srem(  # type: ignore[misc]
                    self._run(group), *stale
                )
                await self._redis.zrem(self._wait(group), *stale)
        return await self.admit_next(groups)

    async def _forget(self, group: str) -> None:
        """Forget a group that is empty (unless a job joined meanwhile)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(self._run(group), self._wait(group))
            running = await pipe.scard(self._run(group))  # type: ignore[misc]
            if running or await pipe.zcard(self._wait(group)):
                return
            pipe.multi()
            pipe.srem(self._groups, group)
            with contextlib.suppress(WatchError):
                await pipe.execute()

    @property
    def _script_keys(self) -> list[str]:
        return [self._keys.limits_prefix, self._keys.record_prefix]

    @property
    def _groups(self) -> str:
        return f"{self._keys.limits_prefix}groups"

    def _run(self, group: str) -> str:
        return f"{self._keys.limits_prefix}run:{group}"

    def _wait(self, group: str) -> str:
        return f"{self._keys.limits_prefix}wait:{group}"
