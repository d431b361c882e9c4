"""The result download answer, shared by both dialects."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any, assert_never

from fastapi import APIRouter
from fastapi.responses import (
    FileResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from ..models.errors import NotFoundError
from ..models.job import Job, JobResult
from ..services.jobs import JobService
from ..storage.results import Download, LocalFile, RemoteFile, SignedURL

__all__ = [
    "DOWNLOAD_RESPONSES",
    "add_head_route",
    "file_response",
    "result_response",
    "upload_response",
]

#: What a download may answer besides its bytes (OpenAPI).
DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    307: {
        "description": (
            "With an object store and PHASER_RESULTS_REDIRECT: a"
            " short-lived presigned URL of the bytes (Location)."
        )
    }
}


def result_response(
    job_id: str, result: JobResult, download: Download
) -> Response:
    """The result's bytes with its MIME type (`file_response`)."""
    return file_response(job_id, result.id, result.mime_type, download)


async def upload_response(
    service: JobService, job: Job, name: str
) -> Response:
    """The bytes of a file the job was given with its request.

    Raises
    ------
    NotFoundError
        No such upload, or one given by reference (its URL is elsewhere),
        or its file is gone.
    """
    upload = job.upload(name)
    found = await service.stored(upload.key) if upload and upload.key else None
    if upload is None or found is None:
        raise NotFoundError(f"Job {job.id} has no uploaded file {name}")
    return file_response(job.id, upload.name, upload.mime_type, found)


def file_response(
    job_id: str, file_id: str, mime_type: str, download: Download
) -> Response:
    """A job's file with its MIME type; never sniffed by browsers.

    The file name offered is built only from the (pattern-checked) job and
    file ids and an extension for the MIME type, so it is always safe. A
    local file is answered by `FileResponse` (byte ranges too), an
    object streamed in chunks, or redirected to a presigned URL (the
    caller has been checked already).
    """
    mime = mime_type.split(";")[0].strip()
    extension = _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ""
    name = f"{job_id}-{file_id}{extension}"
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    match download:
        case LocalFile(path):
            return FileResponse(path, media_type=mime_type, headers=headers)
        case RemoteFile(size, chunks):
            headers["Content-Length"] = str(size)
            return StreamingResponse(
                chunks, media_type=mime_type, headers=headers
            )
        case SignedURL(url):
            return RedirectResponse(url, status_code=307)
        case _:
            assert_never(download)


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
