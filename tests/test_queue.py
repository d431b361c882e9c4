"""The worker's side of the queue (`phaser.queue.EntryTaker`) against a
real redis-server: what a take removes, what it refuses, what giving an
entry back restores."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from arq.constants import job_key_prefix
from redis.asyncio import ConnectionPool

from phaser.clock import now, to_ms
from phaser.embedded import EmbeddedRedis
from phaser.queue import (
    Entry,
    EntryTaker,
    JobQueue,
    arq_job_id,
    create_arq_redis,
)


@pytest.fixture
async def queue(
    redis_server: EmbeddedRedis,
) -> AsyncIterator[tuple[JobQueue, EntryTaker, str]]:
    name = f"q{uuid.uuid4().hex[:8]}"
    arq = create_arq_redis(ConnectionPool.from_url(redis_server.url), name)
    yield JobQueue(arq), EntryTaker(arq, name), name
    await arq.aclose(close_connection_pool=True)


async def test_a_take_removes_the_entry_and_reads_what_it_carries(
    queue: tuple[JobQueue, EntryTaker, str],
) -> None:
    jobs, taker, name = queue
    before = to_ms(now())
    assert await jobs.enqueue("01job", 2, task="echo", owner="ann")
    assert await jobs.is_waiting("01job", 2)
    taken = await taker.take(arq_job_id("01job", 2))
    assert taken is not None
    entry = taken.entry
    assert (entry.job_id, entry.attempt) == ("01job", 2)
    assert (entry.task, entry.owner, entry.trace) == ("echo", "ann", None)
    assert to_ms(entry.enqueued_at) >= before
    # Out of the queue: not waiting, its payload gone, and nobody else
    # can take it.
    assert not await jobs.is_waiting("01job", 2)
    assert await jobs.depth(name) == 0
    assert await jobs._arq.exists(job_key_prefix + entry.name) == 0
    assert await taker.take(entry.name) is None


async def test_an_entry_given_back_is_waiting_again_as_it_was(
    queue: tuple[JobQueue, EntryTaker, str],
) -> None:
    jobs, taker, name = queue
    await jobs.enqueue("01job", 1, task="echo", owner=None, priority=7)
    [(_, score)] = await jobs._arq.zrange(name, 0, -1, withscores=True)
    taken = await taker.take(arq_job_id("01job", 1))
    assert taken is not None
    await taker.give_back(taken)
    assert await jobs.is_waiting("01job", 1)
    assert await jobs._arq.zrange(name, 0, -1, withscores=True) == [
        (b"01job.1", score)
    ]
    again = await taker.take(arq_job_id("01job", 1))
    assert again is not None
    assert again.entry == taken.entry


async def test_entries_not_due_or_not_phasers_are_not_run(
    queue: tuple[JobQueue, EntryTaker, str],
) -> None:
    jobs, taker, name = queue
    arq = jobs._arq
    # Not yet due (a score in the future): left where it is.
    await arq.zadd(name, {"later.1": to_ms(now()) + 60_000})
    await arq.set(job_key_prefix + "later.1", b"{}")
    assert await taker.take("later.1") is None
    assert await arq.zscore(name, "later.1") is not None
    # A payload that has expired, or is not phaser's: taken (nothing to
    # run), and said so.
    await arq.zadd(name, {"gone.1": 0, "other.1": 0})
    await arq.set(
        job_key_prefix + "other.1",
        b'{"f": "x", "a": ["j", 1], "k": {}, "et": 0}',
    )
    with pytest.raises(ValueError, match="expired"):
        await taker.take("gone.1")
    with pytest.raises(ValueError, match="not a phaser job"):
        await taker.take("other.1")
    assert await arq.zscore(name, "gone.1") is None
    assert await arq.zscore(name, "other.1") is None


def test_an_entry_of_an_earlier_version_carries_no_task() -> None:
    # Queued before entries carried the task and owner: the worker reads
    # the job before claiming it.
    payload = (
        b'{"t": 1, "f": "run_job", "a": ["01job", 1], "k": {},'
        b' "et": 1700000000000}'
    )
    entry = Entry.read("01job.1", payload)
    assert (entry.job_id, entry.attempt) == ("01job", 1)
    assert entry.task is None
    assert entry.owner is None
