"""The Redis job store: records, indexes, schedules and transitions.

A job is one hash. Two sorted-set indexes per owner (all jobs; by task and
phase) and global schedules (destruction, execution deadline, heartbeat,
queued) point at it; see `phaser.storage.keys`. Creation, every change of
phase and deletion each go through one Lua script that checks what it must
(quotas, the current phase, a claim), moves the index entries and counts,
updates the schedules and publishes an event in one atomic step, so
concurrent actors (a client aborting, a worker completing) cannot both win.

Record values are kept short (times as milliseconds, results as compact
lists) so that Redis keeps a small job's hash in its compact encoding.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib import resources
from typing import Any, Literal, TypeVar

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ..clock import from_ms, to_ms
from ..models.job import (
    ErrorType,
    Job,
    JobError,
    JobResult,
    PhaseChange,
    Progress,
)
from ..models.phase import ExecutionPhase
from ..models.text import clean_text, clean_value
from .events import created_channel
from .keys import KeyLayout

__all__ = [
    "AnyJob",
    "CreateResult",
    "JobRef",
    "JobStore",
    "Outcome",
    "Quota",
    "TransitionResult",
    "script_text",
]

_logger = structlog.get_logger("phaser.storage")

Unchanged = Literal["keep"]
KEEP: Unchanged = "keep"


class Outcome(StrEnum):
    """How a compare-and-set ended."""

    OK = "ok"
    MISSING = "missing"  # no such job
    PHASE = "phase"  # the job was not in an allowed phase
    CHECK = "check"  # the claim or attempt check failed
    STORED = "stored"  # creation: the owner's stored-jobs limit
    ACTIVE = "active"  # creation: the owner's active-jobs limit


@dataclass(frozen=True, slots=True)
class JobRef:
    """What identifies a job's keys, and its phase: enough to change or
    delete it without reading (and decoding) the whole record."""

    id: str
    owner: str | None
    task: str
    phase: ExecutionPhase


#: A job as the store's writes need it: the record, or a reference.
AnyJob = Job | JobRef


@dataclass(frozen=True, slots=True)
class Quota:
    """Per-owner limits checked atomically with a job's creation."""

    max_stored: int | None
    max_active: int | None
    active_phases: Sequence[ExecutionPhase]


@dataclass(frozen=True, slots=True)
class CreateResult:
    """Outcome of `JobStore.create`: ok, or the limit hit and the count
    that hit it."""

    outcome: Outcome
    count: int = 0

    @property
    def ok(self) -> bool:
        """Whether the job was stored."""
        return self.outcome is Outcome.OK


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """Outcome of `JobStore.transition`, with the phase seen in Redis."""

    outcome: Outcome
    phase: ExecutionPhase | None

    @property
    def ok(self) -> bool:
        """Whether the transition was applied."""
        return self.outcome is Outcome.OK


def script_text(name: str) -> str:
    """The text of one of the Lua scripts beside this module."""
    return (
        resources.files("phaser.storage")
        .joinpath("scripts", name)
        .read_text("utf-8")
    )


def _phase(value: str) -> ExecutionPhase:
    try:
        return ExecutionPhase(value)
    except ValueError:
        return ExecutionPhase.UNKNOWN


def _ms_or_none(value: str | None) -> datetime | None:
    return from_ms(int(value)) if value else None


def _schedule_arg(value: datetime | Unchanged | None) -> str:
    if value == KEEP:
        return ""
    if value is None:
        return "-"
    return str(to_ms(value))


class JobStore:
    """Persistence of job records in Redis.

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
        self._batch: dict[str, list[asyncio.Future[Job | None]]] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._create = redis.register_script(script_text("create.lua"))
        self._transition = redis.register_script(script_text("transition.lua"))
        self._record_result = redis.register_script(
            script_text("record_result.lua")
        )
        self._delete = redis.register_script(script_text("delete.lua"))
        self._lease = redis.register_script(script_text("lease.lua"))

    async def load_scripts(self) -> None:
        """Load into Redis every Lua script it does not hold: all of them at
        start-up, any it lost later (a restart without them). Raises
        `redis.exceptions.RedisError` if Redis does not answer, so it is
        also the readiness check."""
        scripts: list[AsyncScript] = [
            self._create,
            self._transition,
            self._record_result,
            self._delete,
            self._lease,
        ]
        loaded = await self._redis.script_exists(
            *(script.sha for script in scripts)
        )
        for script, present in zip(scripts, loaded, strict=True):
            if not present:
                await self._redis.script_load(script.script)

    async def create(
        self, job: Job, quota: Quota | None = None
    ) -> CreateResult:
        """Store a new job (PENDING, or QUEUED if started at once) with its
        index and schedule entries, if the owner's quota allows it."""
        keys = self._keys.job(job.id, job.owner, job.task)
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
            created_channel(self._keys.events),
            json.dumps(
                {
                    "id": job.id,
                    "phase": job.phase,
                    "kind": "created",
                    "owner": job.owner,
                }
            ),
        ]
        for name, value in _encode(job).items():
            args += [name, value]
        reply = await self._create(
            keys=[
                keys.record,
                keys.by_owner,
                keys.by_task_phase_prefix,
                keys.counts,
                keys.tasks,
                keys.destruction,
                keys.queued,
                keys.by_run_prefix,
                self._keys.owners,
            ],
            args=args,
        )
        return CreateResult(
            Outcome(reply[0]), int(reply[1]) if len(reply) > 1 else 0
        )

    async def get(self, job_id: str) -> Job | None:
        """The job, or `None` if there is no such job."""
        data: dict[str, str] = await self._redis.hgetall(  # type: ignore[misc]
            self._keys.record(job_id)
        )
        return _decode(job_id, data) if data else None

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
            job = _decode(job_id, row) if row else None
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
            JobRef(job_id, owner, task, _phase(phase))
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
            _decode(job_id, row)
            for job_id, row in zip(job_ids, rows, strict=True)
            if row
        ]

    async def transition(
        self,
        job: AnyJob,
        *,
        allowed: Iterable[ExecutionPhase],
        to: ExecutionPhase | None = None,
        check: tuple[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
        clear: Sequence[str] = (),
        destruction: datetime | Unchanged | None = KEEP,
        deadline: datetime | Unchanged | None = KEEP,
        heartbeat: datetime | None = None,
        event: str = "phase",
    ) -> TransitionResult:
        """Change a job if it is in one of the allowed phases.

        Parameters
        ----------
        job
            The job; only its id, owner and task are used.
        allowed
            Phases the job must be in for the change to apply.
        to
            New phase, `None` to keep the phase.
        check
            A record field and the value it must hold (the worker's claim,
            the attempt a queue message belongs to).
        fields
            Record fields to set, by `Job` attribute name.
        clear
            Record fields to remove, by `Job` attribute name.
        destruction
            New destruction time, `None` to drop it, or keep.
        deadline
            New execution deadline, `None` to drop it, or keep.
        heartbeat
            Time of a heartbeat to record in the heartbeat schedule. Leaving
            EXECUTING drops the job from the deadline and heartbeat
            schedules in any case.
        event
            Kind of the event published on success; empty for none.
        """
        keys = self._keys.job(job.id, job.owner, job.task)
        encoded = _encode_fields(job.id, fields or {})
        args: list[str] = [
            job.id,
            "," + ",".join(allowed) + ",",
            to or "",
            _FIELD[check[0]] if check else "",
            check[1] if check else "",
            _schedule_arg(destruction),
            _schedule_arg(deadline),
            self._keys.events,
            event,
            str(to_ms(heartbeat)) if heartbeat else "",
            str(len(encoded)),
        ]
        for name, value in encoded.items():
            args += [name, value]
        args += [_FIELD[name] for name in clear]
        reply = await self._transition(
            keys=[
                keys.record,
                keys.counts,
                keys.by_task_phase_prefix,
                keys.destruction,
                keys.deadline,
                keys.heartbeat,
                keys.queued,
                keys.by_run_prefix,
            ],
            args=args,
        )
        outcome = Outcome(reply[0])
        phase = ExecutionPhase(reply[1]) if len(reply) > 1 else None
        return TransitionResult(outcome=outcome, phase=phase)

    async def record_result(
        self, job: Job, *, claim: str, result: JobResult
    ) -> Outcome:
        """Add a result to a running job if ``claim`` still holds it."""
        reply = await self._record_result(
            keys=[self._keys.record(job.id)],
            args=[
                claim,
                json.dumps(_result_row(job.id, result)),
                self._keys.events,
                job.id,
            ],
        )
        return Outcome(reply)

    async def delete(self, job: AnyJob) -> ExecutionPhase | None:
        """Remove the record and all its entries; its former phase."""
        return (await self.delete_many([job]))[0]

    async def delete_many(
        self, jobs: Sequence[AnyJob]
    ) -> list[ExecutionPhase | None]:
        """Remove records and all their entries in one script call; the
        phase each job was in (`None`: it was already gone)."""
        if not jobs:
            return []
        keys = [
            self._keys.destruction,
            self._keys.deadline,
            self._keys.heartbeat,
            self._keys.queued,
        ]
        layout = self._keys
        for job in jobs:
            keys += [
                layout.record(job.id),
                layout.by_owner(job.owner),
                layout.by_task_phase_prefix(job.owner, job.task),
                layout.counts(job.owner),
                layout.by_run_prefix(job.owner),
            ]
        reply = await self._delete(
            keys=keys, args=[self._keys.events, *(job.id for job in jobs)]
        )
        return [ExecutionPhase(phase) if phase else None for phase in reply]

    async def due(
        self,
        schedule: Literal["destruction", "deadline", "heartbeat", "queued"],
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

    async def touch_queued(self, job_id: str, at: datetime) -> None:
        """Move a queued job's time in the queued schedule (if it is there)."""
        await self._redis.zadd(self._keys.queued, {job_id: to_ms(at)}, xx=True)

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
        running = await self._oldest(
            owner, tasks, ExecutionPhase.EXECUTING, limit
        )
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

    async def count_throughput(self, kind: str, at: datetime) -> None:
        """Count one job ``kind`` (started, finished) in ``at``'s minute."""
        key = self._keys.throughput(kind, to_ms(at) // 60_000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * 3600)
            await pipe.execute()

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
        firsts = await self._oldest(owner, tasks, ExecutionPhase.QUEUED, 1)
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
        """
        indexes: list[str]
        if run_id is not None:
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


#: Redis hash field of each `Job` attribute (short names keep records small;
#: the id is the record's key, not a field).
_FIELD = {
    "task": "task",
    "owner": "owner",
    "phase": "phase",
    "parameters": "params",
    "created_at": "created",
    "execution_duration": "duration",
    "destruction_time": "destroy",
    "run_id": "run_id",
    "started_at": "started",
    "ended_at": "ended",
    "quote": "quote",
    "results": "results",
    "errors": "errors",
    "progress": "progress",
    "attempts": "attempts",
    "ignored": "ignored",
    "queue": "queue",
    "claim": "claim",
    "heartbeat_at": "beat",
}


def _limit(value: int | None) -> str:
    return "" if value is None else str(value)


def _result_row(job_id: str, result: JobResult) -> list[Any]:
    """A result as stored: ``[id, size, mime type, key]``, the key without
    the job id it starts with (keeps the value short)."""
    key = result.key.removeprefix(f"{job_id}/")
    return [result.id, result.size, result.mime_type, key]


def _result_from_row(job_id: str, row: list[Any]) -> JobResult:
    key = row[3] if "/" in row[3] else f"{job_id}/{row[3]}"
    return JobResult(id=row[0], size=int(row[1]), mime_type=row[2], key=key)


def _encode_value(job_id: str, name: str, value: Any) -> str:
    match name:
        case "parameters" | "ignored":
            return json.dumps(value, separators=(",", ":"))
        case "results":
            return json.dumps(
                [_result_row(job_id, r) for r in value], separators=(",", ":")
            )
        case "errors":
            return json.dumps(
                [
                    {
                        "type": e.type.value,
                        "message": e.message,
                        "code": e.code,
                        "detail": e.detail,
                    }
                    for e in value
                ]
            )
        case "progress":
            return json.dumps(
                {"percent": value.percent, "message": value.message}
            )
        case _ if isinstance(value, datetime):
            return str(to_ms(value))
        case _:
            return str(value)


def _encode_fields(job_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
    return {
        _FIELD[name]: _encode_value(job_id, name, value)
        for name, value in fields.items()
        if value is not None
    }


def _encode(job: Job) -> dict[str, str]:
    values = {name: getattr(job, name) for name in _FIELD}
    if not job.results:
        del values["results"]
    if not job.errors:
        del values["errors"]
    if not job.ignored:
        del values["ignored"]
    encoded = _encode_fields(job.id, values)
    if job.history:
        encoded["history"] = _history_text(job)
    return encoded


#: One letter per phase in the stored history (``transition.lua`` has
#: the same table).
_PHASE_LETTER = {
    ExecutionPhase.PENDING: "P",
    ExecutionPhase.QUEUED: "Q",
    ExecutionPhase.EXECUTING: "E",
    ExecutionPhase.COMPLETED: "C",
    ExecutionPhase.ERROR: "R",
    ExecutionPhase.ABORTED: "A",
    ExecutionPhase.UNKNOWN: "U",
    ExecutionPhase.HELD: "H",
    ExecutionPhase.SUSPENDED: "S",
    ExecutionPhase.ARCHIVED: "V",
}
_LETTER_PHASE = {letter: phase for phase, letter in _PHASE_LETTER.items()}
_HISTORY_ENTRY = re.compile(r"([A-Z])([0-9a-z]{1,12})")


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        value, digit = divmod(value, 36)
        text = digits[digit] + text
        if not value:
            return text


def _history_text(job: Job) -> str:
    """The history as stored: a phase letter and the milliseconds since
    creation in base 36 per change (``P0Q1kE1mC2bk``): short enough to
    keep the record in Redis' compact hash encoding. The transition
    script appends to it."""
    created = to_ms(job.created_at)
    return "".join(
        _PHASE_LETTER[change.phase]
        + _base36(max(0, to_ms(change.at) - created))
        for change in job.history
    )


def _history(text: str, created: datetime) -> list[PhaseChange]:
    """The stored history read back (a ``~`` where the script dropped
    changes from a very long history is skipped)."""
    base = to_ms(created)
    return [
        PhaseChange(_LETTER_PHASE[letter], from_ms(base + int(offset, 36)))
        for letter, offset in _HISTORY_ENTRY.findall(text)
        if letter in _LETTER_PHASE
    ]


#: What decoding a damaged or foreign record can raise.
_UNREADABLE = (
    KeyError,
    ValueError,
    TypeError,
    OverflowError,
    IndexError,
    RecursionError,
)


def _decode(job_id: str, data: Mapping[str, str]) -> Job:
    """The job a record holds.

    A record this version cannot read in full (written by an older one, or
    damaged) is decoded field by field, each field that fails taking its
    empty value, so that it still renders, lists and can be deleted.
    """
    try:
        return _decode_strict(job_id, data)
    except _UNREADABLE:
        _logger.warning("Job record partly unreadable", job_id=job_id)
        return _decode_lenient(job_id, data)


def _parameters(raw: str) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise TypeError("parameters are not an object")
    # Stored parameters were checked on the way in (`check_value`); only an
    # older version's record can hold what cannot be rendered, and only
    # then does the JSON text hold an escape for it.
    if "\\u" in raw or "\\b" in raw or "\\f" in raw:
        cleaned: dict[str, Any] = clean_value(value)
        return cleaned
    return value


def _run_id(value: str | None) -> str | None:
    return clean_text(value) if value is not None else None


def _decode_strict(job_id: str, data: Mapping[str, str]) -> Job:
    results = [
        _result_from_row(job_id, row)
        for row in json.loads(data.get("results", "[]"))
    ]
    errors = [
        JobError(
            type=ErrorType(e["type"]),
            message=e["message"],
            code=e.get("code"),
            detail=e.get("detail"),
        )
        for e in json.loads(data.get("errors", "[]"))
    ]
    progress = None
    if "progress" in data:
        raw = json.loads(data["progress"])
        progress = Progress(percent=raw["percent"], message=raw["message"])
    created = from_ms(int(data["created"]))
    return Job(
        id=job_id,
        task=data["task"],
        owner=data.get("owner"),
        phase=ExecutionPhase(data["phase"]),
        parameters=_parameters(data["params"]),
        created_at=created,
        execution_duration=int(data["duration"]),
        destruction_time=_ms_or_none(data.get("destroy")),
        run_id=_run_id(data.get("run_id")),
        started_at=_ms_or_none(data.get("started")),
        ended_at=_ms_or_none(data.get("ended")),
        quote=_ms_or_none(data.get("quote")),
        results=results,
        errors=errors,
        progress=progress,
        attempts=int(data.get("attempts", "0")),
        ignored=json.loads(data.get("ignored", "[]")),
        queue=data.get("queue"),
        claim=data.get("claim"),
        heartbeat_at=_ms_or_none(data.get("beat")),
        history=_history(data.get("history", ""), created),
    )


_T = TypeVar("_T")


def _field(read: Callable[[], _T], default: _T) -> _T:
    try:
        return read()
    except _UNREADABLE:
        return default


def _decode_lenient(job_id: str, data: Mapping[str, str]) -> Job:
    def results() -> list[JobResult]:
        return [
            _result_from_row(job_id, row)
            for row in json.loads(data.get("results", "[]"))
        ]

    def errors() -> list[JobError]:
        return [
            JobError(ErrorType(e["type"]), str(e["message"]))
            for e in json.loads(data.get("errors", "[]"))
        ]

    def progress() -> Progress | None:
        if "progress" not in data:
            return None
        raw = json.loads(data["progress"])
        return Progress(raw.get("percent"), raw.get("message"))

    def time(name: str) -> datetime | None:
        return _field(lambda: _ms_or_none(data.get(name)), None)

    return Job(
        id=job_id,
        task=clean_text(data.get("task", "")),
        owner=_run_id(data.get("owner")),
        phase=_field(
            lambda: ExecutionPhase(data["phase"]), ExecutionPhase.UNKNOWN
        ),
        parameters=_field(lambda: _parameters(data["params"]), {}),
        created_at=time("created") or from_ms(0),
        execution_duration=_field(lambda: int(data["duration"]), 0),
        destruction_time=time("destroy"),
        run_id=_run_id(data.get("run_id")),
        started_at=time("started"),
        ended_at=time("ended"),
        quote=time("quote"),
        results=_field(results, []),
        errors=_field(errors, []),
        progress=_field(progress, None),
        attempts=_field(lambda: int(data.get("attempts", "0")), 0),
        ignored=_field(lambda: json.loads(data.get("ignored", "[]")), []),
        queue=data.get("queue"),
        claim=data.get("claim"),
        heartbeat_at=time("beat"),
        history=_field(
            lambda: _history(
                data.get("history", ""), time("created") or from_ms(0)
            ),
            [],
        ),
    )
