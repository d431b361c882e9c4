"""Result stores: where result bytes live, keyed per job.

`ResultStore` is what the rest of phaser knows of a store; only the
stores know where the bytes are. `LocalResultStore` keeps
``<root>/<job id>/<result id>``: ids are checked against a strict pattern
and resolved paths must stay under the root, so no key can reach outside
the job's own directory; `phaser.storage.objects.ObjectResultStore` keeps
the same keys in an S3-compatible bucket. A task's child process reopens
the worker's store from its `ResultStore.describe` (`open_result_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "RESULT_ID_PATTERN",
    "Download",
    "LocalFile",
    "LocalResultStore",
    "RemoteFile",
    "ResultStore",
    "SignedURL",
    "StoredResult",
    "open_result_store",
]

#: What a result id (and a job id) may look like.
RESULT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class StoredResult:
    """Where a result was stored and how big it is."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A stored file's bytes in a local file."""

    path: Path


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A stored file's bytes, to be streamed from elsewhere."""

    size: int
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class SignedURL:
    """Where a client may fetch a stored file's bytes itself, for a
    while."""

    url: str


#: How a download of a stored file is answered.
Download = LocalFile | RemoteFile | SignedURL


class ResultStore(Protocol):
    """Where result bytes are kept (see `LocalResultStore`)."""

    def put_bytes(
        self, job_id: str, result_id: str, data: bytes
    ) -> StoredResult:
        """Store bytes as a result, replacing one of the same id."""

    def put_file(
        self, job_id: str, result_id: str, source: Path, *, move: bool
    ) -> StoredResult:
        """Store a file as a result (moved when ``move``, else copied)."""

    async def download(self, key: str) -> Download | None:
        """How to answer a download of a stored file, `None` if it is
        gone."""

    async def peek(self, key: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of a stored file, `None` if it is
        gone."""

    def local_path(self, key: str, directory: Path) -> Path | None:
        """A local file with a stored file's bytes (fetched into
        ``directory`` if they are elsewhere), `None` if it is gone."""

    def job_ids(self) -> Iterator[str]:
        """The ids of the jobs that have stored files."""

    def delete_job(self, job_id: str) -> None:
        """Delete every result of a job (nothing if there are none)."""

    def delete_jobs(self, job_ids: Iterable[str]) -> None:
        """`delete_job` for many jobs."""

    def has_files(self, job_id: str) -> bool:
        """Whether a job has any stored results."""

    def prune(self, job_id: str, keep: Iterable[str]) -> int:
        """Delete a job's results that no key in ``keep`` names; how many
        were deleted."""

    def scratch_dir(self, job_id: str) -> Path:
        """A local directory a task may use while it runs."""

    def describe(self) -> dict[str, str]:
        """How another process opens the same store
        (`open_result_store`)."""


def open_result_store(description: dict[str, str]) -> ResultStore:
    """The store a `ResultStore.describe` names.

    Raises
    ------
    ValueError
        An unknown kind of store.
    """
    match description.get("kind"):
        case "local":
            return LocalResultStore(Path(description["root"]))
        case "s3":
            from .objects import ObjectResultStore

            return ObjectResultStore(
                description["url"], Path(description["scratch"])
            )
    raise ValueError(f"unknown result store {description!r}")


class LocalResultStore:
    """Results as files under a local directory.

    Parameters
    ----------
    root
        Directory holding one sub-directory per job.
    """

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def describe(self) -> dict[str, str]:
        """How another process opens this store."""
        return {"kind": "local", "root": str(self._root)}

    def _job_dir(self, job_id: str) -> Path:
        if not RESULT_ID_PATTERN.match(job_id):
            raise ValueError(f"invalid job id {job_id!r}")
        return self._root / job_id

    def _target(self, job_id: str, result_id: str) -> Path:
        if not RESULT_ID_PATTERN.match(result_id) or result_id in {".", ".."}:
            raise ValueError(f"invalid result id {result_id!r}")
        return self._job_dir(job_id) / result_id

    def put_bytes(
        self, job_id: str, result_id: str, data: bytes
    ) -> StoredResult:
        """Store bytes as a result, replacing one of the same id."""
        target = self._target(job_id, result_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{result_id}.partial")
        partial.write_bytes(data)
        partial.replace(target)
        return StoredResult(key=f"{job_id}/{result_id}", size=len(data))

    def put_file(
        self, job_id: str, result_id: str, source: Path, *, move: bool
    ) -> StoredResult:
        """Store a file as a result (moved when ``move``, else copied)."""
        target = self._target(job_id, result_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{result_id}.partial")
        if move:
            shutil.move(source, partial)
        else:
            shutil.copyfile(source, partial, follow_symlinks=False)
        partial.replace(target)
        return StoredResult(
            key=f"{job_id}/{result_id}", size=target.stat().st_size
        )

    async def download(self, key: str) -> Download | None:
        """The local file (`path`)."""
        path = self.path(key)
        return LocalFile(path) if path is not None else None

    async def peek(self, key: str, limit: int) -> bytes | None:
        """The first bytes of the local file (`path`)."""
        path = self.path(key)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(_read_head, path, limit)
        except OSError:
            return None

    def local_path(self, key: str, directory: Path) -> Path | None:
        """The stored file itself (`path`)."""
        return self.path(key)

    def job_ids(self) -> Iterator[str]:
        """The job directories under the root."""
        try:
            entries = list(os.scandir(self._root))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and RESULT_ID_PATTERN.match(
                entry.name
            ):
                yield entry.name

    def path(self, key: str) -> Path | None:
        """Local path of a stored result, `None` if it is gone.

        The key is re-validated and symbolic links are not followed, so a
        forged key cannot escape the store.
        """
        job_id, _, result_id = key.partition("/")
        try:
            target = self._target(job_id, result_id)
        except ValueError:
            return None
        if target.is_symlink() or not target.is_file():
            return None
        return target

    def delete_job(self, job_id: str) -> None:
        """Delete every result of a job (nothing if there are none)."""
        path = self._job_dir(job_id)
        # One stat for the common case of a job without result files,
        # instead of rmtree's failed walk (benchmark B7).
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)

    def has_files(self, job_id: str) -> bool:
        """Whether a job has a directory of result files."""
        return os.path.isdir(self._job_dir(job_id))

    def prune(self, job_id: str, keep: Iterable[str]) -> int:
        """Delete a job's result files that no key in ``keep`` names: the
        files of attempts that lost their claim (a worker presumed dead
        that wrote on). Returns how many were deleted."""
        path = self._job_dir(job_id)
        if not os.path.isdir(path):
            return 0
        kept = {key.partition("/")[2] for key in keep}
        pruned = 0
        for entry in os.scandir(path):
            if entry.name not in kept:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                pruned += 1
        return pruned

    def delete_jobs(self, job_ids: Iterable[str]) -> None:
        """`delete_job` for many jobs."""
        for job_id in job_ids:
            self.delete_job(job_id)

    def scratch_dir(self, job_id: str) -> Path:
        """Where a task's private temporary directory goes; the task's
        context creates it when the task first asks for it."""
        return self._root / ".scratch" / job_id


def _read_head(path: Path, limit: int) -> bytes:
    with path.open("rb") as file:
        return file.read(limit)
