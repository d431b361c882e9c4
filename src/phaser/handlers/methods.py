"""Which methods a path allows: ``OPTIONS`` and the ``Allow`` of 405s.

Starlette answers a method no route of a path has with 405 and the
methods of the first route whose path matched, and ``OPTIONS`` the same
way; phaser's paths have one route per method, so that ``Allow`` was
wrong. Here every route is asked. `method_not_allowed` answers both: 204
with ``Allow`` for ``OPTIONS`` (a path nothing serves stays 404), 405 with
``Allow`` for any other method.
"""

from __future__ import annotations

from fastapi import Request, Response
from starlette.routing import Match

__all__ = ["allowed_methods", "options_response"]


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


def options_response(request: Request) -> Response | None:
    """The answer to ``OPTIONS`` on a path some route serves."""
    if request.method != "OPTIONS":
        return None
    methods = allowed_methods(request)
    if not methods:
        return None
    return Response(status_code=204, headers={"Allow": ", ".join(methods)})
