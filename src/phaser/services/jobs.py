"""The job service: every rule about jobs, for both dialects."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from ..clock import now, to_ms, to_utc
from ..config import Settings, cap_duration
from ..metrics import (
    JOBS_CREATED,
    JOBS_FINISHED,
    OPEN_WAITS,
    QUEUE_DEPTH,
    WORKER_SILENCE,
)
from ..models.caller import Caller
from ..models.errors import (
    InvalidParametersError,
    InvalidRequestError,
    JobNotFoundError,
    PhaseConflictError,
    PhaserError,
    QuotaExceededError,
    ResultNotFoundError,
)
from ..models.job import ErrorType, Job, JobError, JobResult, PhaseChange
from ..models.phase import (
    FINAL_PHASES,
    Action,
    ExecutionPhase,
    allowed_from,
    target_phase,
)
from ..models.text import check_text, check_value
from ..queue import JobQueue
from ..storage.events import EventHub, JobEvent, next_event
from ..storage.job_store import (
    KEEP,
    AnyJob,
    JobStore,
    Outcome,
    Quota,
    TransitionResult,
    Unchanged,
)
from ..storage.results import LocalResultStore
from ..tasks.registry import Task, TaskRegistry
from .ids import after_bound, created_ms, is_job_id, new_job_id

__all__ = [
    "JobPage",
    "JobService",
    "JobUpdate",
    "Stats",
    "duration_exceeded",
]

#: Phases that count against the active-jobs limit.
_ACTIVE = [
    ExecutionPhase.PENDING,
    ExecutionPhase.QUEUED,
    ExecutionPhase.EXECUTING,
    ExecutionPhase.HELD,
    ExecutionPhase.SUSPENDED,
]

#: Keep-alive interval of event streams, so proxies keep them open.
_KEEPALIVE = 15.0

#: Longest run id.
_MAX_RUN_ID = 256


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """Changes a client asks for; `None` leaves a field alone."""

    parameters: Mapping[str, Any] | None = None
    execution_duration: int | None = None
    destruction_time: datetime | None = None
    run_id: str | None = None
    #: Refuse parameter names the task does not have (JSON API).
    strict: bool = False


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A worker process seen recently, and which of the counted owner's
    jobs it is running."""

    id: str
    silence: float
    running: list[str]


@dataclass(frozen=True, slots=True)
class Stats:
    """What `JobService.stats` reports (see `phaser.models.api.StatsModel`
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


#: Throughput windows (minutes) that `JobService.stats` reports.
_WINDOWS = {"1m": 1, "5m": 5, "60m": 60}


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job list and the cursor of the next, if any."""

    jobs: list[Job]
    next_cursor: str | None


class JobService:
    """Creates, runs, watches and removes jobs.

    Parameters
    ----------
    settings
        Limits and defaults.
    store
        Job store.
    results
        Result store.
    queue
        Queue to the workers.
    hub
        Event hub of this process.
    registry
        Tasks.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        results: LocalResultStore,
        queue: JobQueue,
        hub: EventHub,
        registry: TaskRegistry,
    ) -> None:
        self._settings = settings
        self._store = store
        self._results = results
        self._queue = queue
        self._hub = hub
        self._registry = registry

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
        seen = await self._store.last_worker_seen()
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
        return await self._store.owners()

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
        whose = owner if (caller.admin and owner is not None) else caller.name
        owners = await self._store.owners() if whose == EVERYONE else [whose]
        counts: dict[str, dict[ExecutionPhase, int]] = {}
        oldest: str | None = None
        claims: list[tuple[str, str]] = []
        for one in owners:
            found = await self._store.task_phase_counts(one)
            for task, phases in found.items():
                into = counts.setdefault(task, {})
                for phase, count in phases.items():
                    into[phase] = into.get(phase, 0) + count
            first = await self._store.oldest_queued(one, found)
            if first is not None and (oldest is None or first < oldest):
                oldest = first
            running = [
                t for t, p in found.items() if p.get(ExecutionPhase.EXECUTING)
            ]
            if running:
                claims += await self._store.claims(one, running)
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
            minutes = await self._store.throughput(kind, moment, 60)
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
            for worker, seen in await self._store.workers()
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

    async def count(self, kind: str) -> None:
        """Count a job started or finished (for `stats`); a Redis failure
        loses the count, never the job."""
        with contextlib.suppress(RedisError, OSError):
            await self._store.count_throughput(kind, now())

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

    def tasks(self) -> list[Task]:
        """The registered tasks, by name."""
        return list(self._registry)

    def task(self, name: str) -> Task:
        """The task of that name.

        Raises
        ------
        UnknownTaskError
            No such task.
        """
        return self._registry.get(name)

    @staticmethod
    def listed_phases() -> list[ExecutionPhase]:
        """Phases a job list shows by default: all but ARCHIVED."""
        return [p for p in ExecutionPhase if p != ExecutionPhase.ARCHIVED]

    @property
    def max_parameters(self) -> int:
        """Most parameters a job may have."""
        return self._settings.max_parameters

    @property
    def max_wait(self) -> float:
        """The longest a wait may last, in seconds."""
        return float(self._settings.max_wait)

    async def create(
        self,
        *,
        caller: Caller,
        task: str,
        parameters: Mapping[str, Any],
        run_id: str | None = None,
        start: bool = False,
        execution_duration: int | None = None,
        destruction_time: datetime | None = None,
        strict: bool = False,
    ) -> Job:
        """Create a job, and queue it if ``start``.

        With ``strict`` (the JSON API), parameter names the task does not
        have are refused; otherwise (UWS, as IVOA services do) ignored.

        Raises
        ------
        UnknownTaskError
            No such task.
        InvalidParametersError
            The parameters do not fit the task.
        """
        definition = self._registry.get(task)
        if strict:
            _refuse_unknown(definition, parameters)
        stored = self._check_parameters(definition, parameters)
        _check_run_id(run_id)
        destruction = self._clamp_destruction(destruction_time)
        created = now()
        job = Job(
            id=new_job_id(to_ms(created)),
            task=task,
            owner=caller.name,
            # A job started at once is stored QUEUED: one write, and the
            # record says QUEUED before the queue hears of it, so a worker
            # that picks it up at once finds it claimable.
            phase=ExecutionPhase.QUEUED if start else ExecutionPhase.PENDING,
            parameters=stored,
            created_at=created,
            execution_duration=self._execution_duration(
                definition, execution_duration
            ),
            destruction_time=destruction,
            run_id=run_id,
            attempts=1 if start else 0,
            # Decided here, once: whoever sends the job again later
            # (recovery on a worker of another pool) sends it here too.
            queue=self._settings.queue_of(task),
            ignored=definition.unknown(parameters, ignore_case=True),
        )
        job.history = [PhaseChange(job.phase, created)]
        result = await self._store.create(job, self._quota)
        match result.outcome:
            case Outcome.STORED:
                raise QuotaExceededError(
                    f"Stored jobs limit reached: {result.count} jobs kept"
                    f" (limit {self._settings.stored_jobs_limit},"
                    " PHASER_MAX_STORED_JOBS); delete some"
                    " first"
                )
            case Outcome.ACTIVE:
                raise QuotaExceededError(
                    f"Active jobs limit reached: {result.count} jobs pending,"
                    f" queued or executing (limit"
                    f" {self._settings.active_jobs_limit},"
                    " PHASER_MAX_ACTIVE_JOBS); wait for one to"
                    " finish or abort one"
                )
        JOBS_CREATED.labels(task).inc()
        if start:
            await self._send(job, 1)
        return job

    async def get(self, caller: Caller, job_id: str) -> Job:
        """The job, if it exists and the caller may see it (its owner, or an
        admin).

        Raises
        ------
        JobNotFoundError
            No such job, or another owner's (indistinguishable).
        """
        job = await self._store.get(job_id) if is_job_id(job_id) else None
        if job is None or not _visible(caller, job):
            raise JobNotFoundError(job_id)
        return job

    async def peek(self, caller: Caller, job_id: str) -> Job | None:
        """`get` for live views: the read batched with the other live
        views' reads of the same moment (`JobStore.get_batched`), `None`
        where `get` raises (gone, or not the caller's)."""
        job = await self._store.get_batched(job_id)
        return job if job is not None and _visible(caller, job) else None

    @property
    def hub(self) -> EventHub:
        """This process's event hub (live views subscribe to it)."""
        return self._hub

    def result_path(self, result: JobResult) -> Path | None:
        """Where a result's bytes are, if they are still there."""
        return self._results.path(result.key)

    async def list(
        self,
        caller: Caller,
        *,
        owner: str | None = None,
        task: str | None = None,
        phases: Sequence[ExecutionPhase] | None = None,
        run_id: str | None = None,
        after: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> JobPage:
        """The caller's jobs (an admin's: ``owner``'s), newest first, one
        page at a time.

        Without ``phases``, every phase but ARCHIVED (`listed_phases`), in
        both dialects: archived jobs are listed only when asked for.

        Task and phase filters read dedicated indexes, and so does
        ``run_id``; with ``run_id`` and a task or phase filter, the run
        id's jobs are read and filtered, so the cost grows with the jobs
        of that run id that the other filters skip.
        """
        phases = phases or self.listed_phases()
        whose = owner if (caller.admin and owner is not None) else caller.name
        if cursor is not None and not is_job_id(cursor):
            raise PhaserError(f"Invalid cursor {cursor!r}")
        if after is not None:
            after = _utc("after", after)
        newer_than = after_bound(to_ms(after)) if after else None
        wanted = set(phases) if phases else None
        filtered = run_id is not None and (task or wanted)
        collected: list[Job] = []
        position = cursor
        batch = max(limit * 2, 100) if filtered else limit + 1
        while True:
            ids = await self._store.list_ids(
                owner=whose,
                tasks=[task] if task else None,
                phases=list(dict.fromkeys(phases)) if phases else None,
                newer_than=newer_than,
                older_than=position,
                limit=batch,
                run_id=run_id,
            )
            for job in await self._store.get_many(ids):
                if not filtered or (
                    (task is None or job.task == task)
                    and (wanted is None or job.phase in wanted)
                ):
                    collected.append(job)
                if len(collected) > limit:
                    page = collected[:limit]
                    return JobPage(jobs=page, next_cursor=page[-1].id)
            if len(ids) < batch:
                return JobPage(jobs=collected, next_cursor=None)
            position = ids[-1]

    async def start(self, caller: Caller, job_id: str) -> Job:
        """Queue a pending job.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job is not PENDING (or HELD).
        """
        return await self._start(await self.get(caller, job_id))

    async def _start(self, job: Job) -> Job:
        result = await self._store.transition(
            job,
            allowed=allowed_from(Action.START),
            to=target_phase(Action.START),
            fields={"attempts": 1},
        )
        self._raise_unless_ok(job, result, "start")
        # The record says QUEUED before the queue hears of the job, so a
        # worker that picks it up at once finds it claimable.
        await self._send(job, 1)
        return dataclasses.replace(
            job,
            phase=ExecutionPhase.QUEUED,
            attempts=1,
            history=[
                *job.history,
                PhaseChange(ExecutionPhase.QUEUED, now()),
            ],
        )

    async def abort(
        self, caller: Caller, job_id: str, *, strict: bool = True
    ) -> Job:
        """Abort a pending, queued or running job.

        A running task is stopped by its worker, which is listening for the
        ABORTED event: async tasks are cancelled, process tasks killed.

        Parameters
        ----------
        caller
            Who asks.
        job_id
            The job.
        strict
            Refuse to abort a job that has ended; otherwise (UWS) that is
            a no-op.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job has already ended and ``strict`` is set.
        """
        job = await self.get(caller, job_id)
        result = await self._abort(job)
        if strict or result.outcome is not Outcome.PHASE:
            self._raise_unless_ok(job, result, "abort")
        return await self.get(caller, job_id)

    async def _abort(self, job: AnyJob) -> TransitionResult:
        result = await self._store.transition(
            job,
            allowed=allowed_from(Action.ABORT),
            to=target_phase(Action.ABORT),
            fields={"ended_at": now()},
            deadline=None,
        )
        if result.ok:
            JOBS_FINISHED.labels(job.task, ExecutionPhase.ABORTED).inc()
            await self.count("finished")
        return result

    async def update(
        self, caller: Caller, job_id: str, update: JobUpdate
    ) -> Job:
        """Change parameters, execution duration, destruction time or run id.

        Parameters and execution duration change only while the job has not
        started; the destruction time and run id can change in any phase.
        Requested values beyond the configured maxima are clamped to them.

        Raises
        ------
        JobNotFoundError
            No such job.
        PhaseConflictError
            The job has started and the update touches what it runs with.
        InvalidParametersError
            The new parameters do not fit the task.
        """
        job = await self.get(caller, job_id)
        fields: dict[str, Any] = {}
        allowed: frozenset[ExecutionPhase] = frozenset(ExecutionPhase)
        if update.parameters is not None:
            definition = self._registry.get(job.task)
            if update.strict:
                _refuse_unknown(definition, update.parameters)
            merged = {**job.parameters, **update.parameters}
            fields["parameters"] = self._check_parameters(definition, merged)
            ignored = definition.unknown(update.parameters, ignore_case=True)
            if ignored:
                fields["ignored"] = list(
                    dict.fromkeys([*job.ignored, *ignored])
                )
            allowed = allowed_from(Action.EDIT)
        if update.execution_duration is not None:
            fields["execution_duration"] = self._execution_duration(
                self._registry.get(job.task), update.execution_duration
            )
            allowed = allowed_from(Action.EDIT)
        destruction: datetime | Unchanged = KEEP
        if update.destruction_time is not None:
            destruction = self._clamp_destruction(update.destruction_time)
            fields["destruction_time"] = destruction
        if update.run_id is not None:
            _check_run_id(update.run_id)
            fields["run_id"] = update.run_id
        if not fields:
            return job
        result = await self._store.transition(
            job,
            allowed=allowed,
            fields=fields,
            destruction=destruction,
            event="update",
        )
        self._raise_unless_ok(job, result, "change")
        return await self.get(caller, job_id)

    async def delete(self, caller: Caller, job_id: str) -> None:
        """Delete a job and its results, aborting it first if it is active.

        Raises
        ------
        JobNotFoundError
            No such job.
        """
        job = await self.get(caller, job_id)
        if not await self.destroy(job):
            raise JobNotFoundError(job_id)

    async def destroy(self, job: AnyJob) -> bool:
        """Abort the job if it is active, then delete it and its results.

        Returns whether the job still existed.
        """
        if job.phase not in FINAL_PHASES:
            # Abort first so a worker running it stops. Losing this race
            # (the job ended meanwhile) is fine: it is deleted either way.
            await self._abort(job)
        # Results first: whoever sees the job gone must not find its files.
        await asyncio.to_thread(self._results.delete_job, job.id)
        return await self._store.delete(job) is not None

    async def destroy_many(self, jobs: Sequence[AnyJob]) -> int:
        """`destroy` for a batch: one thread hop for the files and one
        script call for the records. Returns how many still existed."""
        for job in jobs:
            if job.phase not in FINAL_PHASES:
                await self._abort(job)
        await asyncio.to_thread(
            self._results.delete_jobs, [job.id for job in jobs]
        )
        phases = await self._store.delete_many(jobs)
        return sum(phase is not None for phase in phases)

    async def archive(self, job: AnyJob) -> bool:
        """Abort the job if it is active, delete its results and keep its
        metadata in phase ARCHIVED. Returns whether it was archived."""
        if job.phase not in FINAL_PHASES:
            await self._abort(job)
        await asyncio.to_thread(self._results.delete_job, job.id)
        result = await self._store.transition(
            job,
            allowed=allowed_from(Action.ARCHIVE),
            to=target_phase(Action.ARCHIVE),
            clear=["results"],
            destruction=None,
        )
        return result.ok

    async def requeue(
        self,
        job: Job,
        *,
        attempt: int,
        check: tuple[str, str],
        error: JobError | None,
        defer: float = 0,
    ) -> bool:
        """Send a running job back to the queue as attempt ``attempt + 1``.

        ``check`` names what must not have changed since the caller looked
        (its claim, or the heartbeat a stalled job was last seen with), so
        a requeue cannot hit a job someone else has moved on. Returns
        whether the job was re-queued.
        """
        fields: dict[str, Any] = {"attempts": attempt + 1}
        if error is not None:
            fields["errors"] = [error]
        requeued = await self._store.transition(
            job,
            allowed=allowed_from(Action.RETRY),
            to=target_phase(Action.RETRY),
            check=check,
            fields=fields,
            clear=["claim", "heartbeat_at"],
        )
        if requeued.ok:
            await self._send(job, attempt + 1, defer=defer or None)
        return requeued.ok

    async def end(
        self,
        job: Job,
        *,
        phase: ExecutionPhase,
        check: tuple[str, str],
        error: JobError | None = None,
    ) -> bool:
        """End a running job in COMPLETED, ERROR or ABORTED, if ``check``
        still holds. Returns whether it did."""
        fields: dict[str, Any] = {"ended_at": now()}
        if error is not None:
            fields["errors"] = [error]
        result = await self._store.transition(
            job,
            allowed=[ExecutionPhase.EXECUTING],
            to=phase,
            check=check,
            fields=fields,
        )
        if result.ok:
            JOBS_FINISHED.labels(job.task, phase).inc()
            await self.count("finished")
        return result.ok

    async def resend(self, job: Job) -> bool:
        """Queue a QUEUED job again if its queue entry is gone.

        The entry can be lost when Redis goes away between the QUEUED write
        and the queue write, or when a worker took the entry and failed
        before claiming the job. The job is sent as a new attempt, so arq's
        leftovers of the old one can neither block nor run it. Returns
        whether the job was sent again.
        """
        if await self._queue.is_waiting(
            job.id, job.attempts, queue=self._queue_of(job)
        ):
            return False
        return await self.hand_back(job, attempt=job.attempts)

    async def hand_back(
        self, job: Job, *, attempt: int, defer: float | None = None
    ) -> bool:
        """Send a QUEUED job's attempt ``attempt`` back to the queue as the
        next attempt, unless someone has moved the job on meanwhile.

        Also for a worker that took an attempt of a task it does not know
        (a rolling deploy that adds a task; pools with different task
        modules): the job waits for a worker that does, instead of failing.
        """
        resent = await self._store.transition(
            job,
            allowed=[ExecutionPhase.QUEUED],
            check=("attempts", str(attempt)),
            fields={"attempts": attempt + 1},
            event="update",
        )
        if resent.ok:
            await self._send(job, attempt + 1, defer=defer)
        return resent.ok

    def _queue_of(self, job: Job) -> str:
        """The queue of a job: the one it was created for."""
        return job.queue or self._settings.queue_of(job.task)

    async def _send(
        self, job: Job, attempt: int, *, defer: float | None = None
    ) -> None:
        """Queue an attempt on the job's queue."""
        await self._queue.enqueue(
            job.id, attempt, queue=self._queue_of(job), defer=defer
        )

    def max_attempts(self, job: Job) -> int:
        """How many attempts the job's task gets."""
        try:
            limit = self._registry.get(job.task).max_attempts
        except PhaserError:
            limit = None
        return limit or self._settings.max_attempts

    async def wait(
        self,
        caller: Caller,
        job_id: str,
        timeout: float,
        *,
        phase: ExecutionPhase | None = None,
        final: bool = False,
    ) -> Job:
        """The job once its phase changes (with ``final``: once it has
        ended), or after ``timeout`` seconds.

        Blocks only while the job is PENDING, QUEUED or EXECUTING (and, with
        ``phase``, only while it is in that phase). The wait is capped by the
        configured maximum and woken by the job's events, never by polling.

        Raises
        ------
        JobNotFoundError
            No such job, or it was deleted while waiting.
        """
        timeout = min(max(timeout, 0), self._settings.max_wait)
        deadline = asyncio.get_running_loop().time() + timeout
        with OPEN_WAITS.labels("wait").track_inprogress():
            return await self._wait(caller, job_id, deadline, phase, final)

    async def _wait(
        self,
        caller: Caller,
        job_id: str,
        deadline: float,
        phase: ExecutionPhase | None,
        final: bool,
    ) -> Job:
        loop = asyncio.get_running_loop()
        # Subscribe before reading, so no event can slip in between.
        async with self._hub.subscribe(job_id) as events:
            job = await self.get(caller, job_id)
            waiting_in = job.phase
            if not job.is_active or (phase is not None and phase != job.phase):
                return job
            while job.is_active if final else job.phase == waiting_in:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                event = await next_event(events, remaining)
                if event is None:
                    break
                if event.kind in {"progress", "result"}:
                    continue
                job = await self._reread(job)
                if event.kind == "closing":
                    break
            return job

    async def _reread(self, job: Job) -> Job:
        """A waiter's job read again after an event, batched with the other
        waiters' reads (see `JobStore.get_batched`).

        Raises
        ------
        JobNotFoundError
            The job was deleted meanwhile.
        """
        current = await self._store.get_batched(job.id)
        if current is None:
            raise JobNotFoundError(job.id)
        return current

    async def watch(
        self, caller: Caller, job_id: str
    ) -> AsyncGenerator[tuple[str, Job | None], None]:
        """Changes of a job: ``(kind, job)`` pairs until it has ended.

        The first pair is ``("job", job)``; then ``("phase", job)`` and
        ``("progress", job)`` as they happen, ``("deleted", None)`` if the job
        is deleted, and ``("keepalive", None)`` when nothing happened for a
        while. The stream ends after a final phase.

        Raises
        ------
        JobNotFoundError
            No such job (raised before the first pair).
        """
        async with self._hub.subscribe(job_id) as events:
            job = await self.get(caller, job_id)
            OPEN_WAITS.labels("events").inc()
            try:
                async for change in self._changes(job, events):
                    yield change
            finally:
                OPEN_WAITS.labels("events").dec()

    async def _changes(
        self, job: Job, events: asyncio.Queue[JobEvent]
    ) -> AsyncGenerator[tuple[str, Job | None], None]:
        """`watch`, once subscribed and the job read."""
        yield "job", job
        while job.phase not in FINAL_PHASES:
            event = await next_event(events, _KEEPALIVE)
            if event is None:
                yield "keepalive", None
                continue
            if event.kind == "closing":
                return
            current = await self._store.get_batched(job.id)
            if current is None:
                yield "deleted", None
                return
            if current.phase != job.phase:
                yield "phase", current
            elif (
                current.progress != job.progress
                or current.results != job.results
            ):
                yield "progress", current
            job = current

    async def result(
        self, caller: Caller, job_id: str, result_id: str
    ) -> tuple[JobResult, Path]:
        """A result of a job and the local path of its bytes.

        Raises
        ------
        JobNotFoundError
            No such job.
        ResultNotFoundError
            No such result, or its data is gone.
        """
        job = await self.get(caller, job_id)
        result = job.result(result_id)
        path = self._results.path(result.key) if result else None
        if result is None or path is None:
            raise ResultNotFoundError(
                f"Job {job_id} has no result {result_id}"
            )
        return result, path

    def _check_parameters(
        self, task: Task, parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check parameters at the boundary; their stored form.

        Before anything is stored: every value must be renderable in both
        dialects (`check_value`), within the size limits, and fit the
        task.

        Raises
        ------
        InvalidParametersError
            They do not; the message names the parameter.
        """
        check_value("parameters", parameters)
        self._check_size(parameters)
        stored = task.validate(parameters)
        # The task's model may turn text into values JSON cannot carry
        # (``"nan"`` into a float).
        check_value("parameters", stored)
        return stored

    def _check_size(self, parameters: Mapping[str, Any]) -> None:
        """Refuse too many or too large parameters."""
        limit = self._settings.max_parameters
        if len(parameters) > limit:
            raise InvalidParametersError(
                f"Too many parameters: {len(parameters)} (at most {limit})"
            )
        size = len(json.dumps(parameters, default=str))
        limit = self._settings.max_parameters_bytes
        if size > limit:
            raise InvalidParametersError(
                f"Parameters too large: {size} bytes as JSON (at most {limit})"
            )

    @property
    def _quota(self) -> Quota:
        """Per-owner limits, checked by the store in the same atomic step
        as the creation, so concurrent requests cannot overshoot them."""
        return Quota(
            max_stored=self._settings.stored_jobs_limit,
            max_active=self._settings.active_jobs_limit,
            active_phases=_ACTIVE,
        )

    def _execution_duration(self, task: Task, requested: int | None) -> int:
        """The duration a job gets: defaults, then configured and task
        maxima applied (0, unlimited, only when neither sets a maximum)."""
        if requested is None:
            requested = task.execution_duration
        duration = self._settings.clamp_execution_duration(requested)
        return cap_duration(duration, task.max_execution_duration)

    def _clamp_destruction(self, requested: datetime | None) -> datetime:
        latest = now() + self._settings.max_lifetime
        if requested is None:
            return now() + self._settings.default_lifetime
        return min(_utc("destruction_time", requested), latest)

    @staticmethod
    def _raise_unless_ok(
        job: Job, result: TransitionResult, verb: str
    ) -> None:
        match result.outcome:
            case Outcome.OK:
                return
            case Outcome.MISSING:
                raise JobNotFoundError(job.id)
            case Outcome.PHASE | Outcome.CHECK:
                phase = result.phase.value if result.phase else "UNKNOWN"
                raise PhaseConflictError(
                    f"Cannot {verb} job {job.id} in phase {phase}"
                )


def _utc(field: str, moment: datetime) -> datetime:
    """A client's time in UTC, refused with a 4xx naming the field if it
    cannot be stored (see `phaser.clock.to_utc`)."""
    try:
        return to_utc(moment)
    except ValueError as exc:
        raise InvalidRequestError(
            f"Invalid {field}: {exc}",
            fields=[{"field": field, "message": str(exc)}],
        ) from None


def _visible(caller: Caller, job: Job) -> bool:
    """Whether the caller may see the job: its owner, or an admin."""
    return job.owner == caller.name or caller.admin


def _refuse_unknown(task: Task, parameters: Mapping[str, Any]) -> None:
    unknown = task.unknown(parameters)
    if unknown:
        raise InvalidParametersError(
            f"Unknown parameters for task {task.name}: {', '.join(unknown)}",
            fields=[
                {"field": f"parameters.{name}", "message": "unknown parameter"}
                for name in unknown
            ],
        )


def _check_run_id(run_id: str | None) -> None:
    if run_id is None:
        return
    if len(run_id) > _MAX_RUN_ID:
        raise InvalidRequestError(
            f"Invalid run_id: longer than {_MAX_RUN_ID} characters",
            fields=[{"field": "run_id", "message": "too long"}],
        )
    check_text("run_id", run_id)


def duration_exceeded(job: Job) -> JobError:
    """The error of a job stopped by its execution duration."""
    return JobError(
        ErrorType.FATAL,
        f"Execution duration of {job.execution_duration} s exceeded",
    )
