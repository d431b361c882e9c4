"""What the layers that answer some requests ahead of FastAPI's routing
share (`phaser.handlers.fast_wait`, `phaser.handlers.fast_create`): how
they stand in for their route, and how their errors are answered."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

# FastAPI names a request's server span after the route its router
# selects; requests answered ahead of routing select theirs here.
from fastapi.telemetry._api import _route_selected
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

__all__ = ["StandIn", "handled"]


@dataclass(frozen=True)
class StandIn:
    """The route a request answered ahead of routing stands in for, as
    the request metrics read it (its template)."""

    path: str

    @property
    def path_format(self) -> str:
        return self.path

    def enter(self, scope: Scope, **path_params: str) -> None:
        """Mark the request as the route's (for the request metrics and
        the request's trace span, ``http.route``)."""
        scope["route"] = self
        scope["path_params"] = path_params
        _route_selected(scope=scope, path=self.path)


async def handled(request: Request, exc: Exception) -> Response:
    """The error's answer, by the application's own exception handlers
    (looked up by the error's class and its bases, as Starlette does);
    an error without one goes on up, as under FastAPI."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            answer = handler(request, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            assert isinstance(answer, Response)
            return answer
    raise exc
