"""Which methods a path allows: ``OPTIONS`` and the ``Allow`` of 405s.

Starlette answers a method no route of a path has with 405 and the
methods of the first route whose path matched, and ``OPTIONS`` the same
way; phaser's paths have one route per method, so that ``Allow`` was
wrong. Here every route is asked.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.routing import Match

from ..models.errors import PhaserError

__all__ = ["allowed_methods", "router"]

router = APIRouter()


#: Methods a path may allow (OPTIONS is answered for every path).
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods the request's path allows, ``OPTIONS`` included (empty
    if no route has that path): each method is tried against every route,
    as routing would."""
    methods: set[str] = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        for route in request.app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                methods.add(method)
                break
    if methods:
        methods.add("OPTIONS")
    return sorted(methods)


class _NoSuchPathError(PhaserError):
    status_code = 404
    uws_status_code = 404
    slug = "not-found"
    title = "Not found"


@router.options(
    "/{path:path}",
    include_in_schema=False,
    status_code=204,
)
async def options(request: Request) -> Response:
    methods = allowed_methods(request)
    if not methods:
        raise _NoSuchPathError(f"No resource at {request.url.path}")
    return Response(status_code=204, headers={"Allow": ", ".join(methods)})
