"""The arq worker process (``phaser worker``)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import structlog
from arq.worker import Worker, func
from redis.exceptions import RedisError

from ..clock import now
from ..config import Settings
from ..factory import Factory, freeze_startup_heap
from ..logs import configure
from ..metrics import serve_worker_metrics
from ..models.phase import WAITING
from ..queue import (
    RUN_JOB,
    Entry,
    create_arq_redis,
    deserialize,
    serialize,
)
from ..services.webhooks import WebhookSender
from ..storage.codec import JobRef
from ..storage.connect import redis_pool
from ..tracing import configure_tracing, tracing
from .queue_worker import QueueWorker
from .runner import JobRunner

__all__ = ["create_worker", "run_worker"]

_logger = structlog.get_logger("phaser.worker")


async def _maintain(factory: Factory) -> None:
    """Run maintenance passes while holding the maintenance lease."""
    maintenance = factory.maintenance()
    interval = factory.settings.maintenance_interval
    holder = factory.worker_id
    while True:
        try:
            # The lease outlives a pass, so a second worker only takes over
            # once this one has stopped renewing it.
            held = await factory.job_store.activity.hold_lease(
                "maintenance", holder, ttl=3 * interval
            )
            maintenance.store_reached()
            if held:
                report = await maintenance.run()
                if report.more:
                    continue  # a backlog: the next pass at once
        except (RedisError, OSError) as exc:
            maintenance.store_unreachable()
            _logger.warning("Maintenance pass failed", error=str(exc))
        await asyncio.sleep(interval)


async def _start_scheduled(factory: Factory) -> None:
    """Queue HELD jobs whose start time has come, on every worker and
    without the maintenance lease: a start is a compare-and-set, so a job
    is queued once however many workers try, and a worker that dies
    (the lease holder too) delays no start. Sleeps until the next start
    when that is sooner than the maintenance interval."""
    maintenance = factory.maintenance()
    interval = factory.settings.maintenance_interval
    while True:
        pause = interval
        try:
            await maintenance.start_scheduled()
            start = await maintenance.next_start()
            if start is not None:
                pause = max(0.01, min(interval, start))
        except (RedisError, OSError) as exc:
            _logger.warning("Scheduled starts failed", error=str(exc))
        await asyncio.sleep(pause)


async def _announce(factory: Factory) -> None:
    """Say every heartbeat interval that this worker is alive (frontends
    report a gap in availability and metrics)."""
    interval = factory.settings.heartbeat_interval
    while True:
        try:
            seen = now()
            await factory.job_store.activity.worker_seen(
                factory.worker_id,
                seen,
                forget_before=seen - timedelta(hours=1),
            )
        except (RedisError, OSError) as exc:
            _logger.warning("Could not announce worker", error=str(exc))
        await asyncio.sleep(interval)


async def _startup(ctx: dict[str, Any]) -> None:
    factory = Factory(ctx["settings"], worker=True)
    await factory.start()
    ctx["factory"] = factory
    runner = JobRunner(
        lifecycle=factory.lifecycle(),
        store=factory.job_store,
        hub=factory.hub,
        registry=factory.registry,
        settings=factory.settings,
        worker_id=factory.worker_id,
    )

    async def run(entry: Entry) -> None:
        ref = (
            JobRef(entry.job_id, entry.owner, entry.task, WAITING)
            if entry.task is not None
            else None
        )
        await runner.run(
            entry.job_id,
            entry.attempt,
            enqueued_at=entry.enqueued_at,
            trace=entry.trace,
            ref=ref,
        )

    ctx["run"] = run  # what `QueueWorker` runs for each entry it takes
    freeze_startup_heap()
    ctx["maintenance"] = asyncio.create_task(
        _maintain(factory), name="maintenance"
    )
    ctx["announce"] = asyncio.create_task(_announce(factory), name="announce")
    ctx["scheduled"] = asyncio.create_task(
        _start_scheduled(factory), name="scheduled starts"
    )
    # Webhooks go out from every worker, beside its jobs.
    sender = WebhookSender(factory.settings, factory.job_store)
    ctx["webhooks"] = asyncio.create_task(sender.run(), name="webhooks")
    port = factory.settings.metrics_port
    if port:
        ctx["metrics"] = await serve_worker_metrics(port)


async def _shutdown(ctx: dict[str, Any]) -> None:
    metrics: asyncio.Server | None = ctx.get("metrics")
    if metrics is not None:
        metrics.close()
    for name in ("maintenance", "announce", "scheduled", "webhooks"):
        task: asyncio.Task[None] | None = ctx.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    factory: Factory | None = ctx.get("factory")
    if factory is not None:
        await factory.aclose()
    tracing().shutdown()


async def _not_run_by_arq(ctx: dict[str, Any], *args: Any) -> None:
    """Registered as arq's ``run_job`` because arq's worker needs one
    function; `QueueWorker` takes and runs entries itself, so arq never
    calls it."""
    raise RuntimeError("phaser's worker runs its queue entries itself")


def create_worker(settings: Settings) -> Worker:
    """An arq worker with phaser's settings.

    The worker polls the queue when woken by a new entry or a free slot,
    and every ``worker_poll_delay`` seconds otherwise (arq alone polls every
    half second, whether or not anything came), keeps no arq results (the job
    record is the result) and never retries on its own: phaser's runner
    decides about retries. After SIGTERM it takes no new jobs, gives running
    ones ``worker_grace_period`` seconds, then stops the rest, which go back
    to the queue.
    """
    if not settings.external_redis:
        raise ValueError("PHASER_REDIS_URL is not set")
    limit = settings.max_execution_duration
    return QueueWorker(
        functions=[func(_not_run_by_arq, name=RUN_JOB, max_tries=1)],
        redis_pool=create_arq_redis(
            redis_pool(settings, decode_responses=False), settings.queue_name
        ),
        queue_name=settings.queue_name,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        max_jobs=settings.worker_concurrency,
        idle_poll=settings.worker_poll_delay,
        # The runner enforces execution durations; this is only arq's
        # outer bound, past which it would cancel the runner itself.
        job_timeout=(limit + 60) if limit else 10 * 365 * 86400,
        keep_result=0,
        max_tries=1,
        job_serializer=serialize,
        job_deserializer=deserialize,
        handle_signals=True,
        job_completion_wait=settings.worker_grace_period,
        log_results=False,
    )


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (it comes with uvicorn's
    standard extras, as for the frontend): a worker finished 28 % more
    no-op jobs a second on it (benchmark B2); asyncio's own loop
    otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM."""
    configure(settings)
    configure_tracing(settings, role="worker")
    asyncio.set_event_loop(_new_event_loop())
    create_worker(settings).run()
