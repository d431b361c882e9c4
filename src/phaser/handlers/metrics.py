"""Prometheus ``/metrics`` of the frontend, and HTTP request timing."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..dependencies.context import Ops, get_caller
from ..metrics import CONTENT_TYPE_LATEST, HTTP_REQUEST_DURATION, render
from ..models.errors import ForbiddenError

__all__ = ["RequestMetricsMiddleware", "router"]

router = APIRouter()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "This process's metrics in Prometheus' text format; queue depths"
        " and worker silence are read from Redis at each scrape. Open"
        " unless ``PHASER_PUBLIC_METRICS=false`` (then admins only)."
    ),
    response_class=Response,
    include_in_schema=False,
)
async def metrics(request: Request, operations: Ops) -> Response:
    settings: Settings = request.app.state.settings
    if settings.auth != "none" and not settings.public_metrics:
        caller = await get_caller(request)
        if not caller.admin:
            raise ForbiddenError("Metrics are for admins only")
    await operations.measure()
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Times every HTTP request by method, route template and status.

    The route template (``/api/v1/jobs/{job_id}``), not the path, so that
    job ids do not make a label value each; requests no route matched
    count as ``unmatched``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            HTTP_REQUEST_DURATION.labels(
                scope["method"], _template(scope), str(status)
            ).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The matched route's path template, with its router's prefix.

    FastAPI's included routers keep their routes' paths without the
    prefix (``/jobs/{job_id}`` under ``/api/v1``); the prefix is what the
    request path has before the part the route matched.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or path is None:
        return "unmatched"
    try:
        matched = route.path_format.format(**scope.get("path_params", {}))
    except (AttributeError, KeyError, IndexError, ValueError):
        return str(path)
    request_path: str = scope["path"]
    if matched and request_path.endswith(matched):
        return request_path[: len(request_path) - len(matched)] + path
    return str(path)
