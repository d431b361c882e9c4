"""The Redis job store: records, indexes, schedules and transitions.

A job is one hash. Four sorted-set indexes per owner (all jobs, by task, by
phase, by task and phase) and two global schedules (destruction, execution
deadline) point at it. Every change of phase goes through one Lua script
that checks the current phase, moves the index entries, updates the
schedules and publishes an event in one atomic step, so concurrent actors
(a client aborting, a worker completing) cannot both win.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib import resources
from typing import Any, Literal

from redis.asyncio import Redis

from ..clock import from_ms, to_ms
from ..models.job import ErrorType, Job, JobError, JobResult, Progress
from ..models.phase import ExecutionPhase
from .keys import KeyLayout

__all__ = ["JobStore", "Outcome", "TransitionResult"]

Unchanged = Literal["keep"]
KEEP: Unchanged = "keep"


class Outcome(StrEnum):
    """How a compare-and-set ended."""

    OK = "ok"
    MISSING = "missing"  # no such job
    PHASE = "phase"  # the job was not in an allowed phase
    CHECK = "check"  # the claim or attempt check failed


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """Outcome of `JobStore.transition`, with the phase seen in Redis."""

    outcome: Outcome
    phase: ExecutionPhase | None

    @property
    def ok(self) -> bool:
        """Whether the transition was applied."""
        return self.outcome is Outcome.OK


def _script(name: str) -> str:
    return (
        resources.files("phaser.storage")
        .joinpath("scripts", name)
        .read_text("utf-8")
    )


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
        self._transition = redis.register_script(_script("transition.lua"))
        self._record_result = redis.register_script(
            _script("record_result.lua")
        )
        self._delete = redis.register_script(_script("delete.lua"))
        self._lease = redis.register_script(_script("lease.lua"))

    async def load_scripts(self) -> None:
        """Load the Lua scripts into Redis once, at start-up."""
        for script in (
            self._transition,
            self._record_result,
            self._delete,
            self._lease,
        ):
            script.sha = await self._redis.script_load(script.script)

    async def ping(self) -> None:
        """Raise `redis.exceptions.RedisError` if Redis does not answer."""
        await self._redis.ping()

    async def create(self, job: Job) -> None:
        """Store a new job with its index and schedule entries."""
        keys = self._keys.job(job.id, job.owner, job.task)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.record, mapping=_encode(job))
            pipe.zadd(keys.by_owner, {job.id: 0})
            pipe.zadd(keys.by_task, {job.id: 0})
            pipe.zadd(keys.by_phase_prefix + job.phase, {job.id: 0})
            pipe.zadd(keys.by_task_phase_prefix + job.phase, {job.id: 0})
            if job.destruction_time:
                pipe.zadd(
                    keys.destruction, {job.id: to_ms(job.destruction_time)}
                )
            await pipe.execute()

    async def get(self, job_id: str) -> Job | None:
        """The job, or `None` if there is no such job."""
        data: dict[str, str] = await self._redis.hgetall(  # type: ignore[misc]
            self._keys.record(job_id)
        )
        return _decode(data) if data else None

    async def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that still exist among ``job_ids``, in that order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self._keys.record(job_id))
            rows = await pipe.execute()
        return [_decode(row) for row in rows if row]

    async def transition(
        self,
        job: Job,
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
        encoded = _encode_fields(fields or {})
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
                keys.by_phase_prefix,
                keys.by_task_phase_prefix,
                keys.destruction,
                keys.deadline,
                keys.heartbeat,
                keys.queued,
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
                json.dumps(_result_dict(result)),
                self._keys.events,
                job.id,
            ],
        )
        return Outcome(reply)

    async def delete(self, job: Job) -> ExecutionPhase | None:
        """Remove the record and all its entries; its former phase."""
        keys = self._keys.job(job.id, job.owner, job.task)
        reply = await self._delete(
            keys=[
                keys.record,
                keys.by_owner,
                keys.by_task,
                keys.by_phase_prefix,
                keys.by_task_phase_prefix,
                keys.destruction,
                keys.deadline,
                keys.heartbeat,
                keys.queued,
            ],
            args=[job.id, self._keys.events],
        )
        return ExecutionPhase(reply) if reply else None

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

    async def count(
        self, owner: str | None, phases: Iterable[ExecutionPhase]
    ) -> tuple[int, int]:
        """An owner's jobs: (in these phases, in all phases)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for phase in phases:
                pipe.zcard(self._keys.by_phase(owner, phase))
            pipe.zcard(self._keys.by_owner(owner))
            counts: list[int] = await pipe.execute()
        return sum(counts[:-1]), counts[-1]

    async def touch_queued(self, job_id: str, at: datetime) -> None:
        """Move a queued job's time in the queued schedule (if it is there)."""
        await self._redis.zadd(self._keys.queued, {job_id: to_ms(at)}, xx=True)

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
        """
        indexes: list[str]
        if tasks is None and phases is None:
            indexes = [self._keys.by_owner(owner)]
        elif phases is None:
            indexes = [self._keys.by_task(owner, t) for t in tasks or ()]
        elif tasks is None:
            indexes = [self._keys.by_phase(owner, p) for p in phases]
        else:
            indexes = [
                self._keys.by_task_phase(owner, t, p)
                for t in tasks
                for p in phases
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


#: Redis hash field of each `Job` attribute (short names keep records small).
_FIELD = {
    "id": "id",
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
    "claim": "claim",
    "heartbeat_at": "beat",
}


def _result_dict(result: JobResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "size": result.size,
        "mime_type": result.mime_type,
        "key": result.key,
    }


def _encode_value(name: str, value: Any) -> str:
    match name:
        case "parameters":
            return json.dumps(value, separators=(",", ":"))
        case "results":
            return json.dumps([_result_dict(r) for r in value])
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


def _encode_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    return {
        _FIELD[name]: _encode_value(name, value)
        for name, value in fields.items()
        if value is not None
    }


def _encode(job: Job) -> dict[str, str]:
    values = {name: getattr(job, name) for name in _FIELD}
    if not job.results:
        del values["results"]
    if not job.errors:
        del values["errors"]
    return _encode_fields(values)


def _decode(data: Mapping[str, str]) -> Job:
    results = [
        JobResult(
            id=r["id"],
            size=int(r["size"]),
            mime_type=r["mime_type"],
            key=r["key"],
        )
        for r in json.loads(data.get("results", "[]"))
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
    return Job(
        id=data["id"],
        task=data["task"],
        owner=data.get("owner"),
        phase=ExecutionPhase(data["phase"]),
        parameters=json.loads(data["params"]),
        created_at=from_ms(int(data["created"])),
        execution_duration=int(data["duration"]),
        destruction_time=_ms_or_none(data.get("destroy")),
        run_id=data.get("run_id"),
        started_at=_ms_or_none(data.get("started")),
        ended_at=_ms_or_none(data.get("ended")),
        quote=_ms_or_none(data.get("quote")),
        results=results,
        errors=errors,
        progress=progress,
        attempts=int(data.get("attempts", "0")),
        claim=data.get("claim"),
        heartbeat_at=_ms_or_none(data.get("beat")),
    )
