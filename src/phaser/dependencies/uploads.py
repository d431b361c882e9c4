"""Request bodies with files: a form's fields and its file parts, each
file spooled to a temporary file on disk (never held in memory) and
refused with 413 once it passes ``PHASER_MAX_UPLOAD_BYTES``, before any
job exists. The temporary files a request leaves behind (not moved into
a job's files) are deleted when it ends (`SPOOLED`, by
`phaser.handlers.limits.BodyLimitMiddleware`: a cleanup dependency would
cost every request)."""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote_plus

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from ..config import Settings
from ..models.errors import PhaserError, TooLargeError
from ..services.uploads import FileUpload

__all__ = [
    "SPOOLED",
    "Body",
    "RequestBody",
    "discard_spooled",
    "read_body",
    "urlencoded_fields",
]

#: Where a request's scope lists the temporary files it spooled.
SPOOLED = "phaser.spooled"

#: A MIME type phaser records as given (parameters dropped).
_MIME = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")

_CHUNK = 64 * 1024

#: Types of the astronomers' files the standard library does not know.
_VO_TYPES = {
    ".vot": "application/x-votable+xml",
    ".votable": "application/x-votable+xml",
    ".fits": "application/fits",
}


@dataclass(slots=True)
class Body:
    """A request's fields (query string first, names as sent) and the
    files of its file parts, by part name."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, FileUpload] = field(default_factory=dict)


def _mime_type(upload: UploadFile) -> str:
    given = (upload.content_type or "").split(";")[0].strip().lower()
    if given and given != "application/octet-stream" and _MIME.match(given):
        return given
    filename = upload.filename or ""
    guessed = _VO_TYPES.get(Path(filename).suffix.lower())
    guessed = guessed or mimetypes.guess_type(filename)[0]
    return guessed or "application/octet-stream"


async def _spool(
    request: Request, name: str, upload: UploadFile, limit: int
) -> FileUpload:
    fd, path = tempfile.mkstemp(prefix="phaser-upload-")
    request.scope.setdefault(SPOOLED, []).append(path)
    size = 0
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                break
            out.write(chunk)
            digest.update(chunk)
    if size > limit:
        raise TooLargeError(
            f"Upload {name[:64]} is larger than {limit} bytes"
            " (PHASER_MAX_UPLOAD_BYTES)"
        )
    return FileUpload(
        name, Path(path), size, _mime_type(upload), digest.hexdigest()
    )


async def read_body(request: Request) -> Body:
    """The query string's and a form body's fields, and its files.

    Raises
    ------
    PhaserError
        An unreadable form, or a field that is not UTF-8 text.
    TooLargeError
        A file over the per-file limit.
    """
    body = Body(list(request.query_params.multi_items()))
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            raw = await request.body()
        except RuntimeError:
            # Read as a form already (a route with FastAPI form
            # parameters: the dashboard's): Starlette kept the form, not
            # the body.
            pass
        else:
            body.pairs += urlencoded_fields(raw)
            return body
    elif not content_type.startswith("multipart/form-data"):
        return body
    settings: Settings = request.app.state.settings
    try:
        form = await request.form(max_files=settings.max_uploads + 1)
    except Exception as exc:  # the parser's errors have no common base
        raise PhaserError(f"Unreadable form body: {exc}") from exc
    try:
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                body.pairs.append((name, value))
            elif not value.filename and not value.size:
                continue  # a browser's file input left empty
            elif name in body.files:
                raise PhaserError(f"File part {name[:64]} given twice")
            else:
                body.files[name] = await _spool(
                    request, name, value, settings.max_upload_bytes
                )
    finally:
        await form.close()
    return body


#: Starlette's limits on a urlencoded form, kept: how many fields, and
#: how many bytes one field's name and value may have together.
_MAX_FIELDS = 1000
_MAX_FIELD_BYTES = 1024 * 1024


def urlencoded_fields(raw: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, read as
    Starlette's form parser (python-multipart's) reads them: split at
    ``&`` (empty pieces skipped), name and value at the first ``=`` (a
    piece without one is a name with an empty value), each taken as
    Latin-1 and then percent- and plus-decoded as UTF-8 (undecodable
    bytes replaced), with the same limits. Four to five times cheaper: it
    was a tenth of a UWS job creation (docs/performance.md).

    Raises
    ------
    PhaserError
        More than 1,000 fields, or a field over 1 MiB.
    """
    fields: list[tuple[str, str]] = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        if len(name) + len(value) > _MAX_FIELD_BYTES:
            raise PhaserError(
                "Unreadable form body: Field exceeded maximum size of 1024KB."
            )
        if len(fields) == _MAX_FIELDS:
            raise PhaserError(
                "Unreadable form body: Too many fields. Maximum number of"
                f" fields is {_MAX_FIELDS}."
            )
        fields.append(
            (
                unquote_plus(name.decode("latin-1")),
                unquote_plus(value.decode("latin-1")),
            )
        )
    return fields


def discard_spooled(paths: list[str]) -> None:
    """Delete the temporary files a request left behind."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


#: A request's fields and files (leftover files deleted afterwards).
RequestBody = Annotated[Body, Depends(read_body)]
