"""Results in an S3-compatible object store (``PHASER_RESULTS_URL=
s3://bucket/prefix``): AWS S3, Google Cloud Storage's XML API, Ceph,
MinIO and the like.

Objects are keyed as the local store's files are (``<job id>/<file>``,
ids checked against the same pattern), under the URL's prefix. Uploads
stream from the file in parts (multipart above 8 MiB, two parts in
flight), so no result is ever held in memory whole; downloads stream
through the frontend in chunks, or are answered with a presigned URL
(``PHASER_RESULTS_REDIRECT``) after the owner check.

Through obstore (the Python binding of the Rust ``object_store`` crate
that Apache Arrow and crates.io use): async and sync calls, streaming
and multipart built in, presigning without a second SDK, no Python
dependencies — where aiobotocore would bring botocore's weight and its
pinned versions. Credentials, region and endpoint come from the
standard ``AWS_*`` variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``); an
``http://`` endpoint is allowed as such.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.store import S3Store

from .results import (
    RESULT_ID_PATTERN,
    Download,
    RemoteFile,
    SignedURL,
    StoredResult,
)

if TYPE_CHECKING:
    from obstore import GetResult

__all__ = ["ObjectResultStore"]

#: Size of one part of a multipart upload, and of a download's chunks.
_PART = 8 * 1024 * 1024

#: Parts of one upload in flight at once (memory: this many parts).
_PARTS_IN_FLIGHT = 2

#: Chunks a download is streamed in.
_CHUNK = 256 * 1024


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get(
        "AWS_ENDPOINT", ""
    )


class ObjectResultStore:
    """Results as objects in a bucket (see the module doc).

    Parameters
    ----------
    url
        ``s3://bucket/prefix``.
    scratch
        Local directory for tasks' scratch directories and fetched
        uploads.
    redirect
        Answer downloads with presigned URLs instead of streaming them.
    url_ttl
        How long a presigned URL is valid (s).
    """

    def __init__(
        self,
        url: str,
        scratch: Path,
        *,
        redirect: bool = False,
        url_ttl: int = 300,
    ) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self._url = url
        self._scratch = scratch
        self._redirect = redirect
        self._ttl = timedelta(seconds=url_ttl)
        self._store = S3Store(
            bucket,
            prefix=prefix.strip("/") or None,
            client_options={
                "allow_http": _endpoint().startswith("http://"),
                "connect_timeout": "5s",
                # A whole request, a download streamed to a slow client
                # included (obstore's default is 30 s).
                "timeout": "1h",
            },
        )

    def describe(self) -> dict[str, str]:
        """How another process opens this store (credentials come from
        its environment, never through the queue)."""
        return {"kind": "s3", "url": self._url, "scratch": str(self._scratch)}

    @staticmethod
    def _key(job_id: str, name: str) -> str:
        for part in (job_id, name):
            if not RESULT_ID_PATTERN.match(part) or part in {".", ".."}:
                raise ValueError(f"invalid id {part!r}")
        return f"{job_id}/{name}"

    @classmethod
    def _checked(cls, key: str) -> str | None:
        job_id, _, name = key.partition("/")
        try:
            return cls._key(job_id, name)
        except ValueError:
            return None

    def put_bytes(
        self, job_id: str, result_id: str, data: bytes
    ) -> StoredResult:
        """Store bytes as a result, replacing one of the same id."""
        key = self._key(job_id, result_id)
        obstore.put(self._store, key, data)
        return StoredResult(key=key, size=len(data))

    def put_file(
        self, job_id: str, result_id: str, source: Path, *, move: bool
    ) -> StoredResult:
        """Stream a file into an object (multipart when large); the file
        is deleted afterwards when ``move``."""
        key = self._key(job_id, result_id)
        size = source.stat().st_size
        with source.open("rb") as file:
            obstore.put(
                self._store,
                key,
                file,
                chunk_size=_PART,
                max_concurrency=_PARTS_IN_FLIGHT,
            )
        if move:
            source.unlink(missing_ok=True)
        return StoredResult(key=key, size=size)

    async def download(self, key: str) -> Download | None:
        """A presigned URL (with ``redirect``) or a stream of the object;
        `None` if it is gone."""
        checked = self._checked(key)
        if checked is None:
            return None
        try:
            if self._redirect:
                await obstore.head_async(self._store, checked)
                url = await obstore.sign_async(
                    self._store, "GET", checked, self._ttl
                )
                return SignedURL(url)
            got = await obstore.get_async(self._store, checked)
        except FileNotFoundError:
            return None
        return RemoteFile(size=got.meta["size"], chunks=_chunks(got))

    async def peek(self, key: str, limit: int) -> bytes | None:
        """The object's first bytes (two requests: its size, then the
        range)."""
        checked = self._checked(key)
        if checked is None:
            return None
        try:
            meta = await obstore.head_async(self._store, checked)
            length = min(limit, meta["size"])
            if length == 0:
                return b""
            data = await obstore.get_range_async(
                self._store, checked, start=0, length=length
            )
        except FileNotFoundError:
            return None
        return bytes(data)

    def local_path(self, key: str, directory: Path) -> Path | None:
        """The object downloaded (streamed) into ``directory``."""
        checked = self._checked(key)
        if checked is None:
            return None
        target = directory / checked.partition("/")[2]
        # Private to the task, as its scratch directory is.
        directory.parent.parent.mkdir(parents=True, exist_ok=True)
        for private in (directory.parent, directory):
            private.mkdir(mode=0o700, exist_ok=True)
        try:
            got = obstore.get(self._store, checked)
            with target.open("wb") as out:
                for chunk in got.stream(min_chunk_size=_CHUNK):
                    out.write(chunk)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
            return None
        return target

    def _objects(self, job_id: str) -> list[str]:
        if not RESULT_ID_PATTERN.match(job_id):
            raise ValueError(f"invalid job id {job_id!r}")
        return [
            meta["path"]
            for batch in obstore.list(self._store, prefix=f"{job_id}/")
            for meta in batch
        ]

    def delete_job(self, job_id: str) -> None:
        """Delete every object of a job."""
        paths = self._objects(job_id)
        if paths:
            obstore.delete(self._store, paths)

    def delete_jobs(self, job_ids: Iterable[str]) -> None:
        """`delete_job` for many jobs."""
        for job_id in job_ids:
            self.delete_job(job_id)

    def has_files(self, job_id: str) -> bool:
        """Whether a job has any objects."""
        return bool(self._objects(job_id))

    def prune(self, job_id: str, keep: Iterable[str]) -> int:
        """Delete a job's objects that no key in ``keep`` names; how many
        were deleted."""
        kept = set(keep)
        stray = [path for path in self._objects(job_id) if path not in kept]
        if stray:
            obstore.delete(self._store, stray)
        return len(stray)

    def scratch_dir(self, job_id: str) -> Path:
        """A local directory for the task (not in the bucket)."""
        return self._scratch / job_id

    def job_ids(self) -> Iterator[str]:
        """The jobs with objects (the prefix's "directories")."""
        listed = obstore.list_with_delimiter(self._store)
        for prefix in listed["common_prefixes"]:
            job_id = prefix.rstrip("/").rsplit("/", 1)[-1]
            if RESULT_ID_PATTERN.match(job_id):
                yield job_id


async def _chunks(got: GetResult) -> AsyncIterator[bytes]:
    async for chunk in got.stream(min_chunk_size=_CHUNK):
        yield bytes(chunk)
