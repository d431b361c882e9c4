"""The webhook outbox: deliveries waiting (or retrying) in Redis, and the
attempts made for each job.

``transition.lua`` writes a delivery (job, event, phase, when) and its
due time in the same step as the change it tells of; deliverers take
due ones with a lease (``take_due.lua``), and after an attempt either
drop the delivery (delivered, refused for good, given up) or make it due
again later. Nothing lives in a process's memory, so a delivery survives
any worker's and Redis' restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from ..clock import from_ms, to_ms
from .keys import KeyLayout
from .lua import script_text

__all__ = ["Delivery", "Subscription", "WebhookOutbox"]

#: Most attempts kept per job (the oldest are dropped).
_KEPT_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to tell a job's webhook."""

    id: str
    job_id: str
    event: str
    phase: str
    at: datetime
    attempt: int
    #: The standing subscription it is for ("": the job's own webhook).
    subscription: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """An owner's standing webhook: told of the events of every job of
    theirs (of one task, if ``task``)."""

    id: str
    owner: str | None
    url: str
    events: tuple[str, ...]
    task: str | None
    secret: str
    created_at: datetime


class WebhookOutbox:
    """Reads and writes of the outbox.

    Parameters
    ----------
    redis
        Client with ``decode_responses=True``.
    keys
        Key layout.
    """

    def __init__(self, redis: Redis, keys: KeyLayout) -> None:
        self._redis = redis
        self._prefix = keys.webhook_prefix
        self._take = redis.register_script(script_text("take_due.lua"))
        #: The script, for `phaser.storage.lua.load_scripts`.
        self.scripts = [self._take]

    async def take_due(
        self, now: datetime, *, lease: float, limit: int
    ) -> list[Delivery]:
        """Due deliveries, leased for ``lease`` seconds."""
        ids = await self._take(
            keys=[self._prefix + "due"],
            args=[to_ms(now), to_ms(now) + int(lease * 1000), limit],
        )
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(self._prefix + "d:" + delivery_id)
            rows = await pipe.execute()
        found = []
        for delivery_id, row in zip(ids, rows, strict=True):
            if not row:  # dropped meanwhile
                await self.drop(delivery_id)
                continue
            found.append(
                Delivery(
                    id=delivery_id,
                    job_id=row["job"],
                    event=row["event"],
                    phase=row["phase"],
                    at=from_ms(int(row["at"])),
                    attempt=int(row["attempt"]),
                    subscription=row.get("sub", ""),
                )
            )
        return found

    async def next_due(self) -> datetime | None:
        """When the first delivery is due, if there is one."""
        first = await self._redis.zrange(
            self._prefix + "due", 0, 0, withscores=True
        )
        return from_ms(int(first[0][1])) if first else None

    async def retry(self, delivery: Delivery, at: datetime) -> None:
        """Make a delivery due again at ``at`` (its next attempt)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._prefix + "d:" + delivery.id,
                "attempt",
                str(delivery.attempt + 1),
            )
            pipe.zadd(self._prefix + "due", {delivery.id: to_ms(at)}, xx=True)
            await pipe.execute()

    async def drop(self, delivery_id: str) -> None:
        """Forget a delivery (delivered, refused, given up, or its job is
        gone)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._prefix + "due", delivery_id)
            pipe.delete(self._prefix + "d:" + delivery_id)
            await pipe.execute()

    async def record(
        self, job_id: str, attempt: dict[str, Any], *, keep_until: datetime
    ) -> None:
        """Add an attempt to a job's record of them (kept until
        ``keep_until``: the job's destruction, or a day)."""
        key = self._prefix + "attempts:" + job_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(attempt, separators=(",", ":")))
            pipe.ltrim(key, -_KEPT_ATTEMPTS, -1)
            pipe.expireat(key, keep_until)
            await pipe.execute()

    async def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """A job's delivery attempts, oldest first (a subscription's:
        ``sub:`` + its id)."""
        rows: list[str] = await self._redis.lrange(  # type: ignore[misc]
            self._prefix + "attempts:" + job_id, 0, -1
        )
        return [json.loads(row) for row in rows]

    async def subscribe(self, subscription: Subscription) -> None:
        """Store (or replace) a standing subscription."""
        value = {
            "url": subscription.url,
            "events": list(subscription.events),
            "task": subscription.task,
            "secret": subscription.secret,
            "created": to_ms(subscription.created_at),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._subs(subscription.owner),
                subscription.id,
                json.dumps(value, separators=(",", ":")),
            )
            pipe.hset(
                self._prefix + "owners",
                subscription.id,
                subscription.owner or "",
            )
            await pipe.execute()

    async def subscription(self, sub_id: str) -> Subscription | None:
        """A subscription by id."""
        owner: str | None = await self._redis.hget(  # type: ignore[misc]
            self._prefix + "owners", sub_id
        )
        if owner is None:
            return None
        raw: str | None = await self._redis.hget(  # type: ignore[misc]
            self._subs(owner or None), sub_id
        )
        return _subscription(sub_id, owner or None, raw) if raw else None

    async def subscriptions(self, owner: str | None) -> list[Subscription]:
        """An owner's subscriptions, oldest first."""
        rows: dict[str, str] = await self._redis.hgetall(  # type: ignore[misc]
            self._subs(owner)
        )
        found = [_subscription(i, owner, raw) for i, raw in rows.items()]
        return sorted(found, key=lambda sub: (sub.created_at, sub.id))

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Delete a subscription (its pending deliveries are dropped when
        their turn comes) and its record of attempts."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._subs(subscription.owner), subscription.id)
            pipe.hdel(self._prefix + "owners", subscription.id)
            pipe.delete(self._prefix + "attempts:sub:" + subscription.id)
            await pipe.execute()

    def _subs(self, owner: str | None) -> str:
        return self._prefix + "subs:" + (owner or "")


def _subscription(sub_id: str, owner: str | None, raw: str) -> Subscription:
    value = json.loads(raw)
    return Subscription(
        id=sub_id,
        owner=owner,
        url=value["url"],
        events=tuple(value["events"]),
        task=value.get("task"),
        secret=value["secret"],
        created_at=from_ms(int(value["created"])),
    )
