"""The arq worker process (``phaser worker``)."""

from __future__ import annotations

import asyncio
from typing import Any

from arq.worker import Worker, func

from ..config import Settings
from ..factory import Factory
from ..queue import RUN_JOB, create_arq_redis, deserialize, serialize

__all__ = ["create_worker", "run_worker"]


async def _startup(ctx: dict[str, Any]) -> None:
    factory = Factory(ctx["settings"])
    await factory.start()
    ctx["factory"] = factory
    ctx["runner"] = factory.job_runner()


async def _shutdown(ctx: dict[str, Any]) -> None:
    factory: Factory | None = ctx.get("factory")
    if factory is not None:
        await factory.aclose()


async def run_job(ctx: dict[str, Any], job_id: str, attempt: int) -> None:
    """arq entry point: run one attempt of a job."""
    await ctx["runner"].run(job_id, attempt)


def create_worker(settings: Settings) -> Worker:
    """An arq worker with phaser's settings.

    The worker polls the queue every ``worker_poll_delay`` seconds when it
    is idle (arq's default is half a second), keeps no arq results (the job
    record is the result) and never retries on its own: phaser's runner
    decides about retries.
    """
    if settings.redis_url is None:
        raise ValueError("PHASER_REDIS_URL is not set")
    limit = settings.max_execution_duration
    return Worker(
        functions=[func(run_job, name=RUN_JOB, max_tries=1)],
        redis_pool=create_arq_redis(settings.redis_url, settings.queue_name),
        queue_name=settings.queue_name,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        max_jobs=settings.worker_concurrency,
        poll_delay=settings.worker_poll_delay,
        # The runner enforces execution durations; this is only arq's
        # outer bound, past which it would cancel the runner itself.
        job_timeout=(limit + 60) if limit else 10 * 365 * 86400,
        keep_result=0,
        max_tries=1,
        job_serializer=serialize,
        job_deserializer=deserialize,
        handle_signals=True,
        log_results=False,
    )


def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    create_worker(settings).run()
