"""Connecting to Redis: one server by URL, or the primary that Redis
Sentinel names.

Through Sentinel every new connection asks the sentinels for the current
primary, and a connection to a primary that was demoted is dropped on its
first write (redis-py turns the ``READONLY`` answer into a connection
error), so frontends, workers, the event subscriber and arq all follow a
failover by reconnecting, as they do after any outage; requests meanwhile
are answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import (
    BusyLoadingError,
    DataError,
    RedisError,
    ResponseError,
)
from redis.sentinel import Sentinel as SyncSentinel

from ..backends import Backends

__all__ = ["check_redis", "redis_pool", "sync_client"]

#: Seconds to connect (to Redis or a sentinel) before giving up.
_CONNECT_TIMEOUT = 2


def _sentinels(settings: Backends) -> list[tuple[str, int]]:
    found = []
    for item in settings.redis_sentinels:
        host, _, port = item.rpartition(":")
        found.append((host.strip("[]"), int(port)))
    return found


def _credentials(settings: Backends) -> dict[str, Any]:
    """User, password and database of ``PHASER_REDIS_URL``, for
    connections to the primary the sentinels name."""
    if settings.redis_url is None:
        return {}
    parts = urlsplit(settings.redis_url)
    found: dict[str, Any] = {}
    if parts.username:
        found["username"] = unquote(parts.username)
    if parts.password:
        found["password"] = unquote(parts.password)
    database = parts.path.strip("/")
    if database.isdigit():
        found["db"] = int(database)
    return found


class _PackedByHiredis:
    """Commands packed into Redis' protocol by hiredis, in C.

    redis-py's blocking connections do this when hiredis is installed; its
    asyncio connections pack every argument in Python (~1 µs each, and a
    job's creation script takes some 35). The bytes are the same: strings
    as UTF-8, numbers as their ``repr``, anything else refused with
    redis-py's `~redis.exceptions.DataError`.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py: a command name of several words ("CLIENT SETNAME")
        # is sent as several arguments.
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _packed(kind: type[AbstractConnection]) -> type[AbstractConnection]:
    """``kind`` of connection, packing with hiredis (one class a kind)."""
    if kind not in _PACKED:
        _PACKED[kind] = type(kind.__name__, (_PackedByHiredis, kind), {})
    return _PACKED[kind]


def redis_pool(
    settings: Backends, *, decode_responses: bool, **options: Any
) -> ConnectionPool:
    """A connection pool to Redis as the settings say (``options``: more
    connection settings, such as ``health_check_interval``)."""
    pool: ConnectionPool
    if settings.redis_sentinels:
        sentinel = Sentinel(
            _sentinels(settings),
            sentinel_kwargs={"socket_connect_timeout": _CONNECT_TIMEOUT},
        )
        pool = SentinelConnectionPool(
            settings.redis_sentinel_service,
            sentinel,
            decode_responses=decode_responses,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            **_credentials(settings),
            **options,
        )
    elif settings.redis_url is None:
        raise ValueError("PHASER_REDIS_URL is not set")
    else:
        pool = ConnectionPool.from_url(
            settings.redis_url,
            decode_responses=decode_responses,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            **options,
        )
    # The kind of connection (TCP, TLS, Unix socket, through Sentinel)
    # stays the URL's; only its packing changes.
    pool.connection_class = _packed(pool.connection_class)
    return pool


def sync_client(settings: Backends, *, timeout: float = 5) -> redis.Redis:
    """A blocking client, for checks before start-up."""
    if settings.redis_sentinels:
        sentinel = SyncSentinel(
            _sentinels(settings),
            sentinel_kwargs={"socket_connect_timeout": timeout},
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            **_credentials(settings),
        )
        return sentinel.master_for(settings.redis_sentinel_service)
    if settings.redis_url is None:
        raise ValueError("PHASER_REDIS_URL is not set")
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )


def check_redis(settings: Backends) -> str | None:
    """What keeps Redis from serving phaser as configured, in one line, or
    `None` (a server still loading its data will serve)."""
    where = "PHASER_REDIS_URL"
    if settings.redis_sentinels:
        where = "PHASER_REDIS_SENTINELS"
    try:
        client = sync_client(settings)
    except (RedisError, OSError) as exc:
        return f"{where}: cannot find the Redis primary ({exc})"
    try:
        client.ping()
        if settings.durability == "fsync":
            return _check_fsync(client)
        if settings.durability == "replicated":
            _warn_replicas(client, settings.durability_replicas)
    except BusyLoadingError:
        return None  # up, still loading its data: the server waits
    except (RedisError, OSError) as exc:
        return f"{where}: cannot reach Redis ({exc})"
    finally:
        client.close()
    return None


def _check_fsync(client: redis.Redis) -> str | None:
    try:
        found: dict[str, str] = {}
        for name in ("appendonly", "appendfsync"):
            found.update(client.config_get(name))  # type: ignore[arg-type]
    except ResponseError:
        # A managed Redis may not allow CONFIG: its provider's settings
        # decide, which phaser cannot see.
        print(
            "phaser: warning: PHASER_DURABILITY=fsync, and this Redis does"
            " not say how it writes its AOF (CONFIG is not allowed)",
            file=sys.stderr,
        )
        return None
    if found.get("appendonly") != "yes" or found.get("appendfsync") != (
        "always"
    ):
        return (
            "PHASER_DURABILITY=fsync: this Redis has appendonly"
            f" {found.get('appendonly')}, appendfsync"
            f" {found.get('appendfsync')}; set appendonly yes and"
            " appendfsync always on it, or choose another durability"
        )
    return None


def _warn_replicas(client: redis.Redis, wanted: int) -> None:
    info: dict[str, Any] = client.info("replication")  # type: ignore[assignment]
    replicas = int(info.get("connected_slaves", 0))
    if replicas < wanted:
        print(
            f"phaser: warning: PHASER_DURABILITY=replicated waits for"
            f" {wanted} replica(s), and the primary has {replicas} now:"
            " changes are answered 503 until enough are connected",
            file=sys.stderr,
        )
