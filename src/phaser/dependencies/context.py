"""Per-request context: who is asking, the service, the public base URL.

The dependencies are ``async def`` although they never wait: FastAPI runs a
plain ``def`` dependency in a thread pool, and three thread hops per request
cost more than the rest of creating a job (benchmark B1).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..models.caller import Caller
from ..models.errors import PhaserError
from ..services.auth import Authenticator
from ..services.jobs import JobService
from ..services.operations import Operations
from ..services.waiting import JobWaiter

__all__ = [
    "BaseUrl",
    "CurrentCaller",
    "Ops",
    "Service",
    "Waiter",
    "public_base_url",
]

#: A host name or IPv4 address, or a bracketed IPv6 address, and a port.
_HOST = re.compile(
    r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::[0-9]{1,5})?$"
)

#: A path prefix: segments of unreserved characters and percent escapes.
_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)+$")


async def get_service(request: Request) -> JobService:
    """The job service built at start-up."""
    service: JobService = request.app.state.job_service
    return service


async def get_waiter(request: Request) -> JobWaiter:
    """Long polls and event streams, built at start-up."""
    waiter: JobWaiter = request.app.state.waiter
    return waiter


async def get_operations(request: Request) -> Operations:
    """Readiness, workers and statistics, built at start-up."""
    operations: Operations = request.app.state.operations
    return operations


async def get_caller(request: Request) -> Caller:
    """Who the request is, by the configured auth mode.

    Raises
    ------
    AuthenticationError
        Missing or wrong credentials (401).
    """
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.authenticate(request.headers)


async def public_base_url(request: Request) -> str:
    """Base URL for absolute links, without a trailing slash.

    ``PHASER_BASE_URL`` wins; otherwise the request's own URL, corrected by
    ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Prefix``
    as set by a reverse proxy. The headers only change the links in the
    answer to the request that carried them.
    """
    settings: Settings = request.app.state.settings
    if settings.base_url is not None:
        return str(settings.base_url).rstrip("/")
    headers = request.headers
    # From the scope, not request.url: building the URL object cost a
    # twentieth of a creation (B1).
    scheme = headers.get("x-forwarded-proto", request.scope["scheme"])
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host:
        host = request.url.netloc
    scheme = scheme.split(",")[0].strip().lower()
    host = host.split(",")[0].strip()
    prefix = headers.get("x-forwarded-prefix", "").split(",")[0].strip()
    # These end up in links inside XML and JSON answers: anything but a
    # plain scheme, host name (or address) and port, and path is refused.
    if scheme not in {"http", "https"}:
        raise PhaserError("Invalid X-Forwarded-Proto: expected http or https")
    if not _HOST.fullmatch(host):
        raise PhaserError("Invalid Host (or X-Forwarded-Host) header")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise PhaserError("Invalid X-Forwarded-Prefix header")
    root = request.scope.get("root_path", "")
    return f"{scheme}://{host}{prefix.rstrip('/')}{root.rstrip('/')}"


Service = Annotated[JobService, Depends(get_service)]
Waiter = Annotated[JobWaiter, Depends(get_waiter)]
Ops = Annotated[Operations, Depends(get_operations)]
CurrentCaller = Annotated[Caller, Depends(get_caller)]
BaseUrl = Annotated[str, Depends(public_base_url)]
