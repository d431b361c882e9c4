"""Wire models of the JSON API (``/api/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

from ..clock import format_time
from .job import DEFAULT_PRIORITY, ErrorType
from .notify import NotifyModel
from .phase import RUNNING, SUCCEEDED, WAITING, ExecutionPhase
from .problems import (
    PROBLEM_RESPONSES,
    ProblemModel,
    problem_responses,
)

__all__ = [
    "MAX_REQUEST_SECONDS",
    "PROBLEM_RESPONSES",
    "AttemptRunModel",
    "ChildrenModel",
    "CountModel",
    "JobErrorModel",
    "JobListModel",
    "JobModel",
    "MessageModel",
    "ProblemModel",
    "ProgressModel",
    "ResultModel",
    "TaskModel",
    "UploadModel",
    "problem_responses",
]


#: A UTC time rendered as RFC 3339 with milliseconds and ``Z``.
UtcTime = Annotated[datetime, PlainSerializer(format_time, return_type=str)]


class ProgressModel(BaseModel):
    """Progress a running task reported."""

    percent: float | None = Field(
        None, title="Percent", description="0–100, if the task said."
    )
    message: str | None = Field(
        None, title="Message", description="Last progress message."
    )


class ResultModel(BaseModel):
    """A result of a job."""

    id: str = Field(
        ..., title="Result id", description="``result`` is the main one."
    )
    href: str = Field(..., title="URL", description="Where to download it.")
    size: int = Field(..., title="Size", description="Size in bytes.")
    mime_type: str = Field(..., title="MIME type", description="Its type.")


class UploadModel(BaseModel):
    """A file the job was given."""

    name: str = Field(..., title="Name", description="Its parameter name.")
    href: str = Field(
        ...,
        title="URL",
        description=(
            "Where its owner can download it; for an upload by reference,"
            " the URL it was given (and fetched from)."
        ),
    )
    by_reference: bool = Field(
        ..., title="By reference", description="Given as a URL."
    )
    size: int | None = Field(
        None, title="Size", description="Bytes (unknown for a reference)."
    )
    mime_type: str = Field(..., title="MIME type")


class JobErrorModel(BaseModel):
    """Why a job failed (or was aborted by a limit)."""

    type: ErrorType = Field(
        ..., title="Type", description="``fatal`` or ``transient``."
    )
    code: str | None = Field(None, title="Code", description="Error code.")
    message: str = Field(..., title="Message", description="What went wrong.")
    detail: str | None = Field(
        None, title="Detail", description="More detail, if any."
    )


class PhaseChangeModel(BaseModel):
    """The job entered a phase."""

    phase: ExecutionPhase = Field(..., title="Phase")
    at: UtcTime = Field(..., title="Time")


class MessageModel(BaseModel):
    """A line the task logged (``ctx.info``, ``ctx.warning``). When
    older lines were dropped (50 are kept), the first entry says how
    many."""

    at: UtcTime = Field(..., title="Time")
    message: str = Field(..., title="Message")


class ChildrenModel(BaseModel):
    """A parent's children by phase: ``pending`` (PENDING, QUEUED,
    HELD), ``running`` (EXECUTING, SUSPENDED), ``succeeded``
    (COMPLETED), ``failed`` (ERROR), ``aborted``; ``total`` counts
    archived ones too."""

    total: int = Field(..., title="Total")
    pending: int = Field(..., title="Pending")
    running: int = Field(..., title="Running")
    succeeded: int = Field(..., title="Succeeded")
    failed: int = Field(..., title="Failed")
    aborted: int = Field(..., title="Aborted")


class AttemptRunModel(BaseModel):
    """One attempt of a job, as operators see it."""

    attempt: int = Field(..., title="Attempt")
    queue_entry: str = Field(
        ..., title="Queue entry", description="The arq job id that carried it."
    )
    worker: str = Field(
        ..., title="Worker", description="The worker process that ran it."
    )
    at: UtcTime = Field(..., title="Claimed at")


# The schema of the JSON API's job; `phaser.models.job_json` renders it
# (tests check that what it renders validates as this model, unchanged).
class JobModel(BaseModel):
    """A job."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01m8mhde5z46j7aq4kw6veb1yt",
                    "task": "sleep",
                    "owner": "ann",
                    "run_id": "nightly-42",
                    "phase": SUCCEEDED.value,
                    "parameters": {"seconds": 2.0},
                    "created_at": "2026-11-29T20:44:29.123Z",
                    "started_at": "2026-11-29T20:44:29.125Z",
                    "ended_at": "2026-11-29T20:44:31.131Z",
                    "execution_duration": 600,
                    "destruction_time": "2026-12-06T20:44:29.123Z",
                    "quote": None,
                    "progress": {"percent": 100.0, "message": "slept 2 s"},
                    "results": [
                        {
                            "id": "result",
                            "href": "https://phaser.example.org/api/v1/jobs/"
                            "01m8mhde5z46j7aq4kw6veb1yt/results/result",
                            "size": 9,
                            "mime_type": "text/plain; charset=utf-8",
                        }
                    ],
                    "errors": [],
                    "attempts": 1,
                    "ignored_parameters": [],
                    "history": [
                        {
                            "phase": WAITING.value,
                            "at": "2026-11-29T20:44:29.123Z",
                        },
                        {
                            "phase": RUNNING.value,
                            "at": "2026-11-29T20:44:29.125Z",
                        },
                        {
                            "phase": SUCCEEDED.value,
                            "at": "2026-11-29T20:44:31.131Z",
                        },
                    ],
                    "href": "https://phaser.example.org/api/v1/jobs/"
                    "01m8mhde5z46j7aq4kw6veb1yt",
                }
            ]
        }
    )

    id: str = Field(..., title="Job id")
    task: str = Field(..., title="Task")
    owner: str | None = Field(None, title="Owner")
    run_id: str | None = Field(
        None, title="Run id", description="Client's label for the job."
    )
    phase: ExecutionPhase = Field(..., title="Phase")
    parameters: dict[str, Any] = Field(..., title="Parameters")
    created_at: UtcTime = Field(..., title="Creation time")
    started_at: UtcTime | None = Field(None, title="Start time")
    ended_at: UtcTime | None = Field(None, title="End time")
    execution_duration: int = Field(
        ...,
        title="Execution duration",
        description="Seconds the job may run; 0 means unlimited.",
    )
    destruction_time: UtcTime | None = Field(
        None,
        title="Destruction time",
        description="When the job and its results are deleted.",
    )
    quote: UtcTime | None = Field(
        None, title="Quote", description="Expected completion time, if known."
    )
    progress: ProgressModel = Field(..., title="Progress")
    results: list[ResultModel] = Field(..., title="Results")
    uploads: list[UploadModel] = Field(
        default_factory=list,
        title="Uploads",
        description="Files it was given.",
    )
    errors: list[JobErrorModel] = Field(..., title="Errors")
    attempts: int = Field(
        ..., title="Attempts", description="Attempt number; 0 before start."
    )
    ignored_parameters: list[str] = Field(
        default_factory=list,
        title="Ignored parameters",
        description=(
            "Names a UWS client sent that the task does not have (the JSON"
            " API refuses them instead)."
        ),
    )
    run_after: UtcTime | None = Field(
        None,
        title="Run after",
        description="When a HELD job is queued by itself, if it has a time.",
    )
    priority: int = Field(
        DEFAULT_PRIORITY,
        title="Priority",
        description="0 to 9: higher runs first, FIFO within one priority.",
    )
    concurrency_key: str | None = Field(
        None,
        title="Concurrency key",
        description="The owner's jobs with this key share a running limit.",
    )
    after: list[str] = Field(
        default_factory=list,
        title="After",
        description="Jobs this one waits for (HELD until they have ended).",
    )
    after_policy: Literal["all_completed", "any_end"] = Field(
        "all_completed",
        title="After policy",
        description=(
            "``all_completed``: they must complete (else this job ends"
            " ERROR); ``any_end``: they must only end."
        ),
    )
    parent_id: str | None = Field(
        None, title="Parent", description="The job this one is a child of."
    )
    notify: NotifyModel | None = Field(
        None,
        title="Webhook",
        description="Where its events are told (``/deliveries``: how).",
    )
    sync: bool = Field(
        False,
        title="Synchronous",
        description=(
            "Created by a synchronous request (DALI ``/sync`` or"
            " ``?sync=true``), whose client waited for its end."
        ),
    )
    history: list[PhaseChangeModel] = Field(
        default_factory=list,
        title="History",
        description=(
            "Every phase the job entered, with when, oldest first (the"
            " first is its phase at creation)."
        ),
    )
    description: str | None = Field(
        None,
        title="Description",
        description="What its creator said it is (up to 1,000 characters).",
    )
    info: list[MessageModel] = Field(
        default_factory=list,
        title="Info",
        description="What the task logged for its readers, oldest first.",
    )
    warnings: list[MessageModel] = Field(
        default_factory=list,
        title="Warnings",
        description="What the task warned of, oldest first.",
    )
    retain_after_end: int | None = Field(
        None,
        title="Retain after end",
        description=(
            "Seconds it is kept after it ends (its destruction time then"
            " moves forward to that; never later)."
        ),
    )
    children: ChildrenModel | None = Field(
        None,
        title="Children",
        description="Its children by phase, if it is a parent.",
    )
    no_abort_reason: str | None = Field(
        None,
        title="Not abortable",
        description=(
            "Why its running task may not be aborted now (abort answers"
            " 409); absent when it may."
        ),
    )
    attempt_runs: list[AttemptRunModel] | None = Field(
        None,
        title="Attempt runs",
        description=(
            "Admins only: the queue entry and worker of each attempt."
        ),
    )
    href: str = Field(..., title="URL", description="URL of this job.")


class JobListModel(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[JobModel] = Field(..., title="Jobs")
    next_cursor: str | None = Field(
        None,
        title="Next cursor",
        description="Pass as ``cursor`` for the next page; absent at the end.",
    )
    total: int | None = Field(
        None,
        title="Total",
        description=(
            "How many jobs match the filters (every page, not this one),"
            " where the indexes know it without reading jobs: with no"
            " filter, or filters by task, phase and ``after`` alone, or"
            " ``parent_id`` with phases; otherwise null."
        ),
    )


class CountModel(BaseModel):
    """How many jobs match (``GET /api/v1/jobs/count``)."""

    count: int | None = Field(
        ...,
        title="Count",
        description=(
            "Every matching job, as a list's ``total`` says; null where"
            " that would take reading jobs."
        ),
    )


#: The largest number a request may give for a count of seconds (an
#: execution duration): larger values are refused (both dialects and the
#: dashboard), smaller ones clamped to the server's maximum.
MAX_REQUEST_SECONDS = 10**9


class TaskModel(BaseModel):
    """A task jobs can run."""

    name: str = Field(..., title="Name")
    description: str = Field(..., title="Description")
    parameters_schema: dict[str, Any] = Field(
        ..., title="Parameters", description="JSON Schema of the parameters."
    )
    runs_in_child_process: bool = Field(
        ...,
        title="Runs in a child process",
        description=(
            "Plain ``def`` tasks run in a child process of the worker"
            " (killed on abort); ``async def`` tasks on its event loop."
        ),
    )
