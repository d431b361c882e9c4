"""Changes asked for together go to Redis together (a group commit,
`phaser.storage.durable.Acknowledged`), and each caller still gets its own
answer: its reply, its script's error, or the group's failure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from phaser.embedded import EmbeddedRedis
from phaser.storage.durable import Acknowledged, NotReplicatedError

#: Sets KEYS[1] to ARGV[1], or fails for "bad" without changing anything.
_SET_OR_FAIL = """
if ARGV[1] == 'bad' then
  return redis.error_reply('refused ' .. KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    name = f"group{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(
        redis_server.url, decode_responses=True, client_name=name
    )
    yield client
    await client.aclose()


def _runner(
    redis: Redis, **options: Any
) -> tuple[Acknowledged, AsyncScript, str]:
    """A runner, the test script registered with its client, and a prefix
    for this test's keys."""
    return (
        Acknowledged(redis, **options),
        redis.register_script(_SET_OR_FAIL),
        uuid.uuid4().hex,
    )


async def _connections(redis: Redis) -> int:
    """Connections the client has open to Redis (by its name)."""
    name = redis.connection_pool.connection_kwargs["client_name"]
    listed = await redis.client_list()
    return sum(1 for client in listed if client["name"] == name)


async def test_changes_asked_together_go_together_each_answered(
    redis: Redis,
) -> None:
    ack, script, prefix = _runner(redis)
    values = ["bad" if i % 7 == 3 else f"v{i}" for i in range(50)]
    answers = await asyncio.gather(
        *(
            ack.run(script, [f"{prefix}:{i}"], [value])
            for i, value in enumerate(values)
        ),
        return_exceptions=True,
    )
    for i, (value, answer) in enumerate(zip(values, answers, strict=True)):
        stored = await redis.get(f"{prefix}:{i}")
        if value == "bad":
            # Its own error, naming its own key; nothing written.
            assert isinstance(answer, ResponseError)
            assert str(answer) == f"refused {prefix}:{i}"
            assert stored is None
        else:
            assert answer == value
            assert stored == value
    # Fifty changes at once took one connection: one pipeline. (Sent one
    # by one, each would have taken a pooled connection of its own.)
    assert await _connections(redis) == 1


async def test_a_group_is_sent_again_after_redis_forgot_the_script(
    redis: Redis,
) -> None:
    ack, script, prefix = _runner(redis)
    assert await ack.run(script, [f"{prefix}:first"], ["1"]) == "1"
    # As after a restart of Redis: the scripts it had are gone.
    await redis.script_flush()
    answers = await asyncio.gather(
        *(ack.run(script, [f"{prefix}:{i}"], [f"v{i}"]) for i in range(10))
    )
    assert answers == [f"v{i}" for i in range(10)]
    assert await redis.mget([f"{prefix}:{i}" for i in range(10)]) == answers


async def test_a_caller_that_leaves_does_not_take_the_group_with_it(
    redis: Redis,
) -> None:
    ack, script, prefix = _runner(redis)
    tasks = [
        asyncio.create_task(ack.run(script, [f"{prefix}:{i}"], [f"v{i}"]))
        for i in range(5)
    ]
    await asyncio.sleep(0)  # all five have asked
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [done[i] for i in (0, 1, 3, 4)] == ["v0", "v1", "v3", "v4"]


async def test_an_unconfirmed_group_fails_every_change_it_made(
    redis: Redis,
) -> None:
    # No replica confirms: every change of the group is refused as not
    # durable (it may be on the primary, as the error says).
    ack, script, prefix = _runner(redis, replicas=1, timeout=0.1)
    answers = await asyncio.gather(
        *(ack.run(script, [f"{prefix}:{i}"], [f"v{i}"]) for i in range(3)),
        ack.run(script, [f"{prefix}:alone"], ["bad"]),
        return_exceptions=True,
    )
    assert all(isinstance(a, NotReplicatedError) for a in answers[:3])
    assert "0 of 1 replica" in str(answers[0])
    # A script that failed is answered with its own error even so.
    assert isinstance(answers[3], ResponseError)
    assert not isinstance(answers[3], NotReplicatedError)


async def test_a_burst_goes_in_groups_of_bounded_size(redis: Redis) -> None:
    ack, script, prefix = _runner(redis)
    answers = await asyncio.gather(
        *(ack.run(script, [f"{prefix}:{i}"], [f"v{i}"]) for i in range(600))
    )
    assert answers == [f"v{i}" for i in range(600)]
    # 256 + 256 + 88: three pipelines, at most a connection each.
    assert 1 < await _connections(redis) <= 3
