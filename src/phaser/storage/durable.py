"""Acknowledging a change only once it is as durable as configured.

With ``PHASER_DURABILITY=replicated`` every script that changes a job
(creation, transitions, results, deletion) is sent in one pipeline with
Redis ``WAIT``, on the same connection (``WAIT`` counts the writes of
its own connection), so the change is answered only once that many
replicas have it: one round trip, and a failover (Sentinel promoting a
replica) loses no acknowledged change. A change that is not confirmed
in time raises `NotReplicatedError` (a Redis error: clients are answered
503 with ``Retry-After``, workers retry), though it may already be on
the primary — hence idempotency keys. ``fast`` and ``fsync`` send no
``WAIT``.

Changes asked for in the same turn of the event loop go to Redis
together, in one pipeline (a group commit): under load a frontend
creates, and a worker starts and ends, many jobs at once, and one
command on its own costs the client ~100 µs of CPU (a pooled
connection, a write, a wake-up, a read) where in a pipeline of a few it
costs a fifth of that. Each script still runs atomically and answers its
own caller (a script's error goes to its caller alone); with
``replicated`` one ``WAIT`` at the end confirms them all. A change asked
for alone is sent alone, as before: nothing waits to be grouped.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

__all__ = ["Acknowledged", "NotReplicatedError"]


class NotReplicatedError(RedisError):
    """Fewer replicas than asked for confirmed a change in time."""


#: Most changes sent in one pipeline (a bigger burst goes as several).
_MOST_GROUPED = 256


@dataclass(slots=True)
class _Change:
    """One script call waiting for its group."""

    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]
    answer: asyncio.Future[Any]


class Acknowledged:
    """Runs write scripts at a durability, grouping concurrent ones (see
    the module doc).

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
        self._waiting: list[_Change] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def run(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """The script's answer, once the change is durable."""
        loop = asyncio.get_running_loop()
        change = _Change(script, keys, args, loop.create_future())
        self._waiting.append(change)
        if len(self._waiting) == 1:
            loop.call_soon(self._send_group)
        elif len(self._waiting) >= _MOST_GROUPED:
            self._send_group()
        return await change.answer

    def _send_group(self) -> None:
        group, self._waiting = self._waiting, []
        if not group:
            return  # sent already: it had grown to _MOST_GROUPED
        # In a context of its own, not the first caller's: the group
        # serves many callers.
        task = asyncio.create_task(
            self._answer(group), context=contextvars.Context()
        )
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _answer(self, group: list[_Change]) -> None:
        try:
            if len(group) == 1 and not self.replicas:
                [change] = group
                replies: list[Any] = [
                    await change.script(keys=change.keys, args=change.args)
                ]
            else:
                replies = await self._pipelined(group)
        except BaseException as exc:
            for change in group:
                if not change.answer.done():
                    if isinstance(exc, asyncio.CancelledError):
                        change.answer.cancel()
                    else:
                        change.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for change, reply in zip(group, replies, strict=True):
            if change.answer.done():
                continue
            if isinstance(reply, Exception):
                change.answer.set_exception(reply)
            else:
                change.answer.set_result(reply)

    async def _pipelined(self, group: list[_Change]) -> list[Any]:
        """The group's replies (a script's error as its reply), in one
        pipeline with ``WAIT`` if replicas must confirm; scripts Redis
        did not have (a restarted server) are loaded and their changes
        sent again."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for change in group:
                pipe.evalsha(
                    change.script.sha,
                    len(change.keys),
                    *change.keys,
                    *change.args,
                )
            if self.replicas:
                pipe.execute_command("WAIT", self.replicas, self._timeout_ms)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        if self.replicas:
            confirmed = replies.pop()
            if isinstance(confirmed, Exception):
                raise confirmed
            if int(confirmed) < self.replicas:
                # Every change made is unconfirmed; a script that failed
                # made none, and its caller hears its own error.
                replies = [
                    reply
                    if isinstance(reply, Exception)
                    else NotReplicatedError(
                        f"Change confirmed by {confirmed} of"
                        f" {self.replicas} replica(s) within"
                        f" {self._timeout_ms} ms"
                        " (PHASER_DURABILITY=replicated); it may or may"
                        " not last"
                    )
                    for reply in replies
                ]
        missing = [
            i
            for i, reply in enumerate(replies)
            if isinstance(reply, NoScriptError)
        ]
        if missing:
            # NOSCRIPT: the script did not run; nothing to undo.
            for script in {
                id(group[i].script): group[i].script for i in missing
            }.values():
                script.sha = await self._redis.script_load(script.script)
            again = await self._pipelined([group[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies
