"""The result download answer, shared by both dialects."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi.responses import FileResponse

from ..models.job import JobResult

__all__ = ["result_response"]


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
