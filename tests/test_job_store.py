"""The job store against a real Redis: compare-and-set and indexes."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from phaser.backends import Backends
from phaser.clock import now, to_ms
from phaser.embedded import EmbeddedRedis
from phaser.models.job import (
    MAX_MESSAGE_LENGTH,
    MAX_MESSAGES,
    AttemptRun,
    ErrorType,
    Job,
    JobError,
    JobMessage,
    JobResult,
    MessageLog,
    PhaseChange,
    Progress,
)
from phaser.models.phase import Action, ExecutionPhase
from phaser.services.ids import new_job_id
from phaser.storage.codec import _decode_strict, encode
from phaser.storage.connect import redis_pool
from phaser.storage.events import EventHub, created_channel, next_event
from phaser.storage.job_store import Created, JobStore, OverQuota, Quota
from phaser.storage.keys import KeyLayout, entry_name
from phaser.storage.transitions import (
    Changed,
    Claim,
    Stale,
    Transition,
    WrongPhase,
)

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


async def _count(
    store: JobStore, owner: str | None, phases: list[ExecutionPhase]
) -> tuple[int, int]:
    """An owner's jobs as Redis holds them: (in these phases, in all),
    from the phase counts and the owner index."""
    redis = store._redis
    counts = await redis.hmget(  # type: ignore[misc]
        store._keys.counts(owner), phases
    )
    total = await redis.zcard(store._keys.by_owner(owner))
    return sum(int(c or 0) for c in counts), int(total)


async def test_record_round_trips(store: JobStore) -> None:
    job = _job(owner="a:b*c")
    await store.create(job)
    assert await store.get(job.id) == job
    # Text of every kind passes through the creation script as it is.
    odd = "ünï ☃ 𝄞 tab\tnew\nline \\ \" ' {}[]"
    other = dataclasses.replace(
        _job(owner=odd),
        run_id=odd,
        description=odd,
        parameters={odd: [odd, 1.5, None]},
    )
    await store.create(other)
    assert await store.get(other.id) == other
    assert await store.get("missing") is None


def test_every_record_this_version_writes_is_read_strictly() -> None:
    """The field-by-field reading is for older or damaged records: what
    this version writes, sparse or full, reads back whole, the fast way."""
    at = now().replace(microsecond=123000)
    sparse = dataclasses.replace(_job(owner=None), parameters={})
    full = dataclasses.replace(
        _job(),
        phase=P.COMPLETED,
        destruction_time=at + timedelta(days=1),
        run_id="r",
        started_at=at,
        ended_at=at,
        quote=at,
        errors=[JobError(ErrorType.TRANSIENT, "flaky", "E", "detail")],
        progress=Progress(50.0, "half"),
        attempts=2,
        ignored=["X"],
        queue="q",
        claim="w/2/1",
        heartbeat_at=at,
        sync=True,
        run_after=at,
        priority=9,
        concurrency_key="k",
        limits={"g": 2},
        after=[_job().id],
        after_policy="any_end",
        parent_id=_job().id,
        has_dependants=True,
        # (children counts are the scripts' to write: not encoded)
        has_children=True,
        history=[PhaseChange(P.PENDING, at), PhaseChange(P.COMPLETED, at)],
        description="d",
        info=MessageLog().add(JobMessage(at, "i")),
        warnings=MessageLog().add(JobMessage(at, "w")),
        retain_after_end=60,
        no_abort="busy",
    )
    full = dataclasses.replace(
        full,
        created_at=at,
        results=[JobResult("out", 3, "text/plain", f"{full.id}/out")],
        runs=[AttemptRun(2, entry_name(full.id, 2), "w", at)],
    )
    for job in (sparse, full):
        assert _decode_strict(job.id, encode(job)) == job


async def test_only_one_of_racing_claims_wins(store: JobStore) -> None:
    job = _job()
    await store.create(job)
    await store.transitions.start(job)
    results = await asyncio.gather(
        *(
            store.transitions.claim(
                job, attempt=1, token=f"worker-{n}", at=now()
            )
            for n in range(20)
        )
    )
    winners = [r for r in results if isinstance(r, Changed)]
    assert len(winners) == 1
    assert {type(r) for r in results if r not in winners} == {WrongPhase}
    assert await _ids(store, job, P.EXECUTING) == [job.id]
    assert await _ids(store, job, P.QUEUED) == []


async def test_abort_racing_completion_leaves_one_final_phase(
    store: JobStore,
) -> None:
    for _ in range(20):
        job = _job()
        await store.create(job)
        await store.transitions.start(job)
        await store.transitions.claim(job, attempt=1, token="w", at=now())
        complete, abort = await asyncio.gather(
            store.transitions.finish(
                job, Action.COMPLETE, guard=Claim("w"), at=now()
            ),
            store.transitions.abort(job, at=now()),
        )
        assert isinstance(complete, Changed) != isinstance(abort, Changed)
        final = await store.get(job.id)
        assert final is not None
        expected = P.COMPLETED if isinstance(complete, Changed) else P.ABORTED
        assert final.phase == expected
        for phase in (P.EXECUTING, P.COMPLETED, P.ABORTED):
            listed = await _ids(store, job, phase)
            assert (job.id in listed) == (phase == expected)


async def test_lost_claim_cannot_write(store: JobStore) -> None:
    job = _job()
    await store.create(job)
    await store.transitions.start(job)
    await store.transitions.claim(job, attempt=1, token="new", at=now())
    stale = await store.transitions.finish(
        job, Action.COMPLETE, guard=Claim("old"), at=now()
    )
    assert isinstance(stale, Stale)
    current = await store.get(job.id)
    assert current is not None
    assert current.phase == P.EXECUTING


async def test_delete_removes_every_index_entry(
    store: JobStore, redis_server: EmbeddedRedis
) -> None:
    job = _job()
    await store.create(job)
    await store.transitions.start(job, {"destruction_time": now()})
    assert await store.delete(job) == P.QUEUED
    assert await store.delete(job) is None
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    prefix = store._keys.prefix  # the test's own prefix
    leftovers = [
        key
        async for key in redis.scan_iter(f"{prefix}:*")
        if (
            (await redis.type(key) == "zset")
            and await redis.zscore(key, job.id) is not None
        )
        or key.endswith(f":job:{job.id}")
    ]
    counts = await redis.hgetall(store._keys.counts(job.owner))
    await redis.aclose()
    assert leftovers == []
    assert {int(n) for n in counts.values()} == {0}


async def test_delete_many_removes_a_batch(store: JobStore) -> None:
    jobs = [_job(owner=f"o{n % 3}", task=f"t{n % 2}") for n in range(30)]
    for job in jobs:
        await store.create(job)
    phases = (await store.delete_many([*jobs[:20], _job()])).phases
    assert phases == [P.PENDING] * 20 + [None]
    assert [job.id for job in await store.get_many([j.id for j in jobs])] == [
        j.id for j in jobs[20:]
    ]
    for owner in ("o0", "o1", "o2"):
        mine = [j for j in jobs[20:] if j.owner == owner]
        assert await _count(store, owner, [P.PENDING]) == (
            len(mine),
            len(mine),
        )


async def test_record_with_results_and_errors_round_trips(
    store: JobStore,
) -> None:
    job = dataclasses.replace(
        _job(),
        phase=P.ERROR,
        results=[
            JobResult("result", 12, "text/plain", "x/1-result"),
            JobResult("extra", 3, "application/json", "elsewhere/other"),
        ],
        errors=[JobError(ErrorType.FATAL, "boom", code="E1", detail="d")],
        progress=Progress(50, "half"),
    )
    job = dataclasses.replace(
        job,
        results=[
            dataclasses.replace(job.results[0], key=f"{job.id}/1-result"),
            job.results[1],
        ],
    )
    await store.create(job)
    assert await store.get(job.id) == job


async def test_quota_is_exact_under_concurrent_creation(
    store: JobStore,
) -> None:
    quota = Quota(max_stored=100, max_active=5, active_phases=[P.PENDING])
    results = await asyncio.gather(
        *(store.create(_job(owner="q"), quota) for _ in range(20))
    )
    assert sum(isinstance(r, Created) for r in results) == 5
    refusals = [r for r in results if isinstance(r, OverQuota)]
    assert {r.limit for r in refusals} == {"active"}
    assert {r.count for r in refusals} == {5}
    assert await _count(store, "q", [P.PENDING]) == (5, 5)
    stored = Quota(max_stored=5, max_active=None, active_phases=[])
    refused = await store.create(_job(owner="q"), stored)
    assert refused == OverQuota("stored", 5)
    assert await _count(store, "q", [P.PENDING]) == (5, 5)


async def test_lists_by_task_or_phase_merge_the_indexes(
    store: JobStore,
) -> None:
    jobs = [_job(owner="m", task=("a", "b", "c")[n % 3]) for n in range(12)]
    for n, job in enumerate(jobs):
        await store.create(job)
        if n % 2:
            await store.transitions.start(job)

    async def listed(
        tasks: list[str] | None, phases: list[ExecutionPhase] | None
    ) -> list[str]:
        return await store.list_ids(
            owner="m",
            tasks=tasks,
            phases=phases,
            newer_than=None,
            older_than=None,
            limit=100,
        )

    # Ids sort by creation time; jobs made in the same millisecond sort by
    # their random part, so the expected order is the ids' own.
    def newest_first(chosen: list[Job]) -> list[str]:
        return sorted((j.id for j in chosen), reverse=True)

    queued = [j for n, j in enumerate(jobs) if n % 2]
    assert await listed(None, None) == newest_first(jobs)
    assert await listed(["a"], None) == newest_first(
        [j for j in jobs if j.task == "a"]
    )
    assert await listed(None, [P.QUEUED]) == newest_first(queued)
    assert await listed(["b", "c"], [P.PENDING]) == newest_first(
        [j for j in jobs if j.task in {"b", "c"} and j not in queued]
    )


def test_no_pickle_on_the_job_path() -> None:
    source = Path(__file__).parent.parent / "src" / "phaser"
    offenders = [
        str(path)
        for path in source.rglob("*.py")
        if "pickle" in path.read_text()
    ]
    assert offenders == []


async def test_history_records_each_phase_and_stays_bounded(
    store: JobStore,
) -> None:
    job = _job()
    job.history = [PhaseChange(P.PENDING, job.created_at)]
    await store.create(job)
    await store.transitions.start(job)
    await store.transitions.claim(job, attempt=1, token="w", at=now())
    await store.transitions.heartbeat(job, token="w", at=now())
    short = await store.get(job.id)
    assert short is not None
    # A transition that keeps the phase adds nothing.
    assert [c.phase for c in short.history] == [
        P.PENDING,
        P.QUEUED,
        P.EXECUTING,
    ]
    times = [c.at for c in short.history]
    assert times == sorted(times)
    assert times[0] == job.created_at
    assert times[-1] - job.created_at < timedelta(seconds=30)
    # Many retries: the first change and the latest ones are kept.
    for _ in range(120):
        await store.transitions.apply(job, Transition(Action.RETRY))
        await store.transitions.apply(job, Transition(Action.CLAIM))
    await store.transitions.abort(job, at=now())
    long = await store.get(job.id)
    assert long is not None
    phases = [c.phase for c in long.history]
    assert phases[0] == P.PENDING
    assert phases[-3:] == [P.QUEUED, P.EXECUTING, P.ABORTED]
    assert 10 < len(phases) < 100  # of 244
    raw = await store._redis.hget(  # type: ignore[misc]
        store._keys.record(job.id), "history"
    )
    assert len(raw) <= 200
    assert "~" in raw


async def test_creations_are_read_only_while_live_views_are_open(
    store: JobStore, redis_server: EmbeddedRedis
) -> None:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    channel = created_channel(store._keys.events)
    hub = EventHub(redis, store._keys.events)
    await hub.start()

    async def readers() -> int:
        counts = await redis.pubsub_numsub(channel)
        return int(counts[0][1])

    try:
        assert await readers() == 0
        async with hub.subscribe_owner("ann") as events:
            assert await readers() == 1  # confirmed before the view reads
            job = _job(owner="ann")
            await store.create(job)
            event = await next_event(events, 10)
            assert event is not None
            assert (event.job_id, event.kind, event.owner) == (
                job.id,
                "created",
                "ann",
            )
            # Another owner's creations are not this view's.
            await store.create(_job(owner="bob"))
            await store.transitions.start(job)
            event = await next_event(events, 10)
            assert event is not None
            assert (event.job_id, event.kind) == (job.id, "phase")
        for _ in range(200):
            if await readers() == 0:
                break
            await asyncio.sleep(0.01)
        assert await readers() == 0
    finally:
        await hub.stop()
        await redis.aclose()


async def test_workers_hear_only_what_others_do_to_running_jobs(
    store: JobStore, redis_server: EmbeddedRedis
) -> None:
    """A worker's hub (running events only) hears a running job's abort,
    deletion, suspension and a deadline's end by maintenance, but
    neither other jobs' changes nor the running worker's own."""
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    hub = EventHub(redis, store._keys.events, running_only=True)
    await hub.start()

    async def running(token: str) -> Job:
        job = _job()
        await store.create(job)
        await store.transitions.start(job)
        await store.transitions.claim(job, attempt=1, token=token, at=now())
        return job

    try:
        quiet, loud = await running("q"), await running("l")
        pending = _job()
        await store.create(pending)
        async with (
            hub.subscribe(quiet.id) as quiet_events,
            hub.subscribe(pending.id) as pending_events,
            hub.subscribe(loud.id) as loud_events,
        ):
            # Not heard: the holder's own progress and end, a job that
            # was not running.
            await store.transitions.report_progress(
                quiet, token="q", progress=Progress(50, "half")
            )
            await store.transitions.finish(
                quiet, Action.COMPLETE, guard=Claim("q"), at=now()
            )
            await store.transitions.start(pending)
            await store.delete(pending)
            # Heard: anyone else's change of a running job.
            await store.transitions.apply(loud, Transition(Action.SUSPEND))
            await store.transitions.apply(loud, Transition(Action.RESUME))
            await store.transitions.finish(
                loud,
                Action.ABORT,
                guard=Claim("l", holder=False),
                at=now(),
            )
            heard = [await next_event(loud_events, 10) for _ in range(3)]
            assert [(e.kind, e.phase) for e in heard if e] == [
                ("phase", P.SUSPENDED),
                ("phase", P.EXECUTING),
                ("phase", P.ABORTED),
            ]
            # Events arrive in order: all earlier ones have been handed on.
            assert quiet_events.empty()
            assert pending_events.empty()
            # A client's abort and a deletion of running jobs.
            aborted, deleted = await running("a"), await running("d")
            async with (
                hub.subscribe(aborted.id) as aborted_events,
                hub.subscribe(deleted.id) as deleted_events,
            ):
                await store.transitions.abort(aborted, at=now())
                await store.delete(deleted)
                event = await next_event(aborted_events, 10)
                assert event is not None
                assert event.phase == P.ABORTED
                event = await next_event(deleted_events, 10)
                assert event is not None
                assert event.kind == "deleted"
    finally:
        await hub.stop()
        await redis.aclose()


async def test_messages_retention_and_attempt_runs_round_trip(
    store: JobStore,
) -> None:
    at = now().replace(microsecond=0)
    log = MessageLog()
    for number in range(MAX_MESSAGES + 3):
        log = log.add(JobMessage(at, f"line {number}"))
    assert log.dropped == 3
    job_id = _job().id
    job = dataclasses.replace(
        _job(),
        id=job_id,
        description="field 7",
        info=log,
        warnings=MessageLog().add(JobMessage(at, "x" * 5000)),
        retain_after_end=60,
        no_abort="migrating",
        attempts=1,
        runs=[AttemptRun(1, entry_name(job_id, 1), "host-1", at)],
    )
    await store.create(job)
    read = await store.get(job.id)
    assert read == job
    assert read is not None
    assert len(read.warnings.items[0].text) == MAX_MESSAGE_LENGTH
    # A claim adds its run (a field of its own: each value stays short,
    # and so does the record's encoding).
    await store.transitions.start(job)
    await store.transitions.claim(
        job,
        attempt=2,
        token="w",
        at=at,
        run=AttemptRun(2, entry_name(job_id, 2), "host-2", at),
    )
    claimed = await store.get(job.id)
    assert claimed is not None
    assert [(r.entry, r.worker) for r in claimed.runs] == [
        (f"{job_id}.1", "host-1"),
        (f"{job_id}.2", "host-2"),
    ]
    # Leaving EXECUTING drops the task's say on aborts; ending brings
    # the destruction forward to the retention.
    await store.transitions.finish(
        job, Action.COMPLETE, guard=Claim("w"), at=now()
    )
    ended = await store.get(job.id)
    assert ended is not None
    assert ended.no_abort is None
    assert ended.destruction_time is not None
    assert ended.ended_at is not None
    kept = ended.destruction_time - ended.ended_at
    assert timedelta(seconds=59) < kept < timedelta(seconds=61)


async def test_an_abort_asked_for_is_refused_while_the_task_says_so(
    store: JobStore,
) -> None:
    job = _job()
    await store.create(job)
    await store.transitions.start(job)
    await store.transitions.claim(job, attempt=1, token="w", at=now())
    await store.transitions.report(
        job, token="w", fields={"no_abort": "migrating"}
    )
    refused = await store.transitions.abort(job, at=now(), asked=True)
    assert refused == Stale(P.EXECUTING, "migrating")
    # A limit does not ask.
    stopped = await store.transitions.abort(job, at=now())
    assert isinstance(stopped, Changed)
    assert stopped.job.no_abort is None


async def test_children_counts_follow_every_change_and_make_no_ghosts(
    store: JobStore,
) -> None:
    parent = _job()
    await store.create(parent)
    kids = [dataclasses.replace(_job(), parent_id=parent.id) for _ in range(4)]
    for kid in kids:
        await store.create(kid)

    async def counts() -> dict[ExecutionPhase, int]:
        read = await store.get(parent.id)
        assert read is not None
        assert read.has_children
        return read.children

    assert await counts() == {P.PENDING: 4}
    await store.transitions.start(kids[0])
    await store.transitions.claim(kids[0], attempt=1, token="w", at=now())
    await store.transitions.abort(kids[1], at=now())
    await store.transitions.start(kids[2])
    assert await counts() == {
        P.PENDING: 1,
        P.EXECUTING: 1,
        P.ABORTED: 1,
        P.QUEUED: 1,
    }
    await store.transitions.finish(
        kids[0], Action.COMPLETE, guard=Claim("w"), at=now()
    )
    await store.delete(kids[1])
    assert await counts() == {P.PENDING: 1, P.COMPLETED: 1, P.QUEUED: 1}
    # Counted by the indexes' own totals as well.
    assert (
        await store.counting.children(parent.owner, parent.id, [P.QUEUED]) == 1
    )
    assert await store.counting.children("bob", parent.id, [P.QUEUED]) == 0
    # With the parent gone, its children's changes make no record again.
    await store.delete(parent)
    await store.transitions.abort(kids[2], at=now())
    await store.delete(kids[3])
    assert await store.get(parent.id) is None
    assert await store._redis.exists(store._keys.record(parent.id)) == 0


async def test_a_small_finished_job_keeps_the_compact_hash_encoding(
    store: JobStore,
) -> None:
    # Redis keeps a hash with values of at most 64 bytes as a listpack (a
    # third of the memory of a hash table): a job with its attempt's
    # worker (a Kubernetes pod's name and a pid), a result and a history
    # stays one.
    job = _job()
    await store.create(job)
    await store.transitions.start(job)
    worker = "phaser-worker-7d9f8b6c5-x2x4z-4711"
    await store.transitions.claim(
        job,
        attempt=1,
        token="w",
        at=now(),
        run=AttemptRun(1, entry_name(job.id, 1), worker, now()),
    )
    await store.transitions.add_result(
        job,
        token="w",
        result=JobResult("result", 12, "text/plain", f"{job.id}/1-result"),
    )
    await store.transitions.finish(
        job, Action.COMPLETE, guard=Claim("w"), at=now()
    )
    done = await store.get(job.id)
    assert done is not None
    assert [r.worker for r in done.runs] == [worker]
    record = store._keys.record(job.id)
    # (``ziplist`` before Redis 7).
    encoding = await store._redis.object("encoding", record)
    assert encoding in {"listpack", "ziplist"}


async def test_pools_pack_commands_as_redis_py_does(
    redis_server: EmbeddedRedis,
) -> None:
    """phaser's pools pack commands with hiredis (in C): the same bytes
    redis-py's own packing makes, values that round-trip through a real
    Redis, and redis-py's error for a value Redis cannot take."""
    settings = Backends(redis_url=redis_server.url)
    pool = redis_pool(settings, decode_responses=False)
    assert issubclass(pool.connection_class, Connection)  # still TCP
    # The pool's packer is its own (else the comparisons below would
    # compare redis-py's packer with itself).
    assert pool.connection_class.pack_command is not Connection.pack_command
    ours, theirs = pool.connection_class(), Connection()
    values: list[str | bytes | int | float] = [
        "",
        "é ☃ \r\n$3\r\n",
        b"\x00\xff\r\n*1",
        0,
        -7,
        2**70,
        0.1,
        1e300,
        -0.0,
    ]
    for value in values:
        assert ours.pack_command("SET", "k", value) == [
            b"".join(theirs.pack_command("SET", "k", value))
        ]
    redis = Redis(connection_pool=pool)
    key = f"packed:{uuid.uuid4().hex}"
    try:
        for value in values:
            await redis.set(key, value)
            assert await redis.get(key) == theirs.encoder.encode(value)
        # A command name of two words is sent as two arguments.
        assert await redis.execute_command("CLIENT SETNAME", "packed")
        assert await redis.execute_command("CLIENT GETNAME") == "packed"
        with pytest.raises(DataError):
            await redis.set(key, True)
        assert await redis.get(key) == theirs.encoder.encode(-0.0)
    finally:
        await redis.delete(key)
        await redis.aclose()
