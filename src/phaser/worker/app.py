"""The arq worker process (``phaser worker``)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import structlog
from arq.worker import Worker, func
from redis.exceptions import RedisError

from ..backoff import Backoff
from ..clock import now
from ..config import Settings
from ..factory import Factory
from ..logs import configure
from ..metrics import serve_worker_metrics
from ..queue import (
    RUN_JOB,
    create_arq_redis,
    deserialize,
    serialize,
    wake_channel,
)
from ..services.webhooks import WebhookSender
from ..storage.connect import redis_pool
from ..tracing import configure_tracing, tracing
from .runner import JobRunner

__all__ = ["create_worker", "run_worker"]

_logger = structlog.get_logger("phaser.worker")


class _ResilientWorker(Worker):
    """An arq worker that survives Redis outages and sleeps until woken.

    arq lets a connection error in its poll loop end the worker; this one
    logs it and polls again, so workers reconnect by themselves.

    arq polls its queue every ``poll_delay`` seconds. This worker is given
    a poll delay of 0 and instead, after each poll, sleeps until a wake-up
    arrives on the queue's wake-up channel (published with every entry,
    see `phaser.queue`) or one of its jobs ends (a slot is free), or at the
    latest ``idle_poll`` seconds (for wake-ups lost while the subscription
    reconnects).
    """

    def __init__(self, *, idle_poll: float, **kwargs: Any) -> None:
        super().__init__(poll_delay=0, **kwargs)
        self._idle_poll = idle_poll
        self._wake = asyncio.Event()

    async def main(self) -> None:
        listener = asyncio.create_task(self._listen(), name="queue-wake")
        try:
            await super().main()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self) -> None:
        """Set the wake-up event on every message of the wake channel."""
        channel = wake_channel(self.queue_name)
        backoff = Backoff()
        while True:
            pubsub = self.pool.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                backoff.reset()
                self._wake.set()  # entries may have come while away
                async for _ in pubsub.listen():
                    self._wake.set()
            except (RedisError, OSError) as exc:
                _logger.warning("Wake-ups unavailable", error=str(exc))
                await backoff.wait()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _poll_iteration(self) -> None:
        # Cleared before the poll: a wake-up during the poll means another
        # entry may have come after it read the queue.
        self._wake.clear()
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            _logger.warning("Queue unreachable, retrying", error=str(exc))
            await asyncio.sleep(1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._idle_poll):
                await self._wake.wait()

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        finally:
            self._wake.set()  # a slot is free: look for the next job

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # Workaround: arq 0.28 counts a job as running before its WATCH
        # pipeline talks to Redis and does not undo that if the pipeline
        # fails, so every outage leaked a slot until the worker took no jobs
        # at all. Start jobs one at a time and give a leaked slot back.
        for job_id in job_ids:
            if self.job_counter >= self.max_jobs:
                # No free slot: the rest of this read of the queue is left
                # (as arq's own loop does); the next poll, when a slot
                # frees, reads the queue afresh, so an entry of a higher
                # priority queued meanwhile is taken first.
                return
            running = self.job_counter
            try:
                await super().start_jobs([job_id])
            except (RedisError, OSError):
                if self.job_counter > running:
                    self.job_counter -= 1
                    self.sem.release()
                raise


async def _maintain(factory: Factory) -> None:
    """Run maintenance passes while holding the maintenance lease."""
    maintenance = factory.maintenance()
    interval = factory.settings.maintenance_interval
    holder = factory.worker_id
    while True:
        try:
            # The lease outlives a pass, so a second worker only takes over
            # once this one has stopped renewing it.
            if await factory.job_store.activity.hold_lease(
                "maintenance", holder, ttl=3 * interval
            ):
                report = await maintenance.run()
                if report.more:
                    continue  # a backlog: the next pass at once
        except (RedisError, OSError) as exc:
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
    factory = Factory(ctx["settings"])
    await factory.start()
    ctx["factory"] = factory
    ctx["runner"] = JobRunner(
        lifecycle=factory.lifecycle(),
        store=factory.job_store,
        hub=factory.hub,
        registry=factory.registry,
        settings=factory.settings,
        worker_id=factory.worker_id,
    )
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


async def run_job(
    ctx: dict[str, Any], job_id: str, attempt: int, trace: str | None = None
) -> None:
    """arq entry point: run one attempt of a job (``trace``: its trace
    context, when tracing is on)."""
    await ctx["runner"].run(
        job_id, attempt, enqueued_at=ctx.get("enqueue_time"), trace=trace
    )


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
    return _ResilientWorker(
        functions=[func(run_job, name=RUN_JOB, max_tries=1)],
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
