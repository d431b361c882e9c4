"""Result stores: where result bytes live, keyed per job.

`ResultStore` is what the rest of phaser knows of a store; only this
module knows where the bytes are. `LocalResultStore` keeps
``<root>/<job id>/<result id>``: ids are checked against a strict pattern
and resolved paths must stay under the root, so no key can reach outside
the job's own directory. A task's child process reopens the worker's store
from its `ResultStore.describe` (`open_result_store`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "RESULT_ID_PATTERN",
    "LocalResultStore",
    "ResultStore",
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

    def path(self, key: str) -> Path | None:
        """A local file holding a stored result's bytes, `None` if the
        result is gone."""

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
    if description.get("kind") == "local":
        return LocalResultStore(Path(description["root"]))
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
