"""Connection limits of the HTTP server: slow and stalled clients.

uvicorn closes idle keep-alive connections, but it waits forever for a
request whose headers or body stop arriving, and it accepts connections
until the process runs out of file descriptors. `GuardedProtocol` adds,
like nginx's ``client_header_timeout`` and ``client_body_timeout``:

- a header timeout: the request line and headers must arrive within it,
  counted from the connection's start or, on a kept-alive connection,
  from the first byte of the next request (the idle time between requests
  is bounded by the keep-alive timeout);
- a body timeout: the body must arrive within it once the headers have;
- a bound on open connections: past it, new connections are closed at
  once, before they hold any memory, and counted in
  ``phaser_http_connections_refused_total``.

A timed-out connection is closed without an answer (there is no request
to answer yet, or the route is still reading it; a client that stalled is
not listening either). Responses are never timed: long polls and event
streams last as long as they need.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .metrics import CONNECTIONS_REFUSED, CONNECTIONS_TIMED_OUT

__all__ = ["GuardedProtocol", "guarded_protocol", "raise_file_limit"]

_logger = structlog.get_logger("phaser.http")


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with header and body timeouts and a bound on
    open connections (class attributes, set by `guarded_protocol`)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            CONNECTIONS_REFUSED.inc()
            transport.abort()
            return
        self._arm(self.header_timeout, "header")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:
            self._arm(self.header_timeout, "header")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        # Disarmed again at once by on_message_complete when there is no
        # body (or all of it came with the headers).
        self._arm(self.body_timeout, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, stage: str) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._expire, stage)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _expire(self, stage: str) -> None:
        self._read_timer = None
        CONNECTIONS_TIMED_OUT.labels(stage).inc()
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(
    *, header_timeout: float, body_timeout: float, max_connections: int
) -> type[GuardedProtocol]:
    """A `GuardedProtocol` class with these limits, for uvicorn's
    ``http`` setting."""
    return type(
        "ConfiguredGuardedProtocol",
        (GuardedProtocol,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_connections": max_connections,
        },
    )


def raise_file_limit(connections: int) -> int:
    """Raise this process's open-file limit so that ``connections`` fit
    (plus room for Redis connections, logs and result files); the number
    of connections that fit after raising it as far as allowed."""
    headroom = 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + headroom
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = (
            wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        )
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    fitting = max(1, soft - headroom)
    _logger.warning(
        "Open-file limit too low for PHASER_HTTP_MAX_CONNECTIONS",
        wanted=connections,
        allowed=fitting,
    )
    return fitting
