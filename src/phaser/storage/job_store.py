"""The Redis job store: records, indexes, schedules and reads.

A job is one hash. Two sorted-set indexes per owner (all jobs; by task and
phase) and global schedules (destruction, execution deadline, heartbeat,
queued) point at it; see `phaser.storage.keys`. Creation and deletion each
go through one Lua script that checks what it must (quotas), moves the
index entries and counts, updates the schedules and publishes an event in
one atomic step; every change in between is a named transition
(`phaser.storage.transitions`), so concurrent actors (a client aborting, a
worker completing) cannot both win. How a record's fields are encoded is
`phaser.storage.codec`.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from ..clock import to_ms
from ..models.job import Job
from ..models.phase import ExecutionPhase, parse_phase
from .activity import ActivityStore
from .codec import AnyJob, JobRef, decode, encode
from .counting import JobCounting
from .durable import Acknowledged
from .events import created_channel, running_channel
from .keys import KeyLayout
from .limits import ConcurrencyLimits
from .lua import load_scripts, script_text
from .outcomes import Created, CreateOutcome, Deleted, Existing, OverQuota
from .relations import Relations
from .schedules import Schedules
from .transitions import JobTransitions
from .webhooks import WebhookOutbox

if TYPE_CHECKING:  # the queue's module uses the store's key names
    from ..queue import QueueEntry

__all__ = [
    "AnyJob",
    "CreateOutcome",
    "Created",
    "Deleted",
    "Existing",
    "JobRef",
    "JobStore",
    "OverQuota",
    "Quota",
    "script_text",
]


@dataclass(frozen=True, slots=True)
class Quota:
    """Per-owner limits checked atomically with a job's creation."""

    max_stored: int | None
    max_active: int | None
    active_phases: Sequence[ExecutionPhase]


#: An idempotency key, the fingerprint of its request, and how long (ms)
#: the key is kept.
Once = tuple[str, str, int]


def _limit(value: int | None) -> str:
    return "" if value is None else str(value)


class JobStore:
    """Persistence of job records in Redis.

    Parameters
    ----------
    redis
        Client with ``decode_responses=True``.
    keys
        The key layout.
    replicas
        Replicas that must confirm each change to a job before it is
        acknowledged (`phaser.storage.durable`); 0: none.
    replica_timeout
        Longest to wait for them (s).
    """

    def __init__(
        self,
        redis: Redis,
        keys: KeyLayout,
        *,
        replicas: int = 0,
        replica_timeout: float = 2.0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        ack = Acknowledged(redis, replicas=replicas, timeout=replica_timeout)
        self._ack = ack
        self._batch: dict[str, list[asyncio.Future[Job | None]]] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()
        #: The schedules maintenance reads.
        self.schedules = Schedules(redis, keys)
        self._create = redis.register_script(script_text("create.lua"))
        self._delete = redis.register_script(script_text("delete.lua"))
        #: The verbs that change stored jobs.
        self.transitions = JobTransitions(redis, keys, ack)
        #: Workers, owners, throughput, counts, the maintenance lease.
        self.activity = ActivityStore(redis, keys)
        #: Admission of jobs with concurrency limits.
        self.limits = ConcurrencyLimits(redis, keys)
        #: Dependants and children.
        self.relations = Relations(redis, keys)
        self.counting = JobCounting(redis, keys)
        #: Webhook deliveries waiting, and attempts made.
        self.webhooks = WebhookOutbox(redis, keys)

    async def load_scripts(self) -> None:
        """Load into Redis every Lua script it does not hold: all of them at
        start-up, any it lost later (a restart without them). Raises
        `redis.exceptions.RedisError` if Redis does not answer, so it is
        also the readiness check."""
        await load_scripts(
            self._redis,
            [
                self._create,
                self._delete,
                *self.transitions.scripts,
                *self.activity.scripts,
                *self.limits.scripts,
                *self.webhooks.scripts,
            ],
        )

    async def create(
        self,
        job: Job,
        quota: Quota | None = None,
        once: Once | None = None,
        entry: QueueEntry | None = None,
    ) -> CreateOutcome:
        """Store a new job (PENDING, or QUEUED if started at once) with its
        index and schedule entries, if the owner's quota allows it and
        (with ``once``) its idempotency key names no other job yet; with
        ``entry``, its first attempt's queue entry in the same step."""
        keys = self._keys.job(job.id, job.owner, job.task)
        key, fingerprint, window = once or ("", "", 0)
        active = list(quota.active_phases) if quota else []
        args = [
            job.id,
            job.task,
            job.phase,
            to_ms(job.destruction_time) if job.destruction_time else "",
            _limit(quota.max_stored if quota else None),
            _limit(quota.max_active if quota else None),
            len(active),
            *active,
            job.run_id or "",
            job.owner or "",
            fingerprint,
            window,
            self._keys.record(""),
            created_channel(self._keys.events),
            json.dumps(
                {
                    "id": job.id,
                    "phase": job.phase,
                    "kind": "created",
                    "owner": job.owner,
                }
            ),
            # Not ASCII-escaped: the script's JSON decoder passes UTF-8
            # through as it is.
            json.dumps(encode(job), separators=(",", ":"), ensure_ascii=False),
            *(entry.args if entry else ()),
        ]
        reply = await self._ack.run(
            self._create,
            [
                keys.record,
                keys.by_owner,
                keys.by_task_phase_prefix,
                keys.counts,
                keys.tasks,
                keys.destruction,
                keys.queued,
                keys.by_run_prefix,
                self._keys.owners,
                self._keys.idempotency(job.owner, key) if once else "",
                self._keys.scheduled,
                self._keys.dependants_prefix,
                self._keys.by_parent_prefix(job.owner),
                self._keys.after_checks,
                *(entry.keys if entry else ("", "", "")),
            ],
            args,
        )
        match reply[0]:
            case "ok":
                return Created(job)
            case "exists":
                return Existing(reply[1], reply[2] == fingerprint)
            case "stored":
                return OverQuota("stored", int(reply[1]))
            case _:
                return OverQuota("active", int(reply[1]))

    async def get(self, job_id: str) -> Job | None:
        """The job, or `None` if there is no such job."""
        data: dict[str, str] = await self._redis.hgetall(  # type: ignore[misc]
            self._keys.record(job_id)
        )
        return decode(job_id, data) if data else None

    async def get_batched(self, job_id: str) -> Job | None:
        """`get`, batched with the other reads asked for in the same turn
        of the event loop: one pipeline (and one connection) for all.

        For waiters: when a burst of jobs ends, thousands of released
        waits each re-read their job; one command each, on as many pooled
        connections, took most of the frontend's time (benchmark B6).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Job | None] = loop.create_future()
        self._batch.setdefault(job_id, []).append(future)
        if len(self._batch) == 1 and len(self._batch[job_id]) == 1:
            loop.call_soon(self._flush_batch)
        return await future

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, {}
        task = asyncio.create_task(self._read_batch(batch))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    async def _read_batch(
        self, batch: dict[str, list[asyncio.Future[Job | None]]]
    ) -> None:
        futures_of = [f for futures in batch.values() for f in futures]
        try:
            rows = await self._records(list(batch))
        except asyncio.CancelledError:
            for future in futures_of:
                future.cancel()
            raise
        except Exception as exc:
            for future in futures_of:
                if not future.done():
                    future.set_exception(exc)
            return
        for (job_id, futures), row in zip(batch.items(), rows, strict=True):
            job = decode(job_id, row) if row else None
            for future in futures:
                if not future.done():
                    future.set_result(job)

    async def refs(self, job_ids: Sequence[str]) -> list[JobRef]:
        """References to the jobs that still exist among ``job_ids``, in
        that order: three fields of each record instead of all of them
        (maintenance destroys expired jobs a thousand at a time)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(
                    self._keys.record(job_id), ["owner", "task", "phase"]
                )
            rows = await pipe.execute()
        return [
            JobRef(job_id, owner, task, parse_phase(phase))
            for job_id, (owner, task, phase) in zip(job_ids, rows, strict=True)
            if phase is not None
        ]

    async def _records(self, job_ids: Sequence[str]) -> list[dict[str, str]]:
        """The raw records of some jobs in one pipeline (empty: gone)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self._keys.record(job_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return rows

    async def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that still exist among ``job_ids``, in that order."""
        rows = await self._records(job_ids)
        return [
            decode(job_id, row)
            for job_id, row in zip(job_ids, rows, strict=True)
            if row
        ]

    async def delete(self, job: AnyJob) -> ExecutionPhase | None:
        """Remove the record and all its entries; its former phase."""
        return (await self.delete_many([job])).phases[0]

    async def delete_many(self, jobs: Sequence[AnyJob]) -> Deleted:
        """Remove records and all their entries in one script call: the
        phase each job was in (`None`: it was already gone), and the jobs
        that were waiting for them."""
        if not jobs:
            return Deleted([], [])
        layout = self._keys
        keys = [
            layout.destruction,
            layout.deadline,
            layout.heartbeat,
            layout.queued,
            layout.scheduled,
            layout.after_checks,
            layout.dependants_prefix,
        ]
        for job in jobs:
            keys += [
                layout.record(job.id),
                layout.by_owner(job.owner),
                layout.by_task_phase_prefix(job.owner, job.task),
                layout.counts(job.owner),
                layout.by_run_prefix(job.owner),
                layout.by_parent_prefix(job.owner),
            ]
        channels = [self._keys.events, running_channel(self._keys.events)]
        phases, waiting = await self._ack.run(
            self._delete, keys, [*channels, *(job.id for job in jobs)]
        )
        return Deleted(
            [ExecutionPhase(phase) if phase else None for phase in phases],
            sorted(set(waiting)),
        )

    async def list_ids(
        self,
        *,
        owner: str | None,
        tasks: Sequence[str] | None,
        phases: Sequence[ExecutionPhase] | None,
        newer_than: str | None,
        older_than: str | None,
        limit: int,
        run_id: str | None = None,
        parent_id: str | None = None,
    ) -> list[str]:
        """Ids of an owner's jobs, newest first.

        Each index read is a ``ZREVRANGEBYLEX`` limited to ``limit`` entries,
        so the cost depends on the page size and the number of indexes
        merged (tasks × phases), never on how many jobs are stored.

        Parameters
        ----------
        owner
            Whose jobs.
        tasks
            Only these tasks (`None`: all).
        phases
            Only these phases (`None`: all).
        newer_than
            Exclusive lower bound on the id (ids sort by creation time).
        older_than
            Exclusive upper bound on the id (the pagination cursor).
        limit
            Most ids to return.
        run_id
            Only jobs with this run id: read from that run id's index, and
            then ``tasks`` and ``phases`` are ignored (the caller filters).
        parent_id
            Only that job's children: read from its index, and then
            ``run_id``, ``tasks`` and ``phases`` are ignored.
        """
        indexes: list[str]
        if parent_id is not None:
            indexes = [self._keys.by_parent(owner, parent_id)]
        elif run_id is not None:
            indexes = [self._keys.by_run(owner, run_id)]
        elif tasks is None and phases is None:
            indexes = [self._keys.by_owner(owner)]
        else:
            if tasks is None:
                tasks = sorted(
                    await self._redis.smembers(  # type: ignore[misc]
                        self._keys.tasks(owner)
                    )
                )
            indexes = [
                self._keys.by_task_phase(owner, t, p)
                for t in tasks
                for p in (phases or list(ExecutionPhase))
            ]
        high = f"({older_than}" if older_than else "+"
        low = f"({newer_than}" if newer_than else "-"
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zrevrangebylex(index, high, low, start=0, num=limit)
            pages: list[list[str]] = await pipe.execute()
        if len(pages) == 1:
            return pages[0]
        merged = heapq.merge(*pages, reverse=True)
        return list(dict.fromkeys(merged))[:limit]
