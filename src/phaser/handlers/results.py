"""The result download answer, shared by both dialects."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..models.job import JobResult

__all__ = ["add_head_route", "result_response"]


def result_response(
    job_id: str, result: JobResult, path: Path
) -> FileResponse:
    """The result's bytes with its MIME type; never sniffed by browsers.

    The file name offered is built only from the (pattern-checked) job and
    result ids and an extension for the MIME type, so it is always safe.
    `FileResponse` also answers byte ranges.
    """
    mime = result.mime_type.split(";")[0].strip()
    extension = _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ""
    name = f"{job_id}-{result.id}{extension}"
    return FileResponse(
        path,
        media_type=result.mime_type,
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
