"""A job's uploads as local files, before its task runs: uploaded files
are where the frontend stored them; references are fetched now, with the
size, time and host limits (redirects are not followed: a redirect could
lead off the allow-list)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import httpx

from ..config import Settings
from ..models.job import ErrorCode, Job, JobUpload
from ..services.uploads import allowed_host, upload_key_name
from ..storage.results import ResultStore
from .context import Failure

__all__ = ["local_uploads"]


class _UnfetchableError(Exception):
    """An upload the task cannot have (the message says why)."""


async def local_uploads(
    job: Job, store: ResultStore, settings: Settings, directory: Path
) -> dict[str, Path] | Failure:
    """Every upload of the job as a local file, by name (fetched into
    ``directory`` from a store that is not local); or why not (the job
    then fails without running its task)."""
    paths = {}
    for upload in job.uploads:
        try:
            paths[upload.name] = await _local(
                job.id, upload, store, settings, directory
            )
        except _UnfetchableError as exc:
            return Failure(
                f"Upload {upload.name}: {exc}",
                False,
                ErrorCode.UPLOAD_FAILED,
            )
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            # The network, or the far end, may do better next time.
            return Failure(
                f"Upload {upload.name} could not be fetched:"
                f" {type(exc).__name__}: {exc}",
                True,
                ErrorCode.UPLOAD_FAILED,
            )
    return paths


async def _local(
    job_id: str,
    upload: JobUpload,
    store: ResultStore,
    settings: Settings,
    directory: Path,
) -> Path:
    key = upload.key
    if key is None:
        if upload.url is None:
            raise _UnfetchableError("neither stored nor given by reference")
        if not allowed_host(upload.url, settings.upload_hosts):
            raise _UnfetchableError("its host is not in PHASER_UPLOAD_HOSTS")
        async with asyncio.timeout(settings.upload_fetch_timeout):
            key = await _fetch(job_id, upload, store, settings)
    path = await asyncio.to_thread(store.local_path, key, directory)
    if path is None:
        raise _UnfetchableError("its file is gone")
    return path


async def _fetch(
    job_id: str, upload: JobUpload, store: ResultStore, settings: Settings
) -> str:
    """Fetch a reference into the job's files; its key."""
    assert upload.url is not None
    limit = settings.max_upload_bytes
    fd, name = tempfile.mkstemp(prefix="phaser-upload-")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async with (
                httpx.AsyncClient(follow_redirects=False) as client,
                client.stream("GET", upload.url) as response,
            ):
                if response.status_code != 200:
                    raise _UnfetchableError(
                        f"{upload.url} answered HTTP {response.status_code}"
                        " (redirects are not followed)"
                    )
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _UnfetchableError(
                            f"larger than {limit} bytes"
                            " (PHASER_MAX_UPLOAD_BYTES)"
                        )
                    out.write(chunk)
        stored = await asyncio.to_thread(
            store.put_file,
            job_id,
            upload_key_name(upload.name),
            partial,
            move=True,
        )
        return stored.key
    finally:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
