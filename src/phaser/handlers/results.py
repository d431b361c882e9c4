"""The result download answer, shared by both dialects."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..models.errors import NotFoundError
from ..models.job import Job, JobResult
from ..services.jobs import JobService

__all__ = [
    "add_head_route",
    "file_response",
    "result_response",
    "upload_response",
]


def result_response(
    job_id: str, result: JobResult, path: Path
) -> FileResponse:
    """The result's bytes with its MIME type (`file_response`)."""
    return file_response(job_id, result.id, result.mime_type, path)


def upload_response(service: JobService, job: Job, name: str) -> FileResponse:
    """The bytes of a file the job was given with its request.

    Raises
    ------
    NotFoundError
        No such upload, or one given by reference (its URL is elsewhere),
        or its file is gone.
    """
    upload = job.upload(name)
    path = service.stored_path(upload.key) if upload and upload.key else None
    if upload is None or path is None:
        raise NotFoundError(f"Job {job.id} has no uploaded file {name}")
    return file_response(job.id, upload.name, upload.mime_type, path)


def file_response(
    job_id: str, file_id: str, mime_type: str, path: Path
) -> FileResponse:
    """A job's file with its MIME type; never sniffed by browsers.

    The file name offered is built only from the (pattern-checked) job and
    file ids and an extension for the MIME type, so it is always safe.
    `FileResponse` also answers byte ranges.
    """
    mime = mime_type.split(";")[0].strip()
    extension = _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ""
    name = f"{job_id}-{file_id}{extension}"
    return FileResponse(
        path,
        media_type=mime_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


_EXTENSIONS = {
    "application/x-votable+xml": ".vot",
    "text/plain": ".txt",
    "application/json": ".json",
}


def add_head_route(
    router: APIRouter, path: str, endpoint: Callable[..., Any]
) -> None:
    """Answer HEAD on a download route with its GET handler (size and type
    without the bytes), kept out of the OpenAPI document so it does not
    repeat the GET operation."""
    router.add_api_route(
        path,
        endpoint,
        methods=["HEAD"],
        include_in_schema=False,
        response_class=FileResponse,
    )
