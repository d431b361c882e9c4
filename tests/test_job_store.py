"""The job store against a real Redis: compare-and-set and indexes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from phaser.clock import now, to_ms
from phaser.embedded import EmbeddedRedis
from phaser.models.job import Job
from phaser.models.phase import Action, ExecutionPhase, allowed_from
from phaser.services.ids import new_job_id
from phaser.storage.job_store import JobStore, Outcome
from phaser.storage.keys import KeyLayout

P = ExecutionPhase


@pytest.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[JobStore]:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    job_store = JobStore(redis, KeyLayout(f"s{uuid.uuid4().hex[:8]}"))
    await job_store.load_scripts()
    yield job_store
    await redis.aclose()


def _job(owner: str | None = "ann", task: str = "echo") -> Job:
    created = now()
    return Job(
        id=new_job_id(to_ms(created)),
        task=task,
        owner=owner,
        phase=P.PENDING,
        parameters={"x": 1},
        created_at=created,
        execution_duration=10,
        destruction_time=None,
    )


async def _ids(store: JobStore, job: Job, phase: ExecutionPhase) -> list[str]:
    return await store.list_ids(
        owner=job.owner,
        tasks=[job.task],
        phases=[phase],
        newer_than=None,
        older_than=None,
        limit=10,
    )


async def test_record_round_trips(store: JobStore) -> None:
    job = _job(owner="a:b*c")
    await store.create(job)
    assert await store.get(job.id) == job
    assert await store.get("missing") is None


async def test_only_one_of_racing_claims_wins(store: JobStore) -> None:
    job = _job()
    await store.create(job)
    await store.transition(job, allowed=[P.PENDING], to=P.QUEUED)
    results = await asyncio.gather(
        *(
            store.transition(
                job,
                allowed=allowed_from(Action.CLAIM),
                to=P.EXECUTING,
                fields={"claim": f"worker-{n}"},
            )
            for n in range(20)
        )
    )
    winners = [r for r in results if r.ok]
    assert len(winners) == 1
    assert {r.outcome for r in results if not r.ok} == {Outcome.PHASE}
    assert await _ids(store, job, P.EXECUTING) == [job.id]
    assert await _ids(store, job, P.QUEUED) == []


async def test_abort_racing_completion_leaves_one_final_phase(
    store: JobStore,
) -> None:
    for _ in range(20):
        job = _job()
        await store.create(job)
        await store.transition(job, allowed=[P.PENDING], to=P.QUEUED)
        await store.transition(
            job, allowed=[P.QUEUED], to=P.EXECUTING, fields={"claim": "w"}
        )
        complete, abort = await asyncio.gather(
            store.transition(
                job,
                allowed=[P.EXECUTING],
                to=P.COMPLETED,
                check=("claim", "w"),
            ),
            store.transition(
                job, allowed=allowed_from(Action.ABORT), to=P.ABORTED
            ),
        )
        assert complete.ok != abort.ok
        final = await store.get(job.id)
        assert final is not None
        expected = P.COMPLETED if complete.ok else P.ABORTED
        assert final.phase == expected
        for phase in (P.EXECUTING, P.COMPLETED, P.ABORTED):
            listed = await _ids(store, job, phase)
            assert (job.id in listed) == (phase == expected)


async def test_lost_claim_cannot_write(store: JobStore) -> None:
    job = _job()
    await store.create(job)
    await store.transition(job, allowed=[P.PENDING], to=P.QUEUED)
    await store.transition(
        job, allowed=[P.QUEUED], to=P.EXECUTING, fields={"claim": "new"}
    )
    stale = await store.transition(
        job, allowed=[P.EXECUTING], to=P.COMPLETED, check=("claim", "old")
    )
    assert stale.outcome is Outcome.CHECK
    current = await store.get(job.id)
    assert current is not None
    assert current.phase == P.EXECUTING


async def test_delete_removes_every_index_entry(
    store: JobStore, redis_server: EmbeddedRedis
) -> None:
    job = _job()
    await store.create(job)
    await store.transition(
        job, allowed=[P.PENDING], to=P.QUEUED, destruction=now()
    )
    assert await store.delete(job) == P.QUEUED
    assert await store.delete(job) is None
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    prefix = store._keys.prefix  # the test's own prefix
    leftovers = [
        key
        async for key in redis.scan_iter(f"{prefix}:*")
        if await redis.type(key) != "zset"
        or await redis.zscore(key, job.id) is not None
    ]
    await redis.aclose()
    assert leftovers == []


def test_no_pickle_on_the_job_path() -> None:
    source = Path(__file__).parent.parent / "src" / "phaser"
    offenders = [
        str(path)
        for path in source.rglob("*.py")
        if "pickle" in path.read_text()
    ]
    assert offenders == []
