"""The bodies of the client's requests that create and change jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

from ..clock import format_time

__all__ = ["JobOptions", "create_body", "create_request", "patch_body"]


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


class JobOptions(TypedDict, total=False):
    """What a creation may give besides the task and its parameters (see
    ``POST /api/v1/jobs``): each left out (or `None`) takes the server's
    default."""

    run_id: str | None
    execution_duration: int | None
    destruction_time: datetime | None
    #: Start at this time (the job waits HELD until then).
    run_after: datetime | None
    #: 0 to 9, higher runs first.
    priority: int | None
    #: Your jobs with one key share a running limit.
    concurrency_key: str | None
    #: Ids of your jobs that must end first (the job waits HELD).
    after: Sequence[str] | None
    #: ``all_completed`` (the default) or ``any_end``.
    after_policy: Literal["all_completed", "any_end"] | None
    #: Your job this one is a child of.
    parent_id: str | None
    #: A webhook: ``{"url": …, "events": ["final"]}``.
    notify: Mapping[str, Any] | None
    #: Your words for it (up to 1,000 characters).
    description: str | None
    #: Destroy it this many seconds after it ends.
    retain_after_end: int | None


def create_body(
    task: str,
    parameters: Mapping[str, Any] | None,
    *,
    start: bool,
    options: JobOptions,
) -> dict[str, Any]:
    """The JSON body of a job creation."""
    body: dict[str, Any] = {
        "task": task,
        "start": start,
        "parameters": dict(parameters or {}),
    }
    for name, value in options.items():
        if value is None:
            continue
        match value:
            case datetime():
                body[name] = _time(value)
            case str() | int():
                body[name] = value
            case Sequence():
                body[name] = list(value)
            case Mapping():
                body[name] = dict(value)
    return body


def create_request(
    body: dict[str, Any],
    *,
    files: Mapping[str, Path | bytes] | None,
    uploads: Mapping[str, str] | None,
    sync: bool,
    idempotency_key: str | None,
) -> tuple[str, dict[str, Any]]:
    """The path and request arguments of a job creation: JSON, or with
    ``files`` (by name: a path, or the bytes) a multipart body whose
    ``job`` part is that JSON; ``uploads`` are files by reference (name:
    URL); ``sync`` waits for the job's end (no read timeout: the server
    ends the wait at its sync timeout). Every creation carries an
    ``Idempotency-Key`` (a new one unless given), so the client's retries
    of it can never make a second job."""
    if uploads:
        body = {**body, "uploads": dict(uploads)}
    key = idempotency_key or uuid.uuid4().hex
    arguments: dict[str, Any] = {"headers": {"Idempotency-Key": key}}
    if sync:
        arguments.update(params={"sync": "true"}, timeout=None)
    if not files:
        return "/api/v1/jobs", {**arguments, "json": body}
    parts = {
        name: (
            (data.name, data.read_bytes())
            if isinstance(data, Path)
            else (name, bytes(data))
        )
        for name, data in files.items()
    }
    arguments.update(data={"job": json.dumps(body)}, files=parts)
    return "/api/v1/jobs/multipart", arguments


def patch_body(
    *,
    parameters: Mapping[str, Any] | None,
    run_id: str | None,
    execution_duration: int | None,
    destruction_time: datetime | None,
    priority: int | None = None,
    run_after: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of a job change (only what is given)."""
    fields = {
        "parameters": dict(parameters) if parameters is not None else None,
        "run_id": run_id,
        "execution_duration": execution_duration,
        "destruction_time": _time(destruction_time),
        "priority": priority,
        "run_after": _time(run_after),
    }
    return {name: value for name, value in fields.items() if value is not None}
