"""The job record: the one domain model both dialects render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from .phase import (
    ACTIVE_PHASES,
    CHILD_GROUP,
    CHILD_GROUPS,
    FAILED_PHASES,
    ExecutionPhase,
)
from .text import clean_text

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_MESSAGES",
    "MAX_MESSAGE_LENGTH",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "AfterPolicy",
    "AttemptRun",
    "ErrorType",
    "Job",
    "JobError",
    "JobMessage",
    "JobResult",
    "MessageLog",
    "Notify",
    "NotifyEvent",
    "PhaseChange",
    "Progress",
    "duration_exceeded",
]

#: How a job's dependencies must end for it to run.
AfterPolicy = Literal["all_completed", "any_end"]

#: What a job's webhook is told of: its end, every change of phase, its
#: progress.
NotifyEvent = Literal["final", "phase", "progress"]


@dataclass(frozen=True, slots=True)
class Notify:
    """Where a job's webhook deliveries go, and for which events."""

    url: str
    events: tuple[NotifyEvent, ...] = ("final",)


#: Lowest priority a job may have.
MIN_PRIORITY = 0
#: Highest priority a job may have (runs first).
MAX_PRIORITY = 9
#: Priority of a job whose task and client say nothing.
DEFAULT_PRIORITY = 5


class ErrorType(StrEnum):
    """UWS error types: a transient error may go away if retried."""

    FATAL = "fatal"
    TRANSIENT = "transient"


class ErrorCode(StrEnum):
    """What ended a job in error (a `JobError`'s ``code``): the task
    refused (it raised `TaskError`: a client's request it cannot serve),
    the task broke (any other exception, or its process died), an upload
    given by reference could not be fetched, its execution duration ran
    out, its worker was lost too often, or a job it waited for did not
    complete."""

    TASK_ERROR = "task_error"
    TASK_FAILED = "task_failed"
    UPLOAD_FAILED = "upload_failed"
    DURATION_EXCEEDED = "duration_exceeded"
    WORKER_LOST = "worker_lost"
    DEPENDENCY_FAILED = "dependency_failed"


@dataclass(frozen=True, slots=True)
class JobResult:
    """One result of a job, as recorded (the bytes live in a result store)."""

    id: str
    size: int
    mime_type: str
    key: str


@dataclass(frozen=True, slots=True)
class JobUpload:
    """A file a job was given: uploaded with the request (stored under
    ``key``, ``size`` bytes) or by reference (``url``, fetched by the
    worker before the task runs; size unknown until then, ``-1``)."""

    name: str
    size: int
    mime_type: str
    key: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job ended in ERROR (or ABORTED by a limit).

    The message and detail come from task code, which phaser does not
    check: characters XML cannot carry are replaced (`clean_text`).
    """

    type: ErrorType
    message: str
    code: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", clean_text(self.message))
        if self.detail is not None:
            object.__setattr__(self, "detail", clean_text(self.detail))


@dataclass(frozen=True, slots=True)
class Progress:
    """What the task last said about its progress (the message made safe
    as a `JobError`'s is)."""

    percent: float | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.message is not None:
            object.__setattr__(self, "message", clean_text(self.message))


#: Most messages a job keeps per level (``info``, ``warnings``): older
#: ones are dropped, and counted.
MAX_MESSAGES = 50
#: Longest message kept, in characters (a longer one is cut, with "…").
MAX_MESSAGE_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class JobMessage:
    """A line the task logged for its job's readers (``ctx.info``,
    ``ctx.warning``), made safe and cut as `MAX_MESSAGE_LENGTH` says."""

    at: datetime
    text: str

    def __post_init__(self) -> None:
        text = clean_text(self.text)
        if len(text) > MAX_MESSAGE_LENGTH:
            text = text[: MAX_MESSAGE_LENGTH - 1] + "…"
        object.__setattr__(self, "text", text)


@dataclass(frozen=True, slots=True)
class MessageLog:
    """A job's messages of one level, oldest first: the newest
    `MAX_MESSAGES`, and how many older ones were dropped."""

    items: tuple[JobMessage, ...] = ()
    dropped: int = 0

    def add(self, message: JobMessage) -> MessageLog:
        """This log with ``message`` appended (the oldest dropped past
        the limit)."""
        items = (*self.items, message)
        extra = max(len(items) - MAX_MESSAGES, 0)
        return MessageLog(items[extra:], self.dropped + extra)

    def __bool__(self) -> bool:
        return bool(self.items) or self.dropped > 0

    def shown(self) -> tuple[JobMessage, ...]:
        """The messages as readers see them: when older ones were
        dropped, first a line saying how many (at the oldest kept one's
        time)."""
        if not (self.dropped and self.items):
            return self.items
        marker = f"[{self.dropped} earlier messages dropped]"
        return (JobMessage(self.items[0].at, marker), *self.items)


class AttemptRun(NamedTuple):
    """One attempt of a job, for operators: the queue entry that carried
    it (``entry``, the arq job id), the worker process that claimed it,
    and when. (A named tuple: every record read builds them, and a tuple
    is the cheapest immutable value to build.)"""

    attempt: int
    entry: str
    worker: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PhaseChange:
    """The job entered ``phase`` at ``at``."""

    phase: ExecutionPhase
    at: datetime


@dataclass(slots=True)
class Job:
    """A job as stored.

    ``ignored`` names the parameters a UWS client sent that the task does
    not have (UWS ignores them, as IVOA services do, and says so).
    ``queue`` is the queue the job's attempts go to, decided once at
    creation (records of older versions have none: the task's queue in the
    settings of whoever sends it). ``claim`` and ``heartbeat_at`` are the
    worker bookkeeping: the token of
    the worker attempt that moved the job to EXECUTING, and when that worker
    last said it was alive. Worker-side writes (progress, results, the final
    phase) only land while the record still carries the token, so a worker
    that lost its claim cannot overwrite the job. ``sync`` marks a job
    created by a synchronous request (DALI ``/sync``, ``?sync=true``): an
    ordinary job whose creator waits for its end on the same connection.
    """

    id: str
    task: str
    owner: str | None
    phase: ExecutionPhase
    parameters: dict[str, Any]
    created_at: datetime
    execution_duration: int
    destruction_time: datetime | None
    run_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    quote: datetime | None = None
    results: list[JobResult] = field(default_factory=list)
    errors: list[JobError] = field(default_factory=list)
    progress: Progress | None = None
    attempts: int = 0
    ignored: list[str] = field(default_factory=list)
    queue: str | None = None
    claim: str | None = None
    heartbeat_at: datetime | None = None
    sync: bool = False
    uploads: list[JobUpload] = field(default_factory=list)
    #: When a HELD job is queued by itself (``run_after``).
    run_after: datetime | None = None
    #: Higher runs first (`MIN_PRIORITY` to `MAX_PRIORITY`).
    priority: int = DEFAULT_PRIORITY
    #: The client's concurrency key (its owner's jobs with one key share
    #: a limit).
    concurrency_key: str | None = None
    #: Concurrency-limit groups the job belongs to, with their limits
    #: (decided at creation; see `phaser.storage.limits`).
    limits: dict[str, int] = field(default_factory=dict)
    #: Jobs that must end before this one is queued (it waits HELD).
    after: list[str] = field(default_factory=list)
    #: ``all_completed``: every one of ``after`` must complete (one that
    #: fails, is aborted or deleted fails this job); ``any_end``: they
    #: must only have ended.
    after_policy: AfterPolicy = "all_completed"
    #: The job this one is a child of (listing by parent; aborting the
    #: parent aborts its active children).
    parent_id: str | None = None
    #: Other jobs wait for this one (bookkeeping: who to tell at its end).
    has_dependants: bool = False
    #: Other jobs name this one as their parent.
    has_children: bool = False
    #: Its webhook, if it has one.
    notify: Notify | None = None
    #: The key its webhook deliveries are signed with (never rendered).
    notify_secret: str | None = field(default=None, repr=False)
    #: Its trace (a W3C ``traceparent``) when tracing is on
    #: (`phaser.tracing`; never rendered).
    trace: str | None = None
    #: Every phase the job entered, with when, oldest first (the first is
    #: its phase at creation). Records of older versions have none.
    history: list[PhaseChange] = field(default_factory=list)
    #: The client's words for it (ONTAP's job description).
    description: str | None = None
    #: What the task logged for readers (``ctx.info``, ``ctx.warning``).
    info: MessageLog = MessageLog()
    warnings: MessageLog = MessageLog()
    #: Destroy it this many seconds after it ends (sooner than its
    #: destruction time, never later).
    retain_after_end: int | None = None
    #: A parent's children by phase (kept by the same atomic steps that
    #: change them).
    children: dict[ExecutionPhase, int] = field(default_factory=dict)
    #: Why it may not be aborted now (the running task said so), if so.
    no_abort: str | None = None
    #: Its attempts: which queue entry and worker ran each (admins only).
    runs: list[AttemptRun] = field(default_factory=list)

    @property
    def is_active(self) -> bool:
        """Whether the job may still change phase by itself."""
        return self.phase in ACTIVE_PHASES

    @property
    def shown_error(self) -> JobError | None:
        """The error clients are shown: the first, once the job has
        failed (a retried attempt's error is not the job's)."""
        if self.errors and self.phase in FAILED_PHASES:
            return self.errors[0]
        return None

    @property
    def child_counts(self) -> dict[str, int] | None:
        """Its children counted by `CHILD_GROUPS` and in ``total``, if it
        has (had) any."""
        if not self.has_children:
            return None
        counts = dict.fromkeys(CHILD_GROUPS, 0)
        total = 0
        for phase, count in self.children.items():
            total += count
            if phase in CHILD_GROUP:
                counts[CHILD_GROUP[phase]] += count
        return {"total": total, **counts}

    def upload(self, name: str) -> JobUpload | None:
        """The upload of that name, if any."""
        for upload in self.uploads:
            if upload.name == name:
                return upload
        return None

    def result(self, result_id: str) -> JobResult | None:
        """The result with that id, if any."""
        for result in self.results:
            if result.id == result_id:
                return result
        return None


def duration_exceeded(job: Job) -> JobError:
    """The error of a job stopped by its execution duration."""
    return JobError(
        ErrorType.FATAL,
        f"Execution duration of {job.execution_duration} s exceeded",
        code=ErrorCode.DURATION_EXCEEDED,
    )
