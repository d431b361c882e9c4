"""Files a job is given: checked at the door, stored with the job.

A client uploads a file with its request (`FileUpload`: the web framework
has spooled it to a temporary file) or names it by reference
(`LinkUpload`: a URL the worker fetches before the task runs). Every
limit is checked before anything is stored: the number of uploads, each
file's size, the names, and for references the host, which must be on
the configured allow-list (empty by default: references are refused, so
the server cannot be made to fetch arbitrary URLs).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from ..config import Settings
from ..models.errors import InvalidParametersError, TooLargeError
from ..models.job import JobUpload
from ..storage.results import ResultStore
from ..tasks.registry import Task
from ..tasks.uploads import UPLOAD_NAME

__all__ = [
    "FileUpload",
    "LinkUpload",
    "NewUpload",
    "UploadChecks",
    "allowed_host",
    "upload_key_name",
]

_NAME = re.compile(UPLOAD_NAME)


@dataclass(frozen=True, slots=True)
class FileUpload:
    """A file uploaded with the request, spooled to ``path``."""

    name: str
    path: Path
    size: int
    mime_type: str
    #: SHA-256 of the bytes (what makes two requests' files the same).
    digest: str = ""


@dataclass(frozen=True, slots=True)
class LinkUpload:
    """A file given by reference: the worker fetches ``url``."""

    name: str
    url: str


NewUpload = FileUpload | LinkUpload


def upload_key_name(name: str) -> str:
    """The name an upload is stored under among the job's files (result
    files start with their attempt number, so the two never meet)."""
    return f"upload.{name}"


def allowed_host(url: str, hosts: Sequence[str]) -> bool:
    """Whether ``url`` is an ``http(s)`` URL of a host on the allow-list
    (``host`` allows any port, ``host:port`` that port only)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not host:
        return False
    if parts.username or parts.password:
        return False
    return host in hosts or (port is not None and f"{host}:{port}" in hosts)


class UploadChecks:
    """The limits on uploads.

    Parameters
    ----------
    settings
        Limits and the allow-list of hosts.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check(
        self, task: Task, uploads: Sequence[NewUpload], *, strict: bool
    ) -> tuple[list[NewUpload], list[str]]:
        """The uploads the job keeps, and the names it ignores (a task that
        takes no upload of that name; with ``strict``, the JSON API, that
        is refused instead).

        Raises
        ------
        InvalidParametersError
            A bad name, a name given twice, an upload the task does not
            take (``strict``), or a reference that is not allowed.
        TooLargeError
            Too many uploads, or a file over the size limit.
        """
        settings = self._settings
        if len(uploads) > settings.max_uploads:
            raise TooLargeError(
                f"Too many uploads: {len(uploads)} (limit"
                f" {settings.max_uploads}, PHASER_MAX_UPLOADS)"
            )
        seen: set[str] = set()
        kept: list[NewUpload] = []
        ignored: list[str] = []
        # Names are case-insensitive, as the task's parameter names are.
        fields = {field.lower(): field for field in task.uploads}
        for given in uploads:
            upload = replace(
                given, name=fields.get(given.name.lower(), given.name)
            )
            name = upload.name
            if not _NAME.match(name):
                raise InvalidParametersError(
                    f"Invalid upload name {name[:80]!r}: a letter, then"
                    " letters, digits or _ (at most 64)"
                )
            if name.lower() in seen:
                raise InvalidParametersError(f"Upload {name} given twice")
            seen.add(name.lower())
            if not task.takes_upload(name):
                if strict:
                    raise InvalidParametersError(
                        f"Task {task.name} takes no upload named {name}"
                    )
                ignored.append(name)
                continue
            match upload:
                case FileUpload(size=size) if size > settings.max_upload_bytes:
                    raise TooLargeError(
                        f"Upload {name} is {size} bytes; the limit is"
                        f" {settings.max_upload_bytes}"
                        " (PHASER_MAX_UPLOAD_BYTES)"
                    )
                case LinkUpload(url=url) if not allowed_host(
                    url, settings.upload_hosts
                ):
                    raise InvalidParametersError(
                        f"Upload {name} by reference is not allowed: only"
                        " http(s) URLs of the hosts in PHASER_UPLOAD_HOSTS"
                        " are fetched"
                        + ("" if settings.upload_hosts else " (none are)")
                    )
            kept.append(upload)
        return kept, ignored

    async def store(
        self, store: ResultStore, job_id: str, uploads: Sequence[NewUpload]
    ) -> list[JobUpload]:
        """Move uploaded files into the job's files; what the job records
        of every upload (references are recorded, not fetched)."""
        if not uploads:  # no thread hop for the common case (B1)
            return []
        return await asyncio.to_thread(self._store, store, job_id, uploads)

    @staticmethod
    def _store(
        store: ResultStore, job_id: str, uploads: Sequence[NewUpload]
    ) -> list[JobUpload]:
        recorded = []
        for upload in uploads:
            match upload:
                case FileUpload(name, path, _, mime_type, _):
                    stored = store.put_file(
                        job_id, upload_key_name(name), path, move=True
                    )
                    recorded.append(
                        JobUpload(name, stored.size, mime_type, key=stored.key)
                    )
                case LinkUpload(name, url):
                    unknown = "application/octet-stream"
                    recorded.append(JobUpload(name, -1, unknown, url=url))
        return recorded
