"""A bounded queue of job events for one reader."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import JobEvent

__all__ = ["EventQueue"]


class EventQueue:
    """A bounded queue of events for one reader (a wait, a stream, a
    running job's watcher).

    What `asyncio.Queue` does for this, at a tenth of its memory: an
    `asyncio.Queue` holds three deques and an event, about 3 KB before the
    first item, and a frontend holds one for every open wait (benchmark
    B6: 10,000 of them). One reader only: one ``get`` at a time.
    """

    __slots__ = ("_items", "_waiter", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: list[JobEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put_nowait(self, event: JobEvent) -> None:
        """Add an event; `asyncio.QueueFull` if there is no room."""
        if self.full():
            raise asyncio.QueueFull
        self._items.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> JobEvent:
        """The oldest event; `asyncio.QueueEmpty` if there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> JobEvent:
        """The oldest event, once there is one."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)
