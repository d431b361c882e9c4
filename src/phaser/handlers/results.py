"""The result download answer, shared by both dialects."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from ..models.job import JobResult

__all__ = ["result_response"]


def result_response(result: JobResult, path: Path) -> FileResponse:
    """The result's bytes with its MIME type; never sniffed by browsers.

    `FileResponse` also answers HEAD and byte ranges.
    """
    return FileResponse(
        path,
        media_type=result.mime_type,
        headers={"X-Content-Type-Options": "nosniff"},
    )
