"""The thin boundary around arq: sending job ids to the queue.

Only the job id, the attempt number and what the job's keys are made of
(its task and owner, so that a worker claims it without reading it
first) travel through arq, with the job's trace context when tracing is
on, serialized as JSON; the job record in Redis is the truth. The arq
job id is ``"{job_id}.{attempt}"`` so that a retried or recovered attempt
is never refused by arq's duplicate check.

Entries are written by one Lua script (``enqueue.lua``, beside this
module: it writes arq's key layout, so it belongs to the queue, not to the
job store) that does what
arq's ``enqueue_job`` does, in one round trip instead of three, and
publishes on the queue's wake-up channel (`wake_channel`): workers sleep
until a wake-up (or their idle poll interval), so a job starts within a
millisecond or two of being queued without workers polling Redis hundreds
of times a second.

Priorities are scores. arq's worker takes the entries whose score is at
or before now, lowest first; an entry's score is its enqueue time minus
its priority times a step (`priority_step`), so a higher priority sorts
first and entries of one priority keep their order. The step is the
ageing setting (a job that has waited one step longer than another sorts
with it one level up) or, for strict priorities, a step longer than any
wait. A score then no longer says *when* an entry may start, so delayed
entries (retries after a backoff) are not put in arq's queue until their
time: the job store's start schedule holds them (`phaser.services`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
)
from arq.jobs import serialize_job
from redis.asyncio import ConnectionPool

from .clock import from_ms, now, to_ms
from .models.job import DEFAULT_PRIORITY
from .storage.keys import entry_name

__all__ = [
    "RUN_JOB",
    "Entry",
    "EntryTaker",
    "JobQueue",
    "QueueEntry",
    "Taken",
    "arq_job_id",
    "create_arq_redis",
    "deserialize",
    "priority_step",
    "serialize",
    "wake_channel",
]

#: Name of the worker function that runs a job.
RUN_JOB = "run_job"


def serialize(payload: dict[str, Any]) -> bytes:
    """arq payload serializer: JSON (arq would default to Python objects)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    """arq payload deserializer: JSON only."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise TypeError("arq payload is not a JSON object")
    return value


def wake_channel(queue_name: str) -> str:
    """Pub/sub channel on which enqueuing wakes the workers of a queue."""
    return f"{queue_name}:wake"


def arq_job_id(job_id: str, attempt: int) -> str:
    """The arq job id of one attempt of a job (`entry_name`)."""
    return entry_name(job_id, attempt)


#: Score step between priorities when they are strict: longer than any
#: job waits (about 31 years, in ms), small enough that every score stays
#: an exact integer in Redis' doubles.
_STRICT_STEP = 10**12


def priority_step(ageing: float) -> int:
    """Score distance between two priority levels (ms): ``ageing``
    seconds, or strict priorities for 0."""
    return int(ageing * 1000) if ageing > 0 else _STRICT_STEP


def create_arq_redis(pool: ConnectionPool, queue_name: str) -> ArqRedis:
    """An arq client with JSON serialization on its own connection pool
    (`phaser.storage.connect.redis_pool`, without decoding)."""
    return ArqRedis(
        pool_or_conn=pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One attempt's queue entry as ``enqueue.lua`` takes it: its keys
    (arq's job and result keys, the queue) and arguments (arq's job id,
    the payload, the score, the payload's expiry in ms, the wake-up
    channel)."""

    keys: list[str]
    args: list[str | bytes | int]


def _script(name: str) -> str:
    return resources.files("phaser").joinpath(name).read_text()


class JobQueue:
    """Sends attempts of jobs to the workers.

    Parameters
    ----------
    arq
        arq client (see `create_arq_redis`).
    priority_ageing
        Seconds of waiting worth one priority level (0: strict).
    """

    def __init__(self, arq: ArqRedis, *, priority_ageing: float = 0) -> None:
        self._arq = arq
        self._step = priority_step(priority_ageing)
        self._enqueue = arq.register_script(_script("enqueue.lua"))
        self._rescore = arq.register_script(_script("rescore.lua"))

    async def enqueue(self, entry: QueueEntry) -> bool:
        """Write an entry (`entry`) and wake the workers of its queue.

        Returns false if that attempt is already in the queue (or running):
        like arq, the script refuses a second entry with the same id.
        """
        queued = await self._enqueue(keys=entry.keys, args=entry.args)
        return bool(queued)

    def entry(
        self,
        job_id: str,
        attempt: int,
        *,
        task: str | None = None,
        owner: str | None = None,
        queue: str | None = None,
        priority: int = DEFAULT_PRIORITY,
        trace: str | None = None,
    ) -> QueueEntry:
        """The queue entry of one attempt of a job, for `enqueue` (or a
        script that writes it with other things: a job created started,
        `phaser.storage.job_store.JobStore.create`).

        Parameters
        ----------
        job_id
            The job.
        attempt
            Its attempt number.
        task, owner
            The job's task and owner (`None`: anonymous), carried in the
            entry so that the worker can claim the job without reading it;
            an entry without a task is read first.
        queue
            Queue name; the default queue if `None`.
        priority
            Higher is taken first; FIFO within one priority.
        trace
            The job's trace context (a W3C ``traceparent``), for the
            worker's spans; only when tracing is on.
        """
        queue = queue or self._arq.default_queue_name
        name = arq_job_id(job_id, attempt)
        enqueued = to_ms(now())
        score = enqueued - priority * self._step
        carried: dict[str, str | None] = {}
        if task is not None:
            carried.update(task=task, owner=owner)
        if trace:
            carried["trace"] = trace
        payload = serialize_job(
            RUN_JOB,
            (job_id, attempt),
            carried,
            None,
            enqueued,
            serializer=serialize,
        )
        return QueueEntry(
            keys=[job_key_prefix + name, result_key_prefix + name, queue],
            args=[
                name,
                payload,
                score,
                self._arq.expires_extra_ms,
                wake_channel(queue),
            ],
        )

    def score(self, priority: int) -> int:
        """The score an entry of that priority queued now gets."""
        return to_ms(now()) - priority * self._step

    async def reprioritise(
        self,
        job_id: str,
        attempt: int,
        priority: int,
        *,
        queue: str | None = None,
    ) -> bool:
        """Move a waiting attempt to its place for a new priority (behind
        the entries of that priority queued before it). Returns false if
        the attempt has no entry (not sent yet, or done)."""
        name = arq_job_id(job_id, attempt)
        moved = await self._rescore(
            keys=[
                job_key_prefix + name,
                queue or self._arq.default_queue_name,
            ],
            args=[name, priority, self._step],
        )
        return bool(moved)

    async def is_waiting(
        self, job_id: str, attempt: int, *, queue: str | None = None
    ) -> bool:
        """Whether that attempt is in the queue, waiting for a worker.

        A worker takes an entry out of the queue (`EntryTaker`); if its
        job is still QUEUED long after, the worker failed before claiming
        it. (An entry marked in progress was taken by arq's own way, by a
        worker of an earlier version: not waiting either.)
        """
        name = arq_job_id(job_id, attempt)
        async with self._arq.pipeline(transaction=False) as pipe:
            pipe.zscore(queue or self._arq.default_queue_name, name)
            pipe.exists(in_progress_key_prefix + name)
            score, taken = await pipe.execute()
        return score is not None and not taken

    async def depth(self, queue: str | None = None) -> int:
        """Entries in a queue: jobs waiting for a worker (a worker takes
        an entry out of the queue as it starts its job)."""
        depth: int = await self._arq.zcard(
            queue or self._arq.default_queue_name
        )
        return depth

    async def close(self) -> None:
        """Close the connection pool."""
        await self._arq.aclose(close_connection_pool=True)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Entry:
    """One attempt of a job, as a worker took it from the queue."""

    name: str  # the arq job id
    job_id: str
    attempt: int
    enqueued_at: datetime
    trace: str | None
    #: The job's task and owner, if the entry carries them (entries queued
    #: by earlier versions do not: the worker reads the job first).
    task: str | None = None
    owner: str | None = None

    @classmethod
    def read(cls, name: str, payload: bytes) -> Entry:
        """Read a queue entry's payload (arq's layout, `serialize_job`, with
        phaser's JSON); `ValueError` if it is not one of phaser's."""
        try:
            data = deserialize(payload)
            job_id, attempt = data["a"]
            carried = data["k"]
            if data["f"] != RUN_JOB or not isinstance(job_id, str):
                raise ValueError(f"not a phaser job: {data['f']!r}")
            return cls(
                name=name,
                job_id=job_id,
                attempt=int(attempt),
                enqueued_at=from_ms(int(data["et"])),
                trace=_text(carried.get("trace")),
                task=_text(carried.get("task")),
                owner=_text(carried.get("owner")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"unreadable queue entry {name}: {exc}") from exc


class EntryTaker:
    """A worker's side of the queue: take an entry, or give it back.

    arq's worker marks an entry in progress with a WATCH transaction,
    reads it with a pipeline and removes it once its job has ended: five
    round trips per entry. phaser's worker takes as many due entries as it
    has free slots out of the queue, with their payloads, in one script
    (``take.lua``) and is done with them: the job record, not the entry,
    says what happens to the job from then on.

    Parameters
    ----------
    arq
        The worker's arq client.
    queue_name
        The queue it takes from.
    """

    def __init__(self, arq: ArqRedis, queue_name: str) -> None:
        self._arq = arq
        self._queue = queue_name
        self._take = arq.register_script(_script("take.lua"))

    async def take(self, count: int) -> tuple[list[Taken], list[str]]:
        """Take up to ``count`` due entries, first due first (priority
        folded into the score), out of the queue. Answers what was taken
        and, for entries that were taken but cannot run (not phaser's, or
        their payload has expired: nothing to run), why."""
        reply = await self._take(
            keys=[self._queue],
            args=[to_ms(now()), count, job_key_prefix],
        )
        taken: list[Taken] = []
        dropped: list[str] = []
        rows = zip(reply[::3], reply[1::3], reply[2::3], strict=True)
        for raw_name, score, payload in rows:
            name = raw_name.decode()
            if payload is None:
                dropped.append(f"queue entry {name} has expired")
                continue
            try:
                entry = Entry.read(name, payload)
            except ValueError as exc:
                dropped.append(str(exc))
                continue
            taken.append(Taken(entry, int(float(score)), payload))
        return taken, dropped

    async def give_back(self, taken: Taken) -> None:
        """Put an entry back where it was (a worker shutting down before
        the attempt ran): another worker takes it."""
        async with self._arq.pipeline(transaction=True) as pipe:
            pipe.set(
                job_key_prefix + taken.entry.name,
                taken.payload,
                px=self._arq.expires_extra_ms,
            )
            pipe.zadd(self._queue, {taken.entry.name: taken.score})
            await pipe.execute()


@dataclass(frozen=True)
class Taken:
    """An entry taken from the queue, with what it takes to put it back."""

    entry: Entry
    score: int
    payload: bytes
