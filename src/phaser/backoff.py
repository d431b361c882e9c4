"""Waiting between attempts to reach Redis again."""

from __future__ import annotations

import asyncio

__all__ = ["Backoff"]


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
