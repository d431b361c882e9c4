"""RFC 9457 problem details: the JSON API's error body, and the OpenAPI
responses that name it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "PROBLEM_RESPONSES",
    "FieldProblem",
    "ProblemModel",
    "problem_responses",
]


class FieldProblem(BaseModel):
    """One invalid field of a request."""

    field: str = Field(..., title="Field", description="Where, dotted.")
    message: str = Field(..., title="Message", description="What is wrong.")


class ProblemModel(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field(..., title="Type", description="urn:phaser:problem:…")
    title: str = Field(..., title="Title")
    status: int = Field(..., title="Status", description="HTTP status.")
    detail: str = Field(..., title="Detail", description="For people.")
    errors: list[FieldProblem] | None = Field(
        None, title="Errors", description="Each invalid field, if any."
    )


_STATUS_TEXT = {
    400: "Malformed request (JSON, cursor, headers)",
    401: "Not authenticated",
    403: "Forbidden",
    404: "No such job, result or task",
    409: (
        "Not allowed in the job's phase (on creation: the idempotency key"
        " is bound to another request)"
    ),
    413: "Request body too large",
    422: "Invalid field values",
    429: "Quota exceeded",
    503: "Redis unreachable; try again (Retry-After)",
    504: "Sync: the job did not end within the sync timeout (aborted)",
}


def problem_responses(
    *statuses: int,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of problem+json answers with these statuses."""
    return {
        status: {
            "description": _STATUS_TEXT[status],
            "model": ProblemModel,
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


#: What any route may answer: bad headers, credentials, body size, Redis.
PROBLEM_RESPONSES = problem_responses(400, 401, 413, 503)
