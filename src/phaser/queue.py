"""The thin boundary around arq: sending job ids to the queue.

Only the job id and the attempt number travel through arq, serialized as
JSON; the job record in Redis is the truth. The arq job id is
``"{job_id}.{attempt}"`` so that a retried or recovered attempt is never
refused by arq's duplicate check.
"""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import ConnectionPool

__all__ = [
    "RUN_JOB",
    "JobQueue",
    "arq_job_id",
    "create_arq_redis",
    "deserialize",
    "serialize",
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


def arq_job_id(job_id: str, attempt: int) -> str:
    """The arq job id of one attempt of a job."""
    return f"{job_id}.{attempt}"


def create_arq_redis(redis_url: str, queue_name: str) -> ArqRedis:
    """An arq client with JSON serialization on its own connection pool."""
    return ArqRedis(
        pool_or_conn=ConnectionPool.from_url(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )


class JobQueue:
    """Sends attempts of jobs to the workers.

    Parameters
    ----------
    arq
        arq client (see `create_arq_redis`).
    """

    def __init__(self, arq: ArqRedis) -> None:
        self._arq = arq

    async def enqueue(
        self, job_id: str, attempt: int, *, defer: float | None = None
    ) -> bool:
        """Queue one attempt of a job, optionally after ``defer`` seconds.

        Returns false if that attempt is already in the queue (or running):
        arq refuses a second entry with the same id.
        """
        queued = await self._arq.enqueue_job(
            RUN_JOB,
            job_id,
            attempt,
            _job_id=arq_job_id(job_id, attempt),
            _defer_by=defer,
        )
        return queued is not None

    async def is_waiting(self, job_id: str, attempt: int) -> bool:
        """Whether that attempt is in the queue, waiting for a worker.

        An attempt a worker has taken (arq's in-progress mark) is not
        waiting: if its job is still QUEUED long after, the worker failed
        before claiming it (arq keeps the mark until its job timeout).
        """
        name = arq_job_id(job_id, attempt)
        async with self._arq.pipeline(transaction=False) as pipe:
            pipe.zscore(self._arq.default_queue_name, name)
            pipe.exists(in_progress_key_prefix + name)
            score, taken = await pipe.execute()
        return score is not None and not taken

    async def close(self) -> None:
        """Close the connection pool."""
        await self._arq.aclose()
