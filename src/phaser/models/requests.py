"""Wire models of the JSON API's requests: creating and changing jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..services.ids import JOB_ID_PATTERN
from .api import MAX_REQUEST_SECONDS
from .job import MAX_PRIORITY, MIN_PRIORITY
from .notify import NotifyRequest

__all__ = ["KEY_PATTERN", "JobCreate", "JobPatch"]

#: What an idempotency key may look like (the server also accepts it
#: quoted, as an RFC 8941 string): visible ASCII, spaces inside only.
KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"


#: A priority a client may ask for.
PriorityValue = Annotated[int | None, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)]


class JobCreate(BaseModel):
    """A new job."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(..., title="Task", description="Name of the task.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        title="Parameters",
        description="Task parameters (see ``GET /api/v1/tasks``).",
    )
    run_id: str | None = Field(
        None, title="Run id", description="Your label.", max_length=256
    )
    start: bool = Field(
        False,
        title="Start",
        description="Queue the job at once instead of leaving it PENDING.",
    )
    execution_duration: int | None = Field(
        None,
        ge=0,
        le=MAX_REQUEST_SECONDS,
        title="Execution duration",
        description="Seconds; 0 for the maximum; clamped to the maximum.",
    )
    destruction_time: AwareDatetime | None = Field(
        None,
        title="Destruction time",
        description="RFC 3339 with a zone; clamped to the maximum lifetime.",
    )
    run_after: AwareDatetime | None = Field(
        None,
        title="Run after",
        description=(
            "Start the job at this time (RFC 3339 with a zone): it waits in"
            " phase HELD until then and is queued by the server within a"
            " second of it (``start`` is implied). A time that has passed"
            " starts it at once; one at or after the destruction time is"
            " refused."
        ),
    )
    priority: PriorityValue = Field(
        None,
        title="Priority",
        description=(
            "0 to 9, higher runs first (FIFO within one priority); the"
            " task's default (5 unless it says) if not given."
        ),
    )
    after: list[Annotated[str, Field(pattern=JOB_ID_PATTERN)]] = Field(
        default_factory=list,
        max_length=100,
        title="After",
        description=(
            "Ids of your jobs that must end first: the job waits in phase"
            " HELD until then, and is queued once they have all"
            " COMPLETED; if one ends ERROR or ABORTED or is deleted, the"
            " job ends ERROR naming it (``start`` is implied)."
        ),
    )
    after_policy: Literal["all_completed", "any_end"] = Field(
        "all_completed",
        title="After policy",
        description=(
            "``any_end``: run once every job of ``after`` has ended,"
            " however it ended."
        ),
    )
    parent_id: str | None = Field(
        None,
        pattern=JOB_ID_PATTERN,
        title="Parent",
        description=(
            "Your job this one is a child of: list them with"
            " ``GET /api/v1/jobs?parent_id=``; aborting the parent aborts"
            " its active children."
        ),
    )
    notify: NotifyRequest | None = Field(
        None,
        title="Webhook",
        description=(
            "Tell this URL of the job's events, signed per Standard"
            " Webhooks with a secret the creation answers once"
            " (``notify.secret``, header ``Webhook-Secret``)."
        ),
    )
    concurrency_key: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        title="Concurrency key",
        description=(
            "Your jobs with one key share a limit: at most the task's"
            " ``key_limit`` (default ``PHASER_CONCURRENCY_KEY_LIMIT``, 1)"
            " of them EXECUTING at once, across every worker; the rest"
            " wait QUEUED, in order."
        ),
    )
    idempotency_key: str | None = Field(
        None,
        title="Idempotency key",
        description=(
            "Makes the creation safe to repeat (as the ``Idempotency-Key``"
            " header, which wins if both are given): the same key within"
            " ``PHASER_IDEMPOTENCY_WINDOW`` answers 200 with the job the"
            " first request made; with a different request, 409."
        ),
        pattern=KEY_PATTERN,
    )
    description: str | None = Field(
        None,
        title="Description",
        description=(
            "Your words for the job, to find it by other than its id (up"
            " to 1,000 characters)."
        ),
    )
    retain_after_end: int | None = Field(
        None,
        ge=0,
        le=MAX_REQUEST_SECONDS,
        title="Retain after end",
        description=(
            "Destroy the job (archive it, in archive mode) this many"
            " seconds after it ends, if that is before its destruction"
            " time; the task's default if not given."
        ),
    )
    uploads: dict[str, str] = Field(
        default_factory=dict,
        title="Uploads by reference",
        description=(
            "Files the task takes, as ``name: URL``, fetched by the worker"
            " (hosts in ``PHASER_UPLOAD_HOSTS`` only). Files themselves go"
            " with ``POST /api/v1/jobs/multipart``."
        ),
    )


class JobPatch(BaseModel):
    """Changes to a job."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] | None = Field(
        None,
        title="Parameters",
        description="Parameters to change (merged); only while PENDING.",
    )
    execution_duration: int | None = Field(
        None,
        ge=0,
        le=MAX_REQUEST_SECONDS,
        title="Execution duration",
        description="Seconds; only while PENDING; clamped to the maximum.",
    )
    destruction_time: AwareDatetime | None = Field(
        None,
        title="Destruction time",
        description="New destruction time; clamped to the maximum lifetime.",
    )
    run_id: str | None = Field(
        None, title="Run id", description="New label.", max_length=256
    )
    priority: PriorityValue = Field(
        None,
        title="Priority",
        description=(
            "New priority, while the job waits (PENDING, QUEUED or HELD);"
            " a queued job moves to its place behind the jobs of that"
            " priority queued before it."
        ),
    )
    run_after: AwareDatetime | None = Field(
        None,
        title="Run after",
        description=(
            "New start time, while the job waits: a PENDING or QUEUED job"
            " is held (HELD) until then, a HELD one moves to it; a time"
            " that has passed starts the job now."
        ),
    )
