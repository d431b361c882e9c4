"""Long polls of one job (``GET /api/v1/jobs/{id}?wait=…``) served ahead of
FastAPI's routing.

A frontend holds thousands of these at once, each for up to minutes. Under
FastAPI each open one kept about 29 KB: the frames of a dozen middleware
and routing layers, three `contextlib.AsyncExitStack`s, solved
dependencies. This layer answers a well-formed wait itself with what the
route does (`phaser.handlers.api.wait_answer`: the same caller, base URL,
waiter, rendering and error handlers), holding a few frames instead (B6).
Anything else — other parameters, a repeated one, a value that is not
plainly valid — goes on to FastAPI, which validates and answers it as
before; the answers are the same either way (``tests/test_access.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..dependencies.context import get_caller, public_base_url
from ..models.phase import ExecutionPhase
from ..services.ids import JOB_ID_PATTERN
from .ahead import StandIn, handled
from .api import wait_answer

__all__ = ["WaitFastPath"]

_PATH = re.compile(r"/api/v1/jobs/(" + JOB_ID_PATTERN.strip("^$") + ")")
#: Seconds as plain decimals (the route takes 0 < wait ≤ 86400; anything
#: else, such as ``1e3`` or ``inf``, is left to its validation).
_SECONDS = re.compile(r"[0-9]{1,5}(?:\.[0-9]{1,6})?")
_PHASES = {phase.value: phase for phase in ExecutionPhase}
_PARAMETERS = {"wait", "phase", "until"}


_ROUTE = StandIn("/api/v1/jobs/{job_id}")


@dataclass(frozen=True)
class _Wait:
    job_id: str
    seconds: float
    phase: ExecutionPhase | None
    final: bool


def _wait_asked(scope: Scope) -> _Wait | None:
    """The wait a request asks for, if it is one this layer answers."""
    if scope["method"] != "GET" or scope.get("root_path"):
        return None
    matched = _PATH.fullmatch(scope["path"])
    if matched is None:
        return None
    query = dict(
        pairs := parse_qsl(
            scope["query_string"].decode("latin-1"), keep_blank_values=True
        )
    )
    if len(query) != len(pairs) or not set(query) <= _PARAMETERS:
        return None
    wait, phase = query.get("wait", ""), query.get("phase")
    until = query.get("until", "change")
    if not _SECONDS.fullmatch(wait) or until not in {"change", "final"}:
        return None
    seconds = float(wait)
    if not 0 < seconds <= 86400 or (
        phase is not None and phase not in _PHASES
    ):
        return None
    return _Wait(
        job_id=matched.group(1),
        seconds=seconds,
        phase=_PHASES[phase] if phase is not None else None,
        final=until == "final",
    )


class WaitFastPath:
    """ASGI middleware: answers plain long polls of one job itself."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        asked = _wait_asked(scope) if scope["type"] == "http" else None
        if asked is None:
            await self._app(scope, receive, send)
            return
        await _answer(scope, receive, send, asked)


async def _answer(
    scope: Scope, receive: Receive, send: Send, asked: _Wait
) -> None:
    # Seen by the request metrics as the route it stands in for.
    _ROUTE.enter(scope, job_id=asked.job_id)
    request = Request(scope, receive)
    try:
        response = await wait_answer(
            request.app.state.waiter,
            await get_caller(request),
            asked.job_id,
            asked.seconds,
            phase=asked.phase,
            final=asked.final,
            base_url=await public_base_url(request),
        )
    except Exception as exc:
        response = await handled(request, exc)
    await response(scope, receive, send)
