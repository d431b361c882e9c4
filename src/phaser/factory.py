"""Wiring: builds stores and services from the settings.

The web application, the worker and the CLI all build their parts here, so
they share one configuration of Redis, keys, stores and tasks.
"""

from __future__ import annotations

import gc
import os
import socket
from pathlib import Path

from redis.asyncio import Redis

from .config import Settings
from .queue import JobQueue, create_arq_redis
from .services.jobs import JobService
from .services.lifecycle import JobLifecycle
from .services.maintenance import Maintenance
from .services.operations import Operations
from .services.waiting import JobWaiter
from .storage.connect import redis_pool
from .storage.events import EventHub
from .storage.job_store import JobStore
from .storage.keys import KeyLayout
from .storage.results import LocalResultStore, ResultStore
from .tasks.registry import TaskRegistry, default_registry

__all__ = ["Factory", "freeze_startup_heap", "result_store"]

_frozen = False


def freeze_startup_heap() -> None:
    """Keep what start-up made (modules, the application, the task
    registry) out of the garbage collector's full passes, once per
    process: a full pass walks every tracked object, and with thousands
    of open waits on a frontend it held releases up for tens of
    milliseconds (benchmark B6)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def result_store(settings: Settings) -> ResultStore:
    """The result store ``PHASER_RESULTS_URL`` names."""
    url = settings.results_url
    if url is None:
        return LocalResultStore(settings.results_dir)
    if url.startswith("file://"):
        return LocalResultStore(Path(url.removeprefix("file://")))
    from .storage.objects import ObjectResultStore

    return ObjectResultStore(
        url,
        settings.data_dir / "scratch",
        redirect=settings.results_redirect,
        url_ttl=settings.results_url_ttl,
    )


class Factory:
    """Owns the connections and builds the services.

    Parameters
    ----------
    settings
        Configuration; Redis must be configured (``phaser serve`` sets
        ``redis_url`` to the embedded Redis before building the factory).
    registry
        Tasks; the configured task modules are loaded into it.
    worker
        For a worker process: its event hub hears only what happens to
        running jobs (`phaser.storage.events.running_channel`).
    """

    def __init__(
        self,
        settings: Settings,
        registry: TaskRegistry = default_registry,
        *,
        worker: bool = False,
    ) -> None:
        self.settings = settings
        self.registry = registry
        registry.load_modules(settings.task_modules)
        self.redis: Redis = Redis(
            connection_pool=redis_pool(
                settings, decode_responses=True, health_check_interval=30
            )
        )
        self.keys = KeyLayout(settings.key_prefix)
        self.job_store = JobStore(
            self.redis,
            self.keys,
            replicas=(
                settings.durability_replicas
                if settings.durability == "replicated"
                else 0
            ),
            replica_timeout=settings.durability_timeout,
        )
        self.results: ResultStore = result_store(settings)
        self.hub = EventHub(self.redis, self.keys.events, running_only=worker)
        self.queue = JobQueue(
            create_arq_redis(
                redis_pool(settings, decode_responses=False),
                settings.queue_name,
            ),
            priority_ageing=settings.priority_ageing,
        )

    async def start(self) -> None:
        """Load the scripts and start listening for events."""
        self.settings.results_dir.mkdir(parents=True, exist_ok=True)
        await self.job_store.load_scripts()
        await self.hub.start()

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        await self.hub.stop()
        await self.queue.close()
        await self.redis.aclose(close_connection_pool=True)

    def lifecycle(self) -> JobLifecycle:
        """Every change of a job after its creation (runner, maintenance,
        client operations)."""
        return JobLifecycle(
            settings=self.settings,
            store=self.job_store,
            results=self.results,
            queue=self.queue,
            registry=self.registry,
        )

    def job_service(self) -> JobService:
        """What clients do with jobs."""
        return JobService(
            settings=self.settings,
            store=self.job_store,
            lifecycle=self.lifecycle(),
            hub=self.hub,
            registry=self.registry,
        )

    def waiter(self, jobs: JobService) -> JobWaiter:
        """Long polls and event streams over ``jobs``."""
        return JobWaiter(
            settings=self.settings,
            jobs=jobs,
            store=self.job_store,
            hub=self.hub,
        )

    def operations(self) -> Operations:
        """Readiness, workers, statistics and metrics."""
        return Operations(
            settings=self.settings, store=self.job_store, queue=self.queue
        )

    @property
    def worker_id(self) -> str:
        """Name of this process among workers."""
        return f"{socket.gethostname()}-{os.getpid()}"

    def maintenance(self) -> Maintenance:
        """The maintenance rules a worker runs."""
        return Maintenance(
            settings=self.settings,
            lifecycle=self.lifecycle(),
            store=self.job_store,
        )
