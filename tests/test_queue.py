"""The worker's side of the queue (`phaser.queue.EntryTaker`) against a
real redis-server: what a take removes, what it refuses, what giving an
entry back restores."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from arq.constants import job_key_prefix
from redis.asyncio import ConnectionPool, Redis

from phaser.clock import now, to_ms
from phaser.embedded import EmbeddedRedis
from phaser.models.job import Job
from phaser.models.phase import ExecutionPhase
from phaser.queue import (
    Entry,
    EntryTaker,
    JobQueue,
    QueueEntry,
    arq_job_id,
    create_arq_redis,
)
from phaser.services.ids import new_job_id
from phaser.storage.job_store import (
    Created,
    Existing,
    JobStore,
    OverQuota,
    Quota,
)
from phaser.storage.keys import KeyLayout


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
    assert await jobs.enqueue(jobs.entry("01job", 2, task="echo", owner="ann"))
    assert await jobs.is_waiting("01job", 2)
    [taken], dropped = await taker.take(10)
    assert dropped == []
    entry = taken.entry
    assert entry.name == arq_job_id("01job", 2)
    assert (entry.job_id, entry.attempt) == ("01job", 2)
    assert (entry.task, entry.owner, entry.trace) == ("echo", "ann", None)
    assert to_ms(entry.enqueued_at) >= before
    # Out of the queue: not waiting, its payload gone, and nobody else
    # can take it.
    assert not await jobs.is_waiting("01job", 2)
    assert await jobs.depth(name) == 0
    assert await jobs._arq.exists(job_key_prefix + entry.name) == 0
    assert await taker.take(10) == ([], [])


async def test_a_job_created_with_its_entry_is_queued_in_the_same_step(
    queue: tuple[JobQueue, EntryTaker, str], redis_server: EmbeddedRedis
) -> None:
    """The creation script writes the first attempt's entry with the job,
    and neither where it refuses the job (over quota, a replayed key)."""
    jobs, taker, name = queue
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    store = JobStore(redis, KeyLayout(f"s{uuid.uuid4().hex[:8]}"))
    await store.load_scripts()

    def started() -> Job:
        created = now()
        return Job(
            id=new_job_id(to_ms(created)),
            task="echo",
            owner="ann",
            phase=ExecutionPhase.QUEUED,
            parameters={},
            created_at=created,
            execution_duration=10,
            destruction_time=None,
            attempts=1,
        )

    def entry(job: Job) -> QueueEntry:
        return jobs.entry(job.id, 1, task="echo", owner="ann", queue=name)

    try:
        job = started()
        once = ("key", "print", 60_000)
        outcome = await store.create(job, None, once, entry(job))
        assert isinstance(outcome, Created)
        assert await jobs.is_waiting(job.id, 1, queue=name)
        # Refused: nothing written, the entry included.
        replayed = started()
        outcome = await store.create(replayed, None, once, entry(replayed))
        assert isinstance(outcome, Existing)
        over = started()
        quota = Quota(max_stored=1, max_active=None, active_phases=())
        outcome = await store.create(over, quota, None, entry(over))
        assert isinstance(outcome, OverQuota)
        for refused in (replayed, over):
            assert not await jobs.is_waiting(refused.id, 1, queue=name)
            assert await store.get(refused.id) is None
        [taken], _ = await taker.take(10)
        assert (taken.entry.job_id, taken.entry.task) == (job.id, "echo")
    finally:
        await redis.aclose()


async def test_a_take_takes_the_first_due_entries_and_no_more(
    queue: tuple[JobQueue, EntryTaker, str],
) -> None:
    jobs, taker, name = queue
    for attempt, priority in ((1, 0), (2, 9), (3, 5), (4, 9)):
        await jobs.enqueue(
            jobs.entry(
                f"j{attempt}", 1, task="t", owner=None, priority=priority
            )
        )
    # The two of priority 9 first, in the order they came; the rest stay.
    taken, _ = await taker.take(2)
    assert [t.entry.job_id for t in taken] == ["j2", "j4"]
    assert await jobs.depth(name) == 2
    taken, _ = await taker.take(5)
    assert [t.entry.job_id for t in taken] == ["j3", "j1"]
    assert await jobs.depth(name) == 0


async def test_an_entry_given_back_is_waiting_again_as_it_was(
    queue: tuple[JobQueue, EntryTaker, str],
) -> None:
    jobs, taker, name = queue
    await jobs.enqueue(
        jobs.entry("01job", 1, task="echo", owner=None, priority=7)
    )
    [(_, score)] = await jobs._arq.zrange(name, 0, -1, withscores=True)
    [taken], _ = await taker.take(1)
    await taker.give_back(taken)
    assert await jobs.is_waiting("01job", 1)
    assert await jobs._arq.zrange(name, 0, -1, withscores=True) == [
        (b"01job.1", score)
    ]
    [again], _ = await taker.take(1)
    assert again.entry == taken.entry


async def test_entries_not_due_or_not_phasers_are_not_run(
    queue: tuple[JobQueue, EntryTaker, str],
) -> None:
    jobs, taker, name = queue
    arq = jobs._arq
    # Not yet due (a score in the future): left where it is.
    await arq.zadd(name, {"later.1": to_ms(now()) + 60_000})
    await arq.set(job_key_prefix + "later.1", b"{}")
    assert await taker.take(10) == ([], [])
    assert await arq.zscore(name, "later.1") is not None
    # A payload that has expired, or is not phaser's: taken (nothing to
    # run), and said so; one that can run, taken beside them.
    await arq.zadd(name, {"gone.1": 0, "other.1": 1})
    await arq.set(
        job_key_prefix + "other.1",
        b'{"f": "x", "a": ["j", 1], "k": {}, "et": 0}',
    )
    await jobs.enqueue(jobs.entry("01job", 1, task="echo", owner=None))
    taken, dropped = await taker.take(10)
    assert [t.entry.job_id for t in taken] == ["01job"]
    assert len(dropped) == 2
    assert "gone.1 has expired" in dropped[0]
    assert "not a phaser job" in dropped[1]
    assert await arq.zscore(name, "later.1") is not None
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
