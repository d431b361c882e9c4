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

    arq's loop reads the queue and starts what it read; this worker starts
    an entry by taking it out of the queue with `EntryTaker` (one round
    trip instead of arq's five per entry) and runs the attempt it names
    with ``ctx["run"]`` (a coroutine function of the `phaser.queue.Entry`);
    arq's own ``run_job`` and its function registry are not used.

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

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Take what the poll read, while there are free slots.

        A slot is counted before the take and given back if the take
        fails or finds the entry taken by another worker (arq 0.28's own
        version leaked a slot on every Redis error). Once the slots are
        full, the rest of this read is left: the next poll, when a slot
        frees, reads the queue afresh, so an entry of a higher priority
        queued meanwhile is taken first.
        """
        for raw in job_ids:
            if self.job_counter >= self.max_jobs:
                return
            name = raw.decode()
            await self.sem.acquire()
            self.job_counter += 1
            try:
                taken = await self._taker.take(name)
            except ValueError as exc:
                # Not phaser's, or its payload expired: nothing to run.
                _logger.warning("Queue entry dropped", error=str(exc))
                taken = None
            except BaseException:
                self._release_sem_dec_counter_on_complete()
                raise
            if taken is None:
                self._release_sem_dec_counter_on_complete()
                continue
            running = self.loop.create_task(self._run_entry(taken))
            running.add_done_callback(
                lambda _: self._release_sem_dec_counter_on_complete()
            )
            self.tasks[name] = running

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
            self._wake.set()  # a slot is free: look for the next job
