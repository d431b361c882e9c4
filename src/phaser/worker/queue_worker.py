"""The worker's side of arq: its poll loop, and how it takes and ends
queue entries."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from arq.worker import Worker
from redis.exceptions import RedisError

from ..backoff import Backoff
from ..queue import EntryTaker, Taken, wake_channel

__all__ = ["QueueWorker"]

_logger = structlog.get_logger("phaser.worker")


class QueueWorker(Worker):
    """An arq worker that takes entries with one script, survives Redis
    outages and sleeps until woken.

    arq's loop reads the queue and starts what it read, one transaction
    per entry; this worker's loop takes as many due entries as it has free
    slots out of the queue with `EntryTaker` (one round trip in all) and
    runs the attempt each names with ``ctx["run"]`` (a coroutine function
    of the `phaser.queue.Entry`); arq's own ``run_job``, ``start_jobs``
    and function registry are not used.

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
        # Whether the queue may hold due entries this worker has not taken
        # (its last take filled every free slot, or found none free): only
        # then does a job's end, freeing a slot, call for another take. A
        # take that found fewer entries than slots emptied the due part of
        # the queue, and a new entry wakes the worker itself.
        self._more = True
        self._taker = EntryTaker(self.pool, self.queue_name)

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
        # Cleared before the take: a wake-up during it means another entry
        # may have come after the script read the queue.
        self._wake.clear()
        try:
            await self._take_due()
            self._tidy()
            await self.heart_beat()
        except (RedisError, OSError) as exc:
            _logger.warning("Queue unreachable, retrying", error=str(exc))
            await asyncio.sleep(1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._idle_poll):
                await self._wake.wait()

    async def _take_due(self) -> None:
        """Take as many due entries as there are free slots, in one round
        trip (arq reads the queue, then takes each entry with a
        transaction of its own), and start them.

        The slots are counted before the take, and those the take did not
        fill are given back (arq 0.28's own version leaked a slot on every
        Redis error). Taking no more than the free slots leaves the rest
        in the queue, so an entry of a higher priority queued meanwhile is
        taken first when a slot frees.
        """
        free = self.max_jobs - self.job_counter
        if free <= 0:
            self._more = True
            return
        for _ in range(free):
            await self.sem.acquire()
            self.job_counter += 1
        started = 0
        try:
            taken, dropped = await self._taker.take(free)
            self._more = len(taken) + len(dropped) >= free
            for reason in dropped:
                _logger.warning("Queue entry dropped", error=reason)
            for one in taken:
                running = self.loop.create_task(self._run_entry(one))
                running.add_done_callback(
                    lambda _: self._release_sem_dec_counter_on_complete()
                )
                self.tasks[one.entry.name] = running
                started += 1
        finally:
            for _ in range(free - started):
                self._release_sem_dec_counter_on_complete()

    def _tidy(self) -> None:
        """Forget entries whose attempts have ended (arq's loop does the
        same with the tasks it started)."""
        for name, running in list(self.tasks.items()):
            if running.done():
                del self.tasks[name]

    async def _run_entry(self, taken: Taken) -> None:
        """Run the attempt. Cancelled (the worker shutting down) before
        the attempt was claimed, the entry goes back to the queue for
        another worker; once claimed, the runner has requeued the job
        itself, and an entry given back finds it no longer claimable."""
        try:
            async with asyncio.timeout(self.job_timeout_s):
                await self.ctx["run"](taken.entry)
        except asyncio.CancelledError:
            self.jobs_retried += 1
            try:
                await asyncio.shield(self._taker.give_back(taken))
            except (RedisError, OSError) as exc:
                # phaser's maintenance re-sends a QUEUED job left without
                # an entry (PHASER_QUEUE_CHECK_AFTER).
                _logger.warning("Queue entry not given back", error=str(exc))
        except Exception:
            _logger.exception("Attempt failed in the worker")
            self.jobs_failed += 1
        else:
            self.jobs_complete += 1
        finally:
            if self._more:
                self._wake.set()  # a slot is free: take the next entry
