"""Operations: what operators and health checks ask about the service as
a whole (readiness, workers, statistics, metrics), rather than about one
job."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from redis.exceptions import RedisError

from ..clock import now, to_ms
from ..config import Settings
from ..metrics import QUEUE_DEPTH, WORKER_SILENCE
from ..models.caller import Caller
from ..models.phase import RUNNING, ExecutionPhase
from ..queue import JobQueue
from ..storage.job_store import JobStore
from .ids import created_ms

__all__ = ["EVERYONE", "Operations", "Stats", "WorkerSeen"]


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A worker process seen recently, and which of the counted owner's
    jobs it is running."""

    id: str
    silence: float
    running: list[str]


@dataclass(frozen=True, slots=True)
class Stats:
    """What `Operations.stats` reports (see `phaser.models.stats.StatsModel`
    for the meaning of each field)."""

    owner: str | None
    counts: dict[str, dict[ExecutionPhase, int]]
    queues: dict[str, int]
    oldest_queued_age: float | None
    started: dict[str, int]
    finished: dict[str, int]
    worker_silence: float | None
    #: Jobs started and finished in each of the last 60 minutes, oldest
    #: first (the current, unfinished minute last).
    started_per_minute: list[int]
    finished_per_minute: list[int]
    workers: list[WorkerSeen]

    @property
    def totals(self) -> dict[ExecutionPhase, int]:
        """The counts by phase, all tasks together."""
        totals: dict[ExecutionPhase, int] = {}
        for phases in self.counts.values():
            for phase, count in phases.items():
                totals[phase] = totals.get(phase, 0) + count
        return totals


#: What an admin passes as ``owner`` to count every owner's jobs.
EVERYONE = "*"


#: Throughput windows (minutes) that `Operations.stats` reports.
_WINDOWS = {"1m": 1, "5m": 5, "60m": 60}


class Operations:
    """Readiness, workers, statistics and metrics.

    Parameters
    ----------
    settings
        Timeouts and queue names.
    store
        Job store (its activity records).
    queue
        Queue to the workers (its depths).
    """

    def __init__(
        self, *, settings: Settings, store: JobStore, queue: JobQueue
    ) -> None:
        self._settings = settings
        self._store = store
        self._activity = store.activity
        self._queue = queue

    async def unavailable(self) -> str | None:
        """Why the job store cannot be used now, or `None` if it can."""
        try:
            await self._store.load_scripts()
        except (RedisError, OSError) as exc:
            return str(exc) or type(exc).__name__
        return None

    async def worker_silence(self) -> float:
        """Seconds since any worker was last seen alive (workers say so
        every heartbeat interval); infinite if none has been.

        Raises
        ------
        redis.exceptions.RedisError
            Redis does not answer.
        """
        seen = await self._activity.last_worker_seen()
        if seen is None:
            return math.inf
        return max(0.0, (now() - seen).total_seconds())

    async def worker_gap(self) -> str | None:
        """What is wrong with the workers, for people (availability,
        readiness): `None` while some worker was seen within the stall
        timeout.

        Raises
        ------
        redis.exceptions.RedisError
            Redis does not answer.
        """
        silence = await self.worker_silence()
        WORKER_SILENCE.set(silence)
        if silence <= self._settings.stall_timeout:
            return None
        if math.isinf(silence):
            return "no worker has been seen; queued jobs wait for one"
        return (
            f"no worker has been seen for {silence:.0f} s; queued jobs wait"
            " for one"
        )

    async def owners(self, caller: Caller) -> list[str]:
        """Every owner who has created a job (admins only; others get
        only their own name, if they have one)."""
        if not caller.admin:
            return [caller.name] if caller.name else []
        return await self._activity.owners()

    async def stats(self, caller: Caller, owner: str | None = None) -> Stats:
        """The caller's (an admin's: ``owner``'s, or with `EVERYONE`
        every owner's) jobs counted by task and phase, queue depths, the
        age of the oldest queued job, jobs started and finished over
        recent windows and per minute over the last hour (all owners),
        the workers seen recently with which of the counted jobs each is
        running, and how long no worker has been seen. No job record is
        read but those of running jobs: index sizes, counters and queue
        lengths.
        """
        whose = caller.acting_for(owner)
        owners = (
            await self._activity.owners() if whose == EVERYONE else [whose]
        )
        counts: dict[str, dict[ExecutionPhase, int]] = {}
        oldest: str | None = None
        claims: list[tuple[str, str]] = []
        for one in owners:
            found = await self._activity.task_phase_counts(one)
            for task, phases in found.items():
                into = counts.setdefault(task, {})
                for phase, count in phases.items():
                    into[phase] = into.get(phase, 0) + count
            first = await self._activity.oldest_queued(one, found)
            if first is not None and (oldest is None or first < oldest):
                oldest = first
            running = [t for t, p in found.items() if p.get(RUNNING)]
            if running:
                claims += await self._activity.claims(one, running)
        moment = now()
        age = (
            max(0.0, (to_ms(moment) - created_ms(oldest)) / 1000)
            if oldest
            else None
        )
        queues = {
            queue: await self._queue.depth(queue)
            for queue in self._queue_names()
        }
        windows = {}
        series = {}
        for kind in ("started", "finished"):
            minutes = await self._activity.throughput(kind, moment, 60)
            windows[kind] = {
                name: sum(minutes[:length])
                for name, length in _WINDOWS.items()
            }
            series[kind] = minutes[::-1]
        by_worker: dict[str, list[str]] = {}
        for job_id, claim in claims:
            by_worker.setdefault(claim.split("/", 1)[0], []).append(job_id)
        workers = [
            WorkerSeen(
                id=worker,
                silence=max(0.0, (moment - seen).total_seconds()),
                running=sorted(by_worker.get(worker, [])),
            )
            for worker, seen in await self._activity.workers()
        ]
        return Stats(
            owner=whose,
            counts=counts,
            queues=queues,
            oldest_queued_age=age,
            started=windows["started"],
            finished=windows["finished"],
            worker_silence=workers[0].silence if workers else None,
            started_per_minute=series["started"],
            finished_per_minute=series["finished"],
            workers=workers,
        )

    def _queue_names(self) -> list[str]:
        """Every queue jobs are sent to, sorted."""
        return sorted(
            {self._settings.queue_name, *self._settings.task_queues.values()}
        )

    async def measure(self) -> None:
        """Set the queue-depth metric of every queue jobs are sent to
        and the worker-silence metric (left as they were if Redis does not
        answer)."""
        with contextlib.suppress(RedisError, OSError):
            await self.worker_gap()
        for queue in self._queue_names():
            try:
                depth = await self._queue.depth(queue)
            except (RedisError, OSError):
                return
            QUEUE_DEPTH.labels(queue).set(depth)
