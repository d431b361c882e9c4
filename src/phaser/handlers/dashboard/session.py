"""The front page, the static files and (``token`` mode) logging in and
out."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from ...dependencies.browser import (
    TOKEN_COOKIE,
    check_csrf,
)
from ...dependencies.context import BaseUrl
from ...models.errors import (
    AuthenticationError,
    NotFoundError,
)
from ...services.auth import Authenticator
from .common import (
    NEXT,
    PageRoute,
    base_path,
    html_page,
    redirect,
    secure,
)

__all__ = ["router"]

STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- pages --------------------------------------------------------------------


@router.get("/")
async def root(request: Request) -> Response:
    """The dashboard is the front page."""
    root_path = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root_path}/ui", status_code=307)


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    """The dashboard's style sheet and script, from the package."""
    if name not in STATIC:
        raise NotFoundError(f"No static file {name!r}")
    data = resources.files("phaser.ui").joinpath("static", name).read_bytes()
    return Response(
        data,
        media_type=STATIC[name],
        headers={
            "Cache-Control": "public, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/ui/login")
async def login_page(
    request: Request,
    base_url: BaseUrl,
    next: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    request.state.base_url = base_url
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.mode != "token":
        return redirect(request, "/ui")
    return html_page(
        "login.html",
        request,
        next=next if NEXT.fullmatch(next) else "",
        message=None,
    )


@router.post("/ui/login")
async def login(
    request: Request,
    base_url: BaseUrl,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    request.state.base_url = base_url
    check_csrf(request, csrf)
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.mode != "token":
        return redirect(request, "/ui")
    target = next if NEXT.fullmatch(next) else ""
    try:
        authenticator.from_token(token.strip())
    except AuthenticationError:
        return html_page(
            "login.html",
            request,
            status=401,
            next=target,
            message="No user has that token.",
        )
    response = redirect(request, f"/ui{target}")
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        path=f"{base_path(request)}/ui",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )
    return response


@router.post("/ui/logout")
async def logout(
    request: Request,
    base_url: BaseUrl,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    request.state.base_url = base_url
    check_csrf(request, csrf)
    response = redirect(request, "/ui/login")
    response.delete_cookie(TOKEN_COOKIE, path=f"{base_path(request)}/ui")
    return response
