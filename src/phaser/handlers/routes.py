"""Routes that answer their errors in their own dialect.

The app answers errors as problem+json (`phaser.handlers.problems`); UWS
routes answer ``text/plain`` with UWS status codes, dashboard pages answer
HTML. Both come from one route class: a subclass says how to answer
(`answer`), the class catches the same errors for each.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from ..models.errors import PhaserError

_logger = structlog.get_logger("phaser.http")

__all__ = [
    "DIALECT_ERRORS",
    "REDIS_DOWN",
    "DialectRoute",
    "dialect_answer",
    "validation_text",
]

#: What every dialect says when the job store cannot be reached (503).
REDIS_DOWN = "The job store (Redis) cannot be reached; try again shortly"


def validation_text(exc: RequestValidationError, skip: int = 0) -> str:
    """A request validation error in one line: ``where: what; …``
    (``skip`` leading parts of each location left out)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][skip:])}: {e['msg']}"
        for e in exc.errors()
    )


class DialectRoute(APIRoute):
    """A route whose errors a subclass answers (`answer`): phaser's own
    errors, invalid requests, and Redis being unreachable (503 with
    ``Retry-After``)."""

    def answer(self, request: Request, exc: Exception) -> Response:
        """The answer to an error raised while handling ``request``."""
        raise NotImplementedError

    def prepare(self, request: Request) -> None:
        """Adjust a request before its parameters are read (nothing by
        default)."""

    def get_route_handler(
        self,
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            self.prepare(request)
            try:
                return await handler(request)
            except DIALECT_ERRORS as exc:
                return dialect_answer(self.answer, request, exc)

        return route


#: The errors a dialect's routes answer in their own way (`DialectRoute`).
DIALECT_ERRORS = (PhaserError, RequestValidationError, RedisError)


def dialect_answer(
    answer: Callable[[Request, Exception], Response],
    request: Request,
    exc: Exception,
) -> Response:
    """The dialect's ``answer`` to one of `DIALECT_ERRORS` (a Redis
    outage logged)."""
    if isinstance(exc, RedisError):
        _logger.warning("Redis unreachable", error=str(exc))
    return answer(request, exc)
