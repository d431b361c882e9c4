"""Errors the service layer raises, each with its HTTP status.

The messages are written for the client: both dialects show them as they
are (JSON as RFC 9457 problem details, UWS as text/plain).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "ForbiddenError",
    "IdempotencyConflictError",
    "InvalidParametersError",
    "InvalidRequestError",
    "JobNotFoundError",
    "LifetimeConflictError",
    "NotFoundError",
    "PhaseConflictError",
    "PhaserError",
    "QuotaExceededError",
    "RelatedJobNotFoundError",
    "ResultNotFoundError",
    "ScheduleConflictError",
    "SyncTimeoutError",
    "TooLargeError",
    "UnknownTaskError",
]


class PhaserError(Exception):
    """Base of errors a client can cause or see.

    Attributes
    ----------
    status_code
        HTTP status for the JSON API.
    uws_status_code
        HTTP status for the UWS dialect (which answers 403 where the JSON
        API answers 409, and 400 for invalid parameters).
    slug
        Short machine-readable name, used in the problem ``type``.
    """

    status_code = 400
    uws_status_code = 400
    slug = "bad-request"
    title = "Bad request"

    #: Extra response headers (e.g. ``WWW-Authenticate``).
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(
        self, message: str, *, fields: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []


class JobNotFoundError(PhaserError):
    """No such job (or not one the caller may see)."""

    status_code = 404
    uws_status_code = 404
    slug = "job-not-found"
    title = "Job not found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job {job_id}")
        self.job_id = job_id


class NotFoundError(PhaserError):
    """No such page or file."""

    status_code = 404
    uws_status_code = 404
    slug = "not-found"
    title = "Not found"


class ResultNotFoundError(PhaserError):
    """The job has no result with that id."""

    status_code = 404
    uws_status_code = 404
    slug = "result-not-found"
    title = "Result not found"


class UnknownTaskError(PhaserError):
    """No task of that name is registered."""

    status_code = 422
    uws_status_code = 404  # in UWS the task is the job list in the path
    slug = "unknown-task"
    title = "Unknown task"

    def __init__(self, task: str, known: list[str]) -> None:
        super().__init__(
            f"Unknown task {task!r}; known tasks: {', '.join(known)}",
            fields=[{"field": "task", "message": "unknown task"}],
        )


class InvalidRequestError(PhaserError):
    """A value in the request cannot be accepted (JSON 422, UWS 400)."""

    status_code = 422
    uws_status_code = 400
    slug = "invalid-request"
    title = "Invalid request"


class InvalidParametersError(InvalidRequestError):
    """The parameters do not fit the task's parameter model."""

    slug = "invalid-parameters"
    title = "Invalid parameters"


class PhaseConflictError(PhaserError):
    """The job's phase does not allow the request (UWS answers 403)."""

    status_code = 409
    uws_status_code = 403
    slug = "phase-conflict"
    title = "Not allowed in this phase"


class AuthenticationError(PhaserError):
    """No or wrong credentials."""

    status_code = 401
    uws_status_code = 401
    slug = "not-authenticated"
    title = "Not authenticated"
    headers: ClassVar[dict[str, str] | None] = {
        "WWW-Authenticate": 'Bearer, Basic realm="phaser"'
    }


class ForbiddenError(PhaserError):
    """The caller is known but may not do this."""

    status_code = 403
    uws_status_code = 403
    slug = "forbidden"
    title = "Forbidden"


class QuotaExceededError(PhaserError):
    """The owner has reached a configured limit (UWS answers 403)."""

    status_code = 429
    uws_status_code = 403
    slug = "quota-exceeded"
    title = "Quota exceeded"


class SyncTimeoutError(PhaserError):
    """A synchronous request's job did not end within the sync timeout (it
    was aborted). 504: the frontend waited for a worker that did not
    answer in time; the request itself was fine."""

    status_code = 504
    uws_status_code = 504
    slug = "sync-timeout"
    title = "Sync timeout"


class TooLargeError(PhaserError):
    """An upload (or a request) is larger than a configured limit."""

    status_code = 413
    uws_status_code = 413
    slug = "request-too-large"
    title = "Too large"


class IdempotencyConflictError(PhaserError):
    """An idempotency key is bound to a different request: a conflict
    with what the server holds (409; the issue allows 409 or 422, and a
    409 says "the state is in the way", which it is)."""

    status_code = 409
    uws_status_code = 400
    slug = "idempotency-key-reused"
    title = "Idempotency key reused"


class LifetimeConflictError(PhaserError):
    """A job would be destroyed before it could run (a start time at or
    after its destruction time): the request conflicts with the
    lifetime limits as they stand now, so 409 (UWS 400)."""

    status_code = 409
    uws_status_code = 400
    slug = "lifetime-conflict"
    title = "Lifetime conflict"


class RelatedJobNotFoundError(PhaserError):
    """A job named as a dependency or a parent is not one of the caller's
    stored jobs: 404, as a read of it would answer (UWS 400: a 404 to a
    creation would say the task does not exist)."""

    status_code = 404
    uws_status_code = 400
    slug = "related-job-not-found"
    title = "Related job not found"


class ScheduleConflictError(PhaserError):
    """Two ways of deciding when a job starts were asked for at once
    (dependencies and a start time): 409 (UWS 400)."""

    status_code = 409
    uws_status_code = 400
    slug = "schedule-conflict"
    title = "Schedule conflict"
