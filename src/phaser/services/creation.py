"""Creating jobs, for both dialects: checks, uploads, the one atomic
write, and idempotency.

An idempotency key (the IETF draft's ``Idempotency-Key`` header, or the
JSON API's ``idempotency_key``) makes a creation safe to repeat: the same
owner sending the same key within ``PHASER_IDEMPOTENCY_WINDOW`` gets the
job the first request made (also when the requests race: the key is
claimed by the same script that stores the job), and the same key with
a different request is refused. What counts as the same request is a
fingerprint of what the client asked for (`NewJob.fingerprint`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, assert_never

from ..clock import now, to_ms
from ..config import Settings
from ..metrics import JOBS_CREATED
from ..models.caller import Caller
from ..models.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    JobNotFoundError,
    RelatedJobNotFoundError,
    ScheduleConflictError,
)
from ..models.job import AfterPolicy, Job, Notify, PhaseChange
from ..models.phase import HELD, WAITING, created_phase
from ..storage.job_store import Created, Existing, JobStore, OverQuota
from ..storage.limits import key_group, task_group
from ..tasks.registry import Task, TaskRegistry
from ..tracing import tracing
from .checks import (
    JobChecks,
    check_concurrency_key,
    check_described,
    check_priority,
    check_run_id,
    start_time,
    utc,
)
from .ids import is_job_id, new_job_id
from .lifecycle import JobLifecycle
from .uploads import FileUpload, LinkUpload, NewUpload, UploadChecks
from .webhooks import check_webhook_url, new_secret

__all__ = ["CreatedJob", "JobCreator", "NewJob", "check_idempotency_key"]

#: Longest idempotency key.
_MAX_KEY = 255

#: Most jobs one job may wait for.
_MAX_AFTER = 100


def check_idempotency_key(value: str | None) -> str | None:
    """An idempotency key as sent (an RFC 8941 string, quoted or not),
    checked: 1 to 255 visible ASCII characters.

    Raises
    ------
    InvalidRequestError
        Empty, too long, or with other characters.
    """
    if value is None:
        return None
    key = value.strip()
    if len(key) > 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if (
        not key
        or len(key) > _MAX_KEY
        or not all("\x20" <= c <= "\x7e" for c in key)
    ):
        raise InvalidRequestError(
            "Invalid idempotency key: 1 to 255 visible ASCII characters",
            fields=[{"field": "idempotency_key", "message": "invalid"}],
        )
    return key


@dataclass(frozen=True, slots=True)
class NewJob:
    """What a client asks to create.

    With ``strict`` (the JSON API), parameter names the task does not
    have are refused; otherwise (UWS, as IVOA services do) ignored.
    ``sync`` marks the job of a synchronous request. ``uploads`` are the
    files it is given (`phaser.services.uploads`).
    """

    task: str
    parameters: Mapping[str, Any]
    run_id: str | None = None
    start: bool = False
    execution_duration: int | None = None
    destruction_time: datetime | None = None
    strict: bool = False
    sync: bool = False
    uploads: Sequence[NewUpload] = ()
    idempotency_key: str | None = None
    #: Start at this time (the job waits HELD until then).
    run_after: datetime | None = None
    #: Its priority; the task's if `None`.
    priority: int | None = None
    #: Jobs of one owner with one key share a concurrency limit.
    concurrency_key: str | None = None
    #: Jobs (the owner's) that must end first; the job waits HELD.
    after: Sequence[str] = ()
    #: How they must end (`phaser.models.job.AfterPolicy`).
    after_policy: AfterPolicy = "all_completed"
    #: The owner's job this one is a child of.
    parent_id: str | None = None
    #: Its webhook.
    notify: Notify | None = None
    description: str | None = None
    #: Destroy it this long (s) after it ends; the task's if `None`.
    retain_after_end: int | None = None

    def fingerprint(self) -> str:
        """What makes two creations the same request: everything the
        client asked for, files by their digest."""
        files = []
        for upload in self.uploads:
            match upload:
                case FileUpload(name, _, size, mime_type, digest):
                    files.append([name, size, mime_type, digest])
                case LinkUpload(name, url):
                    files.append([name, url])
        asked = [
            self.task,
            self.parameters,
            self.run_id,
            self.start,
            self.execution_duration,
            self.destruction_time.isoformat()
            if self.destruction_time
            else None,
            self.sync,
            sorted(files),
            self.run_after.isoformat() if self.run_after else None,
            self.priority,
            self.concurrency_key,
            sorted(self.after),
            self.after_policy,
            self.parent_id,
            [self.notify.url, list(self.notify.events)]
            if self.notify
            else None,
            self.description,
            self.retain_after_end,
        ]
        text = json.dumps(asked, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CreatedJob:
    """A creation's job; ``replayed`` if an earlier request with the same
    idempotency key made it."""

    job: Job
    replayed: bool = False


class JobCreator:
    """Creates jobs (see the module doc).

    Parameters
    ----------
    settings
        Limits, defaults and the idempotency window.
    store
        Job store.
    lifecycle
        Queue sends and the result store.
    registry
        Tasks.
    checks
        Checks of values and quotas.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        lifecycle: JobLifecycle,
        registry: TaskRegistry,
        checks: JobChecks,
    ) -> None:
        self._settings = settings
        self._store = store
        self._lifecycle = lifecycle
        self._registry = registry
        self._checks = checks
        self._uploads = UploadChecks(settings)

    async def create(self, caller: Caller, new: NewJob) -> CreatedJob:
        """Create a job, and queue it if ``new.start``; with an
        idempotency key, the job an earlier request with it made.

        Raises
        ------
        UnknownTaskError
            No such task.
        InvalidParametersError
            The parameters (or uploads) do not fit the task.
        TooLargeError
            Too many uploads, or one too large.
        QuotaExceededError
            A limit of the owner's is reached.
        IdempotencyConflictError
            The key was used for a different request.
        """
        with tracing().span(
            "phaser.job.create", attributes={"phaser.task": new.task}
        ) as span:
            made = await self._create(caller, new, span.traceparent)
            span.set("phaser.job.id", made.job.id)
            span.set("phaser.replayed", made.replayed or None)
            return made

    async def _create(
        self, caller: Caller, new: NewJob, trace: str | None
    ) -> CreatedJob:
        definition = self._registry.get(new.task)
        kept, ignored = (
            self._uploads.check(definition, new.uploads, strict=new.strict)
            if new.uploads
            else ([], [])
        )
        stored = self._checks.parameters(
            definition,
            new.parameters,
            strict=new.strict,
            uploads=frozenset(upload.name for upload in kept),
        )
        check_run_id(new.run_id)
        check_described(new.description, new.retain_after_end)
        priority = (
            definition.priority
            if new.priority is None
            else check_priority(new.priority)
        )
        await self._check_relations(caller, new)
        if new.notify is not None:
            await check_webhook_url(
                new.notify.url, self._settings.webhook_hosts
            )
        asked = utc("run_after", new.run_after) if new.run_after else None
        destruction = self._checks.destruction(
            new.destruction_time, start=asked
        )
        run_after = start_time(asked, destruction)
        # A start time makes the job wait HELD until then, started or not
        # (one that has passed starts it now); so do dependencies, until
        # they have ended.
        start = new.start or new.run_after is not None
        held = run_after is not None or bool(new.after)
        phase = HELD if held else created_phase(start=start)
        created = now()
        job = Job(
            id=new_job_id(to_ms(created)),
            task=new.task,
            owner=caller.name,
            # A job started at once is stored QUEUED: one write, and the
            # record says QUEUED before the queue hears of it, so a worker
            # that picks it up at once finds it claimable.
            phase=phase,
            parameters=stored,
            created_at=created,
            execution_duration=self._checks.execution_duration(
                definition, new.execution_duration
            ),
            destruction_time=destruction,
            run_id=new.run_id,
            attempts=1 if phase is WAITING else 0,
            # Decided here, once: whoever sends the job again later
            # (recovery on a worker of another pool) sends it here too.
            queue=self._settings.queue_of(new.task),
            ignored=definition.unknown(new.parameters, ignore_case=True)
            + ignored,
            sync=new.sync,
            history=[PhaseChange(phase, created)],
            run_after=run_after,
            priority=priority,
            concurrency_key=new.concurrency_key,
            limits=self._limits(definition, caller, new.concurrency_key),
            after=list(dict.fromkeys(new.after)),
            after_policy=new.after_policy,
            parent_id=new.parent_id,
            notify=new.notify,
            notify_secret=new_secret() if new.notify else None,
            trace=trace,
            description=new.description,
            retain_after_end=definition.retain_after_end
            if new.retain_after_end is None
            else new.retain_after_end,
        )
        return await self._store_job(job, new, kept)

    async def _check_relations(self, caller: Caller, new: NewJob) -> None:
        """Refuse dependencies and a parent that are not the caller's
        stored jobs (a new job can only wait for jobs that exist, so no
        cycle can form), too many dependencies, and dependencies with a
        start time."""
        named = [*(("after", job_id) for job_id in new.after)]
        if new.parent_id is not None:
            named.append(("parent_id", new.parent_id))
        if len(new.after) > _MAX_AFTER:
            raise InvalidRequestError(
                f"Too many dependencies: {len(new.after)} (at most"
                f" {_MAX_AFTER})",
                fields=[{"field": "after", "message": "too many"}],
            )
        if new.after and new.run_after is not None:
            raise ScheduleConflictError(
                "A job waits for its dependencies or for run_after, not both",
                fields=[{"field": "run_after", "message": "with after"}],
            )
        if not named:
            return
        ids = [job_id for _, job_id in named if is_job_id(job_id)]
        found = {job.id: job for job in await self._store.get_many(ids)}
        for field, job_id in named:
            job = found.get(job_id)
            if job is None or job.owner != caller.name:
                raise RelatedJobNotFoundError(
                    f"Invalid {field}: no job {job_id!r} of yours",
                    fields=[{"field": field, "message": "no such job"}],
                )

    def _limits(
        self, definition: Task, caller: Caller, key: str | None
    ) -> dict[str, int]:
        """The concurrency-limit groups of a new job, with their limits."""
        limits = {}
        if definition.max_running is not None:
            limits[task_group(definition.name)] = definition.max_running
        if key is not None:
            limits[key_group(caller.name, check_concurrency_key(key))] = (
                definition.key_limit or self._settings.concurrency_key_limit
            )
        return limits

    async def _store_job(
        self, job: Job, new: NewJob, kept: list[NewUpload]
    ) -> CreatedJob:
        results = self._lifecycle.results
        job.uploads = await self._uploads.store(results, job.id, kept)
        once = None
        if new.idempotency_key is not None:
            once = (
                new.idempotency_key,
                new.fingerprint(),
                self._settings.idempotency_window * 1000,
            )
        sending = self._lifecycle.sending
        entry = sending.entry(job, 1) if job.phase is WAITING else None
        outcome = None
        try:
            quota = self._checks.quota
            outcome = await self._store.create(job, quota, once, entry)
        finally:
            if job.uploads and not isinstance(outcome, Created):
                await asyncio.to_thread(results.delete_job, job.id)
        match outcome:
            case Created():
                pass
            case Existing(job_id, same) if same:
                earlier = await self._store.get(job_id)
                if earlier is None:  # deleted since the script looked
                    raise JobNotFoundError(job_id)
                return CreatedJob(earlier, replayed=True)
            case Existing(job_id, _):
                raise IdempotencyConflictError(
                    f"Idempotency key {new.idempotency_key!r} was used"
                    f" for a different request (job {job_id}) within the"
                    f" last {self._settings.idempotency_window} s"
                    " (PHASER_IDEMPOTENCY_WINDOW); use a new key"
                )
            case OverQuota():
                raise self._checks.over_quota(outcome)
            case _:
                assert_never(outcome)
        JOBS_CREATED.labels(job.task).inc()
        if job.phase is WAITING and entry is None:
            await sending.send(job, 1)
        if job.after and await self._lifecycle.followers.resolve([job.id]):
            # Its dependencies had all ended already: decided at once.
            return CreatedJob(await self._store.get(job.id) or job)
        return CreatedJob(job)
