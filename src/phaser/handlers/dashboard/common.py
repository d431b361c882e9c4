"""What every dashboard page shares: the route class that turns errors
into HTML pages, rendering with the security headers and the CSRF
cookie, the caller dependencies, and the statistics shared by open
overviews."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import structlog
from fastapi import Depends, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from redis.exceptions import RedisError

from ...clock import parse_time
from ...dependencies.browser import (
    CSRF_COOKIE,
    BrowserCaller,
    LoginRequiredError,
    check_csrf,
    csrf_value,
)
from ...dependencies.context import BaseUrl
from ...models.caller import Caller
from ...models.errors import (
    InvalidRequestError,
    PhaserError,
)
from ...models.text import clean_text
from ...services.auth import Authenticator
from ...services.operations import EVERYONE, Operations, Stats
from ...ui.render import environment
from ..routes import REDIS_DOWN, DialectRoute, validation_text

__all__ = [
    "KEEPALIVE",
    "NEXT",
    "STATS_TTL",
    "FormCaller",
    "PageCaller",
    "PageRoute",
    "StatsCache",
    "base_path",
    "csrf_of",
    "error_page",
    "event_stream",
    "finish",
    "form_time",
    "html_page",
    "is_stream",
    "owner_filter",
    "redirect",
    "render",
    "secure",
    "stats_cache",
    "to_login",
]

_logger = structlog.get_logger("phaser.http")

#: Seconds between keep-alive comments (and refreshes of the overview)
#: on an idle stream.
KEEPALIVE = 25.0

#: Seconds one owner's statistics are shared by the open overviews.
STATS_TTL = 1.0

NEXT = re.compile(r"^(?:/[A-Za-z0-9_.-]+){0,4}$")


class PageRoute(DialectRoute):
    """Routes whose errors are HTML pages (or, in ``token`` mode without a
    session, a redirect to the login form)."""

    def answer(self, request: Request, exc: Exception) -> Response:
        match exc:
            case LoginRequiredError():
                if request.method == "GET" and not is_stream(request):
                    return to_login(request, exc.message)
                return error_page(request, 401, exc.message)
            case PhaserError():
                return error_page(
                    request, exc.status_code, exc.message, exc.headers
                )
            case RequestValidationError():
                return error_page(request, 422, validation_text(exc, skip=1))
            case _:
                return error_page(
                    request, 503, REDIS_DOWN, {"Retry-After": "5"}
                )


# -- rendering --------------------------------------------------------------


def base_path(request: Request) -> str:
    """Path prefix of every dashboard link (``X-Forwarded-Prefix``, root
    path), from the public base URL."""
    base: str = (
        request.state.base_url if hasattr(request.state, "base_url") else ""
    )
    return urlsplit(base).path.rstrip("/")


def render(name: str, request: Request, **context: Any) -> str:
    caller: Caller | None = getattr(request.state, "caller", None)
    authenticator: Authenticator = request.app.state.authenticator
    csrf, _ = csrf_of(request)
    return (
        environment()
        .get_template(name)
        .render(
            base=base_path(request),
            caller=caller,
            auth_mode=authenticator.mode,
            csrf=csrf,
            **context,
        )
    )


def csrf_of(request: Request) -> tuple[str, bool]:
    if not hasattr(request.state, "csrf"):
        request.state.csrf = csrf_value(request)
    found: tuple[str, bool] = request.state.csrf
    return found


def html_page(
    name: str,
    request: Request,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    response = HTMLResponse(
        render(name, request, **context), status_code=status, headers=headers
    )
    finish(request, response)
    return response


def finish(request: Request, response: Response) -> None:
    """Security headers of every page; the CSRF cookie if it is new."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self';"
        " script-src 'self'; frame-ancestors 'none'; form-action 'self';"
        " base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    value, new = csrf_of(request)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            value,
            path=f"{base_path(request)}/ui",
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )


def secure(request: Request) -> bool:
    base: str = getattr(request.state, "base_url", "")
    return base.startswith("https:")


def error_page(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    if is_stream(request):
        return Response(
            clean_text(message),
            status_code=status,
            media_type="text/plain; charset=utf-8",
            headers=headers,
        )
    return html_page(
        "error.html",
        request,
        status=status,
        headers=headers,
        status_code=status,
        message=clean_text(message),
    )


def is_stream(request: Request) -> bool:
    return request.url.path.endswith("/stream")


def to_login(request: Request, message: str) -> Response:
    base = base_path(request)
    path = request.url.path.removeprefix(base).removeprefix("/ui")
    query = {"next": path} if path and NEXT.fullmatch(path) else {}
    response = RedirectResponse(
        f"{base}/ui/login?{urlencode(query)}".rstrip("?"), status_code=303
    )
    finish(request, response)
    return response


def redirect(request: Request, path: str) -> Response:
    response = RedirectResponse(f"{base_path(request)}{path}", status_code=303)
    finish(request, response)
    return response


async def _page_caller(
    request: Request, caller: BrowserCaller, base_url: BaseUrl
) -> Caller:
    """The caller of a page, remembered with the public base URL for the
    templates (links, the user's name)."""
    request.state.caller = caller
    request.state.base_url = base_url
    return caller


PageCaller = Annotated[Caller, Depends(_page_caller)]


async def _form_caller(
    request: Request,
    caller: PageCaller,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Caller:
    """The caller of a state-changing form, whose CSRF token matches."""
    check_csrf(request, csrf)
    return caller


FormCaller = Annotated[Caller, Depends(_form_caller)]


# -- shared pieces ------------------------------------------------------------


class StatsCache:
    """Statistics shared by every open overview of one owner for
    `STATS_TTL` seconds: a hundred tabs cost one computation."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str | None, bool, str | None], Any] = {}

    async def get(
        self,
        operations: Operations,
        caller: Caller,
        owner: str | None,
        max_age: float = STATS_TTL,
    ) -> Stats:
        key = (caller.name, caller.admin, owner)
        entry = self._entries.get(key)
        moment = time.monotonic()
        if (
            entry is None
            or moment - entry[0] > max_age
            # A computation that failed (Redis away) is not kept.
            or (entry[1].done() and entry[1].exception() is not None)
        ):
            task = asyncio.ensure_future(operations.stats(caller, owner))
            entry = (moment, task)
            self._entries[key] = entry
            if len(self._entries) > 1000:
                self._entries = {key: entry}
        stats: Stats = await asyncio.shield(entry[1])
        return stats


def stats_cache(request: Request) -> StatsCache:
    state = request.app.state
    if not hasattr(state, "ui_stats"):
        state.ui_stats = StatsCache()
    cached: StatsCache = state.ui_stats
    return cached


def owner_filter(caller: Caller, owner: str | None) -> str | None:
    """Whose jobs an admin asked for (`None`: their own)."""
    if not caller.admin or not owner:
        return None
    if owner != EVERYONE and not re.fullmatch(
        r"[A-Za-z0-9._@+-]{1,128}", owner
    ):
        raise InvalidRequestError(f"Invalid owner {owner!r}")
    return owner


def event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    """A live view's stream. If Redis goes away while it runs, the stream
    ends quietly (the browser connects again) instead of breaking off with
    an error in the log."""

    async def guarded() -> AsyncIterator[str]:
        try:
            async for chunk in body:
                yield chunk
        except (RedisError, OSError) as exc:
            _logger.warning(
                "Live view ended: Redis unreachable", error=str(exc)
            )

    return StreamingResponse(
        guarded(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def form_time(what: str, text: str) -> datetime:
    """A time from a form (a ``datetime-local`` field: no zone, meaning
    UTC) or a query (RFC 3339), as the API reads times
    (`phaser.clock.parse_time`).

    Raises
    ------
    InvalidRequestError
        Not a time, or not one that can be stored.
    """
    try:
        return parse_time(text)
    except ValueError as exc:
        raise InvalidRequestError(
            f"Invalid {what} {text!r}: expected e.g. 2026-11-29T20:00 ({exc})"
        ) from None
