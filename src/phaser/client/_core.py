"""What the sync and async clients share: errors, requests, retries and
the event-stream parser (no I/O here)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

import httpx

from ..clock import format_time
from ..models.api import JobModel
from ..models.phase import FAILED, FINAL_PHASES, STOPPED, ExecutionPhase

__all__ = [
    "APIError",
    "ClientBase",
    "ClientError",
    "ClientOptions",
    "JobAborted",
    "JobEvent",
    "JobFailed",
    "ListFilters",
    "RetryPolicy",
    "WaitTimeout",
    "auth_headers",
    "check",
    "children_done",
    "is_final",
]

#: Where the client finds a server and a token when not told.
DEFAULT_URL = "http://127.0.0.1:8000"


class ClientError(Exception):
    """Base of what the client raises: the server could not be reached,
    refused a request, or a job did not end well."""


class APIError(ClientError):
    """The server refused a request (an RFC 9457 problem).

    Attributes
    ----------
    status
        HTTP status.
    detail
        The server's message.
    errors
        Each invalid field: ``{"field": …, "message": …}``.
    type
        The problem type (``urn:phaser:problem:…``).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        type: str = "",
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.type = type


class JobFailed(ClientError):  # noqa: N818 (the name users expect)
    """The job ended in ERROR; ``job`` has the server's errors."""

    def __init__(self, job: JobModel) -> None:
        message = job.errors[0].message if job.errors else "no message"
        super().__init__(f"job {job.id} failed: {message}")
        self.job = job


class JobAborted(ClientError):  # noqa: N818
    """The job ended in ABORTED (by a client, a limit or destruction)."""

    def __init__(self, job: JobModel) -> None:
        why = f": {job.errors[0].message}" if job.errors else ""
        super().__init__(f"job {job.id} was aborted{why}")
        self.job = job


class WaitTimeout(ClientError):  # noqa: N818
    """The job had not ended when the wait ran out; ``job`` as last seen."""

    def __init__(self, job: JobModel, timeout: float) -> None:
        super().__init__(
            f"job {job.id} still {job.phase.value} after {timeout:g} s"
        )
        self.job = job


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One event of a job's stream: ``job`` (the first), ``phase``,
    ``progress`` or ``deleted`` (then `job` is `None`)."""

    kind: Literal["job", "phase", "progress", "deleted"]
    job_id: str
    job: JobModel | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry what the server could not do for
    now (503, as while its Redis restarts) or a connection that failed.

    Attributes
    ----------
    attempts
        Tries in all (1: no retry).
    backoff
        First delay (s), doubled each time, capped by ``max_delay``; a
        ``Retry-After`` the server sends wins (capped too).
    max_delay
        Longest single delay (s).
    """

    attempts: int = 6
    backoff: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        if response is not None:
            after = response.headers.get("retry-after", "")
            if after.isdigit():
                return min(float(after), self.max_delay)
        return min(self.backoff * 2 ** (attempt - 1), self.max_delay)


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of `ClientBase` (and both clients)."""

    token: str | None
    user: str | None
    user_header: str
    verify: bool | str
    timeout: float
    retry: RetryPolicy | None


class ClientBase:
    """What `Client` and `AsyncClient` are made of: where the server is,
    how to authenticate, time out and retry.

    Parameters
    ----------
    url
        The server; default ``PHASER_URL``, else ``http://127.0.0.1:8000``.
    token
        Bearer token (auth mode ``token``); default ``PHASER_TOKEN``.
    user
        User name to send in ``user_header`` (auth mode ``header``, behind
        a proxy that sets it; for tests and trusted networks).
    user_header
        The proxy's user header.
    verify
        TLS verification: `True`, `False`, or a CA bundle path.
    timeout
        Seconds for connecting and for each read (long polls and event
        streams wait longer, as they need).
    retry
        How 503 answers and failed connections are retried.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        user: str | None = None,
        user_header: str = "X-Auth-Request-User",
        verify: bool | str = True,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = base_url(url)
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._options: dict[str, Any] = {
            "base_url": self.url,
            "headers": auth_headers(token, user, user_header),
            "verify": verify,
            "timeout": timeout,
            # A server with an object store may answer a download with a
            # presigned URL (httpx drops Authorization on the way there).
            "follow_redirects": True,
        }


def should_retry(response: httpx.Response) -> bool:
    """Whether an answer asks to be tried again later."""
    return response.status_code == 503


def auth_headers(
    token: str | None, user: str | None, user_header: str
) -> dict[str, str]:
    """Credential headers: a token (argument, else ``PHASER_TOKEN``) as
    Bearer, and/or a user name in a proxy's user header."""
    headers = {"Accept": "application/json"}
    token = token if token is not None else os.environ.get("PHASER_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if user:
        headers[user_header] = user
    return headers


def base_url(url: str | None) -> str:
    """The server's URL: the argument, else ``PHASER_URL``, else local."""
    return (url or os.environ.get("PHASER_URL") or DEFAULT_URL).rstrip("/")


def check(response: httpx.Response) -> httpx.Response:
    """The response if it succeeded.

    Raises
    ------
    APIError
        It did not: the problem's status, detail and field errors.
    """
    if response.is_success:
        return response
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict) and "detail" in problem:
        raise APIError(
            response.status_code,
            str(problem["detail"]),
            errors=problem.get("errors"),
            type=str(problem.get("type", "")),
        )
    text = response.text.strip() or response.reason_phrase
    raise APIError(response.status_code, text)


class ListFilters(TypedDict, total=False):
    """Which jobs a list or a count takes (see ``GET /api/v1/jobs``)."""

    task: str | None
    #: One phase or several (any of them).
    phase: ExecutionPhase | str | Iterable[ExecutionPhase | str] | None
    run_id: str | None
    #: Created after this.
    after: datetime | None
    #: Admins: whose jobs.
    owner: str | None
    #: Only this job's children.
    parent_id: str | None
    #: Only jobs that are no other job's child.
    top_level: bool


def list_params(filters: ListFilters) -> dict[str, Any]:
    """Query parameters of a job list or count."""
    params: dict[str, Any] = {}
    for name, value in filters.items():
        if isinstance(value, datetime):
            params[name] = format_time(value)
        elif isinstance(value, bool):
            if value:
                params[name] = "true"
        elif isinstance(value, str):
            params[name] = str(getattr(value, "value", value))
        elif isinstance(value, Iterable):
            params[name] = [str(getattr(p, "value", p)) for p in value]
    return params


def children_done(job: JobModel) -> bool:
    """Whether none of a parent's children is pending or running."""
    counts = job.children
    return counts is None or counts.pending + counts.running == 0


def is_final(job: JobModel) -> bool:
    """Whether the job has ended."""
    return job.phase in FINAL_PHASES


def outcome(job: JobModel) -> None:
    """Raise for a job that ended badly.

    Raises
    ------
    JobFailed
        It ended in ERROR.
    JobAborted
        It ended in ABORTED.
    """
    if job.phase == FAILED:
        raise JobFailed(job)
    if job.phase == STOPPED:
        raise JobAborted(job)


@dataclass
class EventParser:
    """Turns the lines of a ``text/event-stream`` into `JobEvent` values
    (one line at a time, so sync and async readers share it)."""

    job_id: str
    _kind: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> JobEvent | None:
        """Take one line; the event it completes, if any."""
        if line == "":
            event = self._dispatch()
            self._kind, self._data = "message", []
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._kind = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> JobEvent | None:
        if not self._data:
            return None
        data = json.loads("\n".join(self._data))
        match self._kind:
            case "deleted":
                return JobEvent("deleted", self.job_id, None)
            case "job" | "phase" | "progress":
                return JobEvent(
                    self._kind, self.job_id, JobModel.model_validate(data)
                )
            case _:
                return None
