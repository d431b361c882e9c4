"""Waiting between attempts: to reach Redis again, to run a job again,
to deliver a webhook again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.exceptions import RedisError

__all__ = ["Backoff", "delay_after", "patiently"]

_logger = structlog.get_logger("phaser")

_T = TypeVar("_T")


def delay_after(
    attempt: int, *, first: float, most: float, jitter: float = 0.0
) -> float:
    """Seconds to wait after attempt ``attempt`` (1 for the first):
    ``first`` doubling each time, at most ``most``, then spread by
    ± ``jitter`` (a fraction) so that many retries do not come at once."""
    delay = min(most, first * 2 ** (attempt - 1))
    if jitter:
        delay *= random.uniform(1 - jitter, 1 + jitter)  # noqa: S311
    return float(delay)


class Backoff:
    """Waits that double after each failure, from ``first`` up to ``most``
    seconds, and start again from ``first`` after a success.

    Parameters
    ----------
    first
        The first wait (s).
    most
        The longest wait (s).
    """

    def __init__(self, first: float = 0.1, most: float = 2.0) -> None:
        self._first = first
        self._most = most
        self._delay = first

    async def wait(self) -> None:
        """Wait before the next attempt (longer each time)."""
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, self._most)

    def reset(self) -> None:
        """It worked: the next failure waits ``first`` again."""
        self._delay = self._first


async def patiently(
    operation: Callable[[], Awaitable[_T]], patience: float = 60.0
) -> _T:
    """Run a Redis operation, retrying through an outage of up to
    ``patience`` seconds.

    Only for operations that are safe to repeat (reads, and writes guarded
    by a compare-and-set).
    """
    backoff = Backoff()
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            _logger.warning("Redis unavailable, retrying", error=str(exc))
            await backoff.wait()
