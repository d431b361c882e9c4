"""Acknowledging a change only once it is as durable as configured.

With ``PHASER_DURABILITY=replicated`` every script that changes a job
(creation, transitions, results, deletion) is sent in one pipeline with
Redis ``WAIT``, on the same connection (``WAIT`` counts the writes of
its own connection), so the change is answered only once that many
replicas have it: one round trip, and a failover (Sentinel promoting a
replica) loses no acknowledged change. A change that is not confirmed
in time raises `NotReplicatedError` (a Redis error: clients are answered
503 with ``Retry-After``, workers retry), though it may already be on
the primary — hence idempotency keys. ``fast`` and ``fsync`` run the
script alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

__all__ = ["Acknowledged", "NotReplicatedError"]


class NotReplicatedError(RedisError):
    """Fewer replicas than asked for confirmed a change in time."""


class Acknowledged:
    """Runs write scripts at a durability (see the module doc).

    Parameters
    ----------
    redis
        Client the scripts are registered with.
    replicas
        Replicas that must confirm each change (0: none; don't wait).
    timeout
        Longest to wait for them (s).
    """

    def __init__(
        self, redis: Redis, *, replicas: int = 0, timeout: float = 2.0
    ) -> None:
        self._redis = redis
        self.replicas = replicas
        self._timeout_ms = max(1, int(timeout * 1000))

    async def run(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """The script's answer, once the change is durable."""
        if not self.replicas:
            return await script(keys=keys, args=args)
        async with self._redis.pipeline(transaction=False) as pipe:
            await script(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", self.replicas, self._timeout_ms)
            reply, confirmed = await pipe.execute()
        if int(confirmed) < self.replicas:
            raise NotReplicatedError(
                f"Change confirmed by {confirmed} of {self.replicas}"
                f" replica(s) within {self._timeout_ms} ms"
                " (PHASER_DURABILITY=replicated); it may or may not last"
            )
        return reply
