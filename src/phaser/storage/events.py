"""The event hub: one Redis subscriber per process, fanned out in-process.

Every creation, transition, progress update and result publishes a small
JSON event (``{"id", "phase", "kind", "owner"}``; a job's end, its record
too) on one channel; deletions, ``{"ids": [...], "kind": "deleted"}``. Each
process (frontend or worker) holds a single subscription and hands events
to the local waiters of that job id (or, for live views, of that owner),
so thousands of WAIT requests cost one Redis connection.

Events can be missed (before a waiter subscribes, or while the subscriber
reconnects); waiters therefore re-read the job record after subscribing, and
every waiter is woken after a reconnect so that it reads the record again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from ..backoff import Backoff
from ..models.job import Job
from .codec import decode_flat
from .event_queue import EventQueue

__all__ = [
    "EventHub",
    "EventQueue",
    "JobEvent",
    "created_channel",
    "ended_job",
    "next_event",
    "running_channel",
]

_logger = structlog.get_logger("phaser.events")


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Something happened to a job; re-read the record for the details.

    ``kind`` is ``created``, ``phase``, ``progress``, ``result``,
    ``update``, ``deleted``, ``resync`` (the subscriber reconnected, or a
    slow reader missed events: anything may have changed) or ``closing``
    (the server stops: streams and waits end now). ``owner`` is the
    job's (`None`: the anonymous owner, or unknown: ``deleted`` and
    ``resync`` events). ``record``: the event of a job's end carries
    its record as it was then (a JSON list of fields and values, read
    only by those who want it; none if large): no read needed.
    """

    job_id: str
    phase: str | None
    kind: str
    owner: str | None = None
    record: str | None = None


async def next_event(events: EventQueue, timeout: float) -> JobEvent | None:
    """The next event, or `None` after ``timeout`` seconds.

    Uses `asyncio.timeout` rather than `asyncio.wait_for`: on Python 3.11
    ``wait_for`` can swallow a cancellation that arrives together with an
    event, which left a cancelled watcher running forever.
    """
    try:
        async with asyncio.timeout(timeout):
            return await events.get()
    except TimeoutError:
        return None


def ended_job(event: JobEvent) -> Job | None:
    """The job as the event of its end carries it (`JobEvent.record`);
    `None` if the event carries none, or one that does not read as a
    record: then the job is read instead."""
    if event.record is None:
        return None
    try:
        return decode_flat(event.job_id, json.loads(event.record))
    except (ValueError, TypeError):
        return None


def running_channel(channel: str) -> str:
    """The channel beside a hub's channel that repeats the events workers
    need: those of jobs that were running (EXECUTING or SUSPENDED) when
    they changed, but for the running worker's own changes (the store
    passes it to ``transition.lua`` and ``delete.lua``). Workers listen
    to it alone, so a worker is not handed every event of every job (two
    or more a job, which cost a worker running no-op jobs a tenth of its
    time)."""
    return f"{channel}:running"


def created_channel(channel: str) -> str:
    """The channel of ``created`` events beside a hub's channel: apart,
    so that only processes with live views open read them."""
    return f"{channel}:created"


class EventHub:
    """Fan-out of job events to in-process subscribers.

    Parameters
    ----------
    redis
        Client used for the one pub/sub connection.
    channel
        Channel the job store publishes on.
    running_only
        Listen only to the events of running jobs (`running_channel`):
        enough for a worker, whose running jobs are all it follows.
    """

    def __init__(
        self, redis: Redis, channel: str, *, running_only: bool = False
    ) -> None:
        self._redis = redis
        self._channel = running_channel(channel) if running_only else channel
        self._created_channel = created_channel(channel)
        self._subscribers: dict[str, set[EventQueue]] = {}
        self._everything: set[EventQueue] = set()
        self._by_owner: dict[str | None, set[EventQueue]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._pubsub: PubSub | None = None
        # Whether the created channel is subscribed (and confirmed).
        self._creations = False
        self._creations_ready = asyncio.Event()
        self._creations_lock = asyncio.Lock()
        self._chores: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the subscriber and wait until it listens."""
        self._task = asyncio.create_task(self._run(), name="event-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        """Stop the subscriber."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[EventQueue]:
        """Receive the events of one job while the context is open."""
        queue: EventQueue = EventQueue(64)
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            _leave(self._subscribers, job_id, queue)

    @contextlib.asynccontextmanager
    async def subscribe_all(
        self, size: int = 256
    ) -> AsyncIterator[EventQueue]:
        """Receive every job's events while the context is open (live
        lists). A reader that falls ``size`` events behind gets one
        ``resync`` event (with an empty job id) instead of the rest."""
        queue: EventQueue = EventQueue(size)
        self._everything.add(queue)
        try:
            await self._follow_creations()
            yield queue
        finally:
            self._everything.discard(queue)
            self._chore(self._follow_creations())

    @contextlib.asynccontextmanager
    async def subscribe_owner(
        self, owner: str | None, size: int = 256
    ) -> AsyncIterator[EventQueue]:
        """Receive the events of one owner's jobs while the context is
        open, and every ``deleted`` event (they do not name owners). A
        reader that falls ``size`` events behind gets one ``resync``
        instead of the rest (with ``size=2``: a "something changed"
        signal)."""
        queue: EventQueue = EventQueue(size)
        self._by_owner.setdefault(owner, set()).add(queue)
        try:
            await self._follow_creations()
            yield queue
        finally:
            _leave(self._by_owner, owner, queue)
            self._chore(self._follow_creations())

    async def _follow_creations(self) -> None:
        """Subscribe to the channel of ``created`` events while live views
        are open (and wait until Redis confirms, so that a view reading
        the jobs after this misses none), and leave it when the last one
        closes: a frontend nobody watches does not read an event per
        created job."""
        async with self._creations_lock:
            wanted = bool(self._listeners())
            pubsub = self._pubsub
            if pubsub is None or wanted == self._creations:
                return
            try:
                if wanted:
                    self._creations_ready.clear()
                    await pubsub.subscribe(self._created_channel)
                    self._creations = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._creations_ready.wait(), timeout=2
                        )
                else:
                    await pubsub.unsubscribe(self._created_channel)
                    self._creations = False
            except (RedisError, OSError) as exc:
                # The subscriber reconnects and subscribes again.
                _logger.warning("Could not follow creations", error=str(exc))

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        """Run something in the background (from a ``finally`` that may
        be running in a cancelled task)."""
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _listeners(self) -> list[EventQueue]:
        """Queues that hear of more than one job."""
        found = list(self._everything)
        for queues in self._by_owner.values():
            found += queues
        return found

    def close(self) -> None:
        """Tell every subscriber that the server stops (a ``closing``
        event, delivered even to a full queue)."""
        for job_id, queues in self._subscribers.items():
            for queue in queues:
                _force(queue, JobEvent(job_id, None, "closing"))
        for queue in self._listeners():
            _force(queue, JobEvent("", None, "closing"))

    def _deliver(self, event: JobEvent) -> None:
        for queue in self._subscribers.get(event.job_id, ()):
            if queue.full():
                # A slow reader only needs to know that something changed.
                continue
            queue.put_nowait(event)
        for queue in self._everything:
            _offer(queue, event)
        if event.kind == "deleted":
            for queues in self._by_owner.values():
                for queue in queues:
                    _offer(queue, event)
        else:
            for queue in self._by_owner.get(event.owner, ()):
                _offer(queue, event)

    def _resync(self) -> None:
        for job_id, queues in self._subscribers.items():
            for queue in queues:
                if not queue.full():
                    queue.put_nowait(JobEvent(job_id, None, "resync"))
        for queue in self._listeners():
            _offer(queue, JobEvent("", None, "resync"))

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._pubsub = pubsub
                self._creations = False
                self._ready.set()
                backoff.reset()
                self._chore(self._follow_creations())
                # Events may have been missed while (re)connecting.
                self._resync()
                async for message in pubsub.listen():
                    self._handle(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                _logger.warning(
                    "Event subscriber lost Redis, reconnecting",
                    error=str(exc),
                )
                self._resync()
                await backoff.wait()
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        if message.get("type") == "subscribe":
            if message.get("channel") == self._created_channel:
                self._creations_ready.set()
            return
        if message.get("type") != "message":
            return
        try:
            raw = message["data"]
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            # The event, then (a job's end) a newline and its record.
            head, _, record = text.partition("\n")
            data = json.loads(head)
            kind = str(data.get("kind", "phase"))
            if "ids" in data:
                # A batch (deletions): one message naming many jobs.
                events = [JobEvent(str(i), None, kind) for i in data["ids"]]
            else:
                owner = data.get("owner")
                events = [
                    JobEvent(
                        str(data["id"]),
                        data.get("phase"),
                        kind,
                        None if owner is None else str(owner),
                        record or None,
                    )
                ]
        except (ValueError, KeyError, TypeError, AttributeError):
            _logger.warning("Ignoring malformed event", data=message["data"])
            return
        for event in events:
            self._deliver(event)


_K = TypeVar("_K")


def _leave(
    registry: dict[_K, set[EventQueue]],
    key: _K,
    queue: EventQueue,
) -> None:
    """Take a subscriber's queue out of a registry (and its key, once no
    queue is left under it)."""
    queues = registry.get(key)
    if queues is not None:
        queues.discard(queue)
        if not queues:
            del registry[key]


def _offer(queue: EventQueue, event: JobEvent) -> None:
    """Put an event on a subscribe-all queue; when only one place is left,
    a ``resync`` takes it (the reader re-reads everything it shows)."""
    if queue.qsize() < queue.maxsize - 1:
        queue.put_nowait(event)
    elif not queue.full():
        queue.put_nowait(JobEvent("", None, "resync"))


def _force(queue: EventQueue, event: JobEvent) -> None:
    """Put an event on a queue, dropping the oldest if it is full."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)
