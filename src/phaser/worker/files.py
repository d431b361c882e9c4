"""Files a worker tidies: a job's scratch directory, and result files an
earlier attempt left behind."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import structlog
from redis.exceptions import RedisError

from ..models.job import Job
from ..models.phase import FINAL_PHASES
from ..storage.job_store import JobStore
from ..storage.results import ResultStore

__all__ = ["prune_strays", "remove_tree"]

_logger = structlog.get_logger("phaser.worker")


async def prune_strays(
    store: JobStore, results: ResultStore, job: Job
) -> None:
    """Delete result files the record does not point to (written by an
    earlier attempt that ran on after losing its claim), once the job has
    ended: no attempt can be writing any more."""
    if not await asyncio.to_thread(results.has_files, job.id):
        return
    try:
        current = await store.get(job.id)
    except RedisError:
        return
    if current is None or current.phase not in FINAL_PHASES:
        return
    keys = [result.key for result in current.results]
    keys += [upload.key for upload in current.uploads if upload.key]
    pruned = await asyncio.to_thread(results.prune, job.id, keys)
    if pruned:
        _logger.warning("Stray result files deleted", count=pruned)


def remove_tree(path: Path) -> None:
    """Delete a directory and everything in it, whatever is left."""
    shutil.rmtree(path, ignore_errors=True)
