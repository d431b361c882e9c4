"""The web dashboard at ``/ui``: overview, job list, job pages, submit
forms; server-rendered HTML (Jinja2) kept live by the server's event
stream, with a small script and a style sheet served from the package.

Pages are kept out of the OpenAPI document (they are for people). Their
errors are HTML pages with the same status codes the JSON API uses; in
``token`` mode a page without a session sends the browser to the login
form. See `phaser.dependencies.browser` for sessions and CSRF.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from ..dependencies.browser import (
    CSRF_COOKIE,
    TOKEN_COOKIE,
    BrowserCaller,
    LoginRequiredError,
    check_csrf,
    csrf_value,
)
from ..dependencies.context import BaseUrl, Service
from ..models.caller import Caller
from ..models.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PhaserError,
    UnknownTaskError,
)
from ..models.job import Job
from ..models.phase import FINAL_PHASES, ExecutionPhase
from ..models.text import clean_text
from ..services.auth import Authenticator
from ..services.ids import is_job_id
from ..services.jobs import EVERYONE, JobService, JobUpdate, Stats
from ..storage.events import JobEvent, next_event
from ..ui.forms import FormField, form_fields, read_form
from ..ui.preview import preview
from ..ui.render import chart, digest, environment, sse_event
from .results import result_response

__all__ = ["router"]

#: Seconds between keep-alive comments (and refreshes of the overview)
#: on an idle stream.
KEEPALIVE = 25.0

#: Most jobs a live list follows (the page's and those it gained).
_MAX_FOLLOWED = 500

#: Seconds one owner's statistics are shared by the open overviews.
_STATS_TTL = 1.0

_STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}

#: Longest execution duration a form may ask for (the JSON API's bound).
_MAX_DURATION = 10**9

_NEXT = re.compile(r"^(?:/[A-Za-z0-9_.-]+){0,4}$")


class _PageRoute(APIRoute):
    """Routes whose errors are HTML pages (or, in ``token`` mode without a
    session, a redirect to the login form)."""

    def get_route_handler(
        self,
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequiredError as exc:
                if request.method == "GET" and not _is_stream(request):
                    return _to_login(request, exc.message)
                return _error_page(request, 401, exc.message)
            except PhaserError as exc:
                return _error_page(
                    request, exc.status_code, exc.message, exc.headers
                )
            except RequestValidationError as exc:
                text = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                    for e in exc.errors()
                )
                return _error_page(request, 422, text)
            except RedisError:
                return _error_page(
                    request,
                    503,
                    "The job store (Redis) cannot be reached; try again"
                    " shortly",
                    {"Retry-After": "5"},
                )

        return route


router = APIRouter(route_class=_PageRoute, include_in_schema=False)


# -- rendering --------------------------------------------------------------


def _base_path(request: Request) -> str:
    """Path prefix of every dashboard link (``X-Forwarded-Prefix``, root
    path), from the public base URL."""
    base: str = (
        request.state.base_url if hasattr(request.state, "base_url") else ""
    )
    return urlsplit(base).path.rstrip("/")


def _render(name: str, request: Request, **context: Any) -> str:
    caller: Caller | None = getattr(request.state, "caller", None)
    authenticator: Authenticator = request.app.state.authenticator
    csrf, _ = _csrf(request)
    return (
        environment()
        .get_template(name)
        .render(
            base=_base_path(request),
            caller=caller,
            auth_mode=authenticator.mode,
            csrf=csrf,
            **context,
        )
    )


def _csrf(request: Request) -> tuple[str, bool]:
    if not hasattr(request.state, "csrf"):
        request.state.csrf = csrf_value(request)
    found: tuple[str, bool] = request.state.csrf
    return found


def _page(
    name: str,
    request: Request,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    response = HTMLResponse(
        _render(name, request, **context), status_code=status, headers=headers
    )
    _finish(request, response)
    return response


def _finish(request: Request, response: Response) -> None:
    """Security headers of every page; the CSRF cookie if it is new."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self';"
        " script-src 'self'; frame-ancestors 'none'; form-action 'self';"
        " base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    value, new = _csrf(request)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            value,
            path=f"{_base_path(request)}/ui",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )


def _secure(request: Request) -> bool:
    base: str = getattr(request.state, "base_url", "")
    return base.startswith("https:")


def _error_page(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    if _is_stream(request):
        return Response(
            clean_text(message),
            status_code=status,
            media_type="text/plain; charset=utf-8",
            headers=headers,
        )
    return _page(
        "error.html",
        request,
        status=status,
        headers=headers,
        status_code=status,
        message=clean_text(message),
    )


def _is_stream(request: Request) -> bool:
    return request.url.path.endswith("/stream")


def _to_login(request: Request, message: str) -> Response:
    base = _base_path(request)
    path = request.url.path.removeprefix(base).removeprefix("/ui")
    query = {"next": path} if path and _NEXT.fullmatch(path) else {}
    response = RedirectResponse(
        f"{base}/ui/login?{urlencode(query)}".rstrip("?"), status_code=303
    )
    _finish(request, response)
    return response


def _redirect(request: Request, path: str) -> Response:
    response = RedirectResponse(
        f"{_base_path(request)}{path}", status_code=303
    )
    _finish(request, response)
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


class _StatsCache:
    """Statistics shared by every open overview of one owner for
    `_STATS_TTL` seconds: a hundred tabs cost one computation."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str | None, bool, str | None], Any] = {}

    async def get(
        self,
        service: JobService,
        caller: Caller,
        owner: str | None,
        max_age: float = _STATS_TTL,
    ) -> Stats:
        key = (caller.name, caller.admin, owner)
        entry = self._entries.get(key)
        moment = time.monotonic()
        if entry is None or moment - entry[0] > max_age:
            task = asyncio.ensure_future(service.stats(caller, owner))
            entry = (moment, task)
            self._entries[key] = entry
            if len(self._entries) > 1000:
                self._entries = {key: entry}
        stats: Stats = await asyncio.shield(entry[1])
        return stats


def _stats_cache(request: Request) -> _StatsCache:
    state = request.app.state
    if not hasattr(state, "ui_stats"):
        state.ui_stats = _StatsCache()
    cached: _StatsCache = state.ui_stats
    return cached


def _owner(caller: Caller, owner: str | None) -> str | None:
    """Whose jobs an admin asked for (`None`: their own)."""
    if not caller.admin or not owner:
        return None
    if owner != EVERYONE and not re.fullmatch(
        r"[A-Za-z0-9._@+-]{1,128}", owner
    ):
        raise InvalidRequestError(f"Invalid owner {owner!r}")
    return owner


def _overview_live(request: Request, stats: Stats, owner: str | None) -> str:
    return _render(
        "_overview_live.html",
        request,
        stats=stats,
        owner=owner,
        chart=chart(stats),
        totals=stats.totals,
    )


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- pages --------------------------------------------------------------------


@router.get("/")
async def root(request: Request) -> Response:
    """The dashboard is the front page."""
    root_path = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root_path}/ui", status_code=307)


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    """The dashboard's style sheet and script, from the package."""
    if name not in _STATIC:
        raise NotFoundError(f"No static file {name!r}")
    data = resources.files("phaser.ui").joinpath("static", name).read_bytes()
    return Response(
        data,
        media_type=_STATIC[name],
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
        return _redirect(request, "/ui")
    return _page(
        "login.html",
        request,
        next=next if _NEXT.fullmatch(next) else "",
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
        return _redirect(request, "/ui")
    target = next if _NEXT.fullmatch(next) else ""
    try:
        authenticator.from_token(token.strip())
    except AuthenticationError:
        return _page(
            "login.html",
            request,
            status=401,
            next=target,
            message="No user has that token.",
        )
    response = _redirect(request, f"/ui{target}")
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        path=f"{_base_path(request)}/ui",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
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
    response = _redirect(request, "/ui/login")
    response.delete_cookie(TOKEN_COOKIE, path=f"{_base_path(request)}/ui")
    return response


@router.get("/ui")
async def overview(
    request: Request,
    service: Service,
    caller: PageCaller,
    owner: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    whose = _owner(caller, owner)
    stats = await _stats_cache(request).get(service, caller, whose)
    live = _overview_live(request, stats, whose)
    query = urlencode(
        {**({"owner": whose} if whose else {}), "shown": digest(live)}
    )
    return _page(
        "overview.html",
        request,
        live=live,
        stream=f"{_base_path(request)}/ui/stream?{query}",
        owners=await service.owners(caller),
        owner=whose,
        tasks=service.tasks(),
    )


@router.get("/ui/stream")
async def overview_stream(
    request: Request,
    service: Service,
    caller: PageCaller,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    shown: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The overview's live part, sent again whenever it changes."""
    whose = _owner(caller, owner)
    cache_ = _stats_cache(request)
    hub = service.hub

    # Woken by the events of the jobs counted; two places are enough: a
    # burst of events is one "something changed".
    subscription = (
        hub.subscribe_all(size=2)
        if whose == EVERYONE
        else hub.subscribe_owner(whose or caller.name, size=2)
    )

    async def body() -> AsyncIterator[str]:
        last = shown
        max_age = _STATS_TTL
        async with subscription as events:
            while True:
                stats = await cache_.get(service, caller, whose, max_age)
                html = _overview_live(request, stats, whose)
                if digest(html) != last:
                    yield sse_event("live", html)
                    last = digest(html)
                else:
                    yield ": keepalive\n\n"
                event = await next_event(events, KEEPALIVE)
                if event is None:
                    # Nothing happened: what changes now is the passing
                    # of time, and one computation serves every tab.
                    max_age = KEEPALIVE
                    continue
                if event.kind == "closing":
                    return
                # Let a burst of events settle: at most one refresh a
                # second.
                max_age = _STATS_TTL
                await asyncio.sleep(_STATS_TTL)
                while not events.empty():
                    if events.get_nowait().kind == "closing":
                        return

    return _stream(body())


def _form_time(what: str, text: str) -> datetime:
    """A time from a form (a ``datetime-local`` field: no zone, meaning
    UTC) or a query (RFC 3339).

    Raises
    ------
    InvalidRequestError
        Not a time.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"Invalid {what} {text!r}: expected e.g. 2026-11-29T20:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _job_filters(
    caller: Caller,
    task: str | None,
    phase: list[str],
    run_id: str | None,
    after: str | None,
    owner: str | None,
) -> dict[str, Any]:
    phases = []
    for value in phase:
        if value:
            try:
                phases.append(ExecutionPhase(value))
            except ValueError:
                raise InvalidRequestError(f"Unknown phase {value!r}") from None
    moment = _form_time("time", after) if after else None
    whose = _owner(caller, owner)
    if whose == EVERYONE:
        whose = None
    return {
        "task": task or None,
        "phases": phases or None,
        "run_id": run_id or None,
        "after": moment,
        "owner": whose,
    }


@router.get("/ui/jobs")
async def job_list(
    request: Request,
    service: Service,
    caller: PageCaller,
    task: Annotated[str | None, Query(max_length=64)] = None,
    phase: Annotated[list[str] | None, Query(max_length=20)] = None,
    run_id: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    if cursor and not is_job_id(cursor):
        raise InvalidRequestError(f"Invalid cursor {cursor!r}")
    filters = _job_filters(caller, task, phase or [], run_id, after, owner)
    page = await service.list(
        caller, cursor=cursor or None, limit=limit, **filters
    )
    shown = {
        "task": task or "",
        "phase": [p for p in (phase or []) if p],
        "run_id": run_id or "",
        "after": after or "",
        "owner": filters["owner"] or "",
    }
    query = [(k, v) for k, v in shown.items() if v and k != "phase"] + [
        ("phase", p) for p in shown["phase"]
    ]
    rows = [_row(request, job) for job in page.jobs]
    stream_query = [
        *query,
        ("ids", ",".join(j.id for j in page.jobs)),
        ("shown", digest("".join(rows))),
    ]
    if not cursor:
        stream_query.append(("new", "1"))
    return _page(
        "jobs.html",
        request,
        jobs=page.jobs,
        rows=rows,
        filters=shown,
        next_page=(
            urlencode([*query, ("cursor", page.next_cursor)])
            if page.next_cursor
            else None
        ),
        first_page=urlencode(query) if cursor else None,
        stream=f"{_base_path(request)}/ui/jobs/stream?{urlencode(stream_query)}",
        tasks=[t.name for t in service.tasks()],
        owners=await service.owners(caller),
    )


@router.get("/ui/jobs/stream")
async def job_list_stream(
    request: Request,
    service: Service,
    caller: PageCaller,
    ids: Annotated[str, Query(max_length=200 * 27)] = "",
    new: Annotated[bool, Query()] = False,
    task: Annotated[str | None, Query(max_length=64)] = None,
    phase: Annotated[list[str] | None, Query(max_length=20)] = None,
    run_id: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[str | None, Query(max_length=40)] = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    resync: Annotated[bool, Query()] = False,
    shown: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """Rows of a job list as their jobs change (and new jobs that match,
    on the first page)."""
    followed = {i for i in ids.split(",") if i}
    if not all(is_job_id(i) for i in followed) or len(followed) > 200:
        raise InvalidRequestError("Invalid job ids")
    filters = _job_filters(caller, task, phase or [], run_id, after, owner)
    whose = filters["owner"] if filters["owner"] else caller.name

    def matches(job: Job) -> bool:
        return (
            (filters["task"] is None or job.task == filters["task"])
            and (filters["phases"] is None or job.phase in filters["phases"])
            and (filters["run_id"] is None or job.run_id == filters["run_id"])
            and (filters["after"] is None or job.created_at > filters["after"])
        )

    def row(job: Job) -> str:
        return _row(request, job)

    # What the page showed may have changed before the stream began (or,
    # when a browser reconnects, or a hidden tab is shown again, while it
    # was closed): the rows are read and sent again unless they are what
    # the page shows (``shown``, the digest of its rows).
    again = resync or "last-event-id" in request.headers

    async def rows(unless: str = "") -> AsyncIterator[str]:
        ordered = sorted(followed, reverse=True)  # as the page lists them
        jobs = [await service.peek(caller, job_id) for job_id in ordered]
        html = [row(job) for job in jobs if job is not None]
        if not unless or digest("".join(html)) != unless:
            for job_id, job in zip(ordered, jobs, strict=True):
                yield (
                    sse_event("gone", job_id)
                    if job is None
                    else sse_event("row", row(job))
                )
        if new:
            # The first page: jobs created meanwhile go on top (ids sort
            # by creation time).
            newest = max(followed, default="")
            page = await service.list(caller, limit=50, **filters)
            for job in reversed(page.jobs):
                if job.id > newest and len(followed) < _MAX_FOLLOWED:
                    followed.add(job.id)
                    yield sse_event("new", row(job))

    async def changes(events: asyncio.Queue[JobEvent]) -> AsyncIterator[str]:
        while True:
            event = await next_event(events, KEEPALIVE)
            if event is None:
                yield ": keepalive\n\n"
                continue
            match event.kind:
                case "closing":
                    return
                case "resync":
                    async for line in rows():
                        yield line
                case "created":
                    if not new or len(followed) >= _MAX_FOLLOWED:
                        continue
                    job = await service.peek(caller, event.job_id)
                    if job is not None and matches(job):
                        followed.add(job.id)
                        yield sse_event("new", row(job))
                case "deleted" if event.job_id in followed:
                    yield sse_event("gone", event.job_id)
                case _ if event.job_id in followed:
                    job = await service.peek(caller, event.job_id)
                    yield (
                        sse_event("gone", event.job_id)
                        if job is None
                        else sse_event("row", row(job))
                    )

    async def body() -> AsyncIterator[str]:
        async with service.hub.subscribe_owner(whose) as events:
            yield "id: 1\n: live\n\n"
            async for line in rows("" if again else shown):
                yield line
            async for line in changes(events):
                yield line

    return _stream(body())


def _row(request: Request, job: Job) -> str:
    """One row of a job list."""
    return _render("_row.html", request, job=job)


def _job_context(
    request: Request, service: JobService, job: Job
) -> dict[str, Any]:
    previews = {}
    for result in job.results:
        path = service.result_path(result)
        if path is not None:
            previews[result.id] = preview(path, result.mime_type)
    history = [(change.phase.value, change.at) for change in job.history]
    if not history:  # a record of an older version: what its times say
        history = [("created", job.created_at)]
        if job.started_at:
            history.append(("EXECUTING", job.started_at))
        if job.ended_at:
            history.append((job.phase.value, job.ended_at))
    return {
        "job": job,
        "previews": previews,
        "history": history,
        "parameters_json": {
            name: json.dumps(value, ensure_ascii=False)
            if not isinstance(value, str)
            else value
            for name, value in job.parameters.items()
        },
    }


def _job_live(request: Request, service: JobService, job: Job) -> str:
    return _render(
        "_job_live.html", request, **_job_context(request, service, job)
    )


@router.get("/ui/jobs/{job_id}")
async def job_page(
    request: Request,
    job_id: str,
    service: Service,
    caller: PageCaller,
) -> Response:
    job = await service.get(caller, job_id)
    live = _job_live(request, service, job)
    return _page(
        "job.html",
        request,
        job=job,
        final=job.phase in FINAL_PHASES,
        live=live,
        stream=(
            f"{_base_path(request)}/ui/jobs/{job.id}/stream"
            f"?shown={digest(live)}"
        ),
    )


@router.get("/ui/jobs/{job_id}/stream")
async def job_stream(
    request: Request,
    job_id: str,
    service: Service,
    caller: PageCaller,
    shown: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The job page's live part, sent again at each change; ends after the
    job has ended."""
    stream = service.watch(caller, job_id)
    # Raises JobNotFoundError before streaming. The job as it is now is
    # sent too: it may have changed since the page was made.
    first = await anext(stream)

    async def body() -> AsyncIterator[str]:
        last = shown
        ended = False
        try:
            yield ": live\n\n"
            async for kind, job in _chain(first, stream):
                if kind == "keepalive":
                    yield ": keepalive\n\n"
                elif job is None:
                    yield sse_event("gone", job_id)
                else:
                    html = _job_live(request, service, job)
                    if digest(html) != last:
                        yield sse_event("live", html)
                        last = digest(html)
                    ended = job.phase in FINAL_PHASES
            if ended:
                # Otherwise the server stops: the browser reconnects.
                yield sse_event("end", "")
        finally:
            await stream.aclose()

    return _stream(body())


async def _chain(
    first: tuple[str, Job | None],
    rest: AsyncIterator[tuple[str, Job | None]],
) -> AsyncIterator[tuple[str, Job | None]]:
    yield first
    async for item in rest:
        yield item


@router.get("/ui/jobs/{job_id}/results/{result_id}")
async def download(
    request: Request,
    job_id: str,
    result_id: str,
    service: Service,
    caller: PageCaller,
) -> Response:
    result, path = await service.result(caller, job_id, result_id)
    return result_response(job_id, result, path)


@router.post("/ui/jobs/{job_id}/destruction")
async def destruction(
    request: Request,
    job_id: str,
    service: Service,
    caller: FormCaller,
    destruction_time: Annotated[str, Form(max_length=40)],
) -> Response:
    moment = _form_time("destruction time", destruction_time)
    job = await service.update(
        caller, job_id, JobUpdate(destruction_time=moment)
    )
    return _redirect(request, f"/ui/jobs/{job.id}")


_CONFIRM = {
    "abort": (
        "Abort",
        "The job stops; a running task is cancelled. This cannot be undone.",
    ),
    "delete": (
        "Delete",
        "The job and its results are removed for good (a running job is"
        " aborted first).",
    ),
}


@router.get("/ui/jobs/{job_id}/{action}")
async def confirm(
    request: Request,
    job_id: str,
    action: str,
    service: Service,
    caller: PageCaller,
) -> Response:
    """Ask before a destructive action."""
    if action not in _CONFIRM:
        raise NotFoundError(f"No page {action!r}")
    job = await service.get(caller, job_id)
    verb, consequence = _CONFIRM[action]
    return _page(
        "confirm.html",
        request,
        job=job,
        action=action,
        verb=verb,
        consequence=consequence,
    )


@router.post("/ui/jobs/{job_id}/{action}")
async def act(
    request: Request,
    job_id: str,
    action: str,
    service: Service,
    caller: FormCaller,
) -> Response:
    """Start, abort or delete a job (the forms of its page and of the
    confirmation pages)."""
    match action:
        case "start":
            await service.start(caller, job_id)
        case "abort":
            await service.abort(caller, job_id)
        case "delete":
            await service.delete(caller, job_id)
            return _redirect(request, "/ui/jobs")
        case _:
            raise NotFoundError(f"No action {action!r}")
    return _redirect(request, f"/ui/jobs/{job_id}")


@router.get("/ui/tasks/{task}")
async def submit_page(
    request: Request,
    task: str,
    service: Service,
    caller: PageCaller,
) -> Response:
    try:
        definition = service.task(task)
    except UnknownTaskError as exc:
        raise NotFoundError(exc.message) from None
    return _page(
        "submit.html",
        request,
        task=definition,
        fields=form_fields(definition.parameters_schema()),
        values={},
        problems={},
        message=None,
    )


@router.post("/ui/tasks/{task}")
async def submit(
    request: Request,
    task: str,
    service: Service,
    caller: FormCaller,
) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        definition = service.task(task)
    except UnknownTaskError as exc:
        raise NotFoundError(exc.message) from None
    fields: list[FormField] = form_fields(definition.parameters_schema())
    parameters, problems = read_form(fields, values)
    message = None
    duration = values.get("execution_duration", "").strip()
    if duration and not (
        duration.isascii()
        and duration.isdigit()
        and int(duration) <= _MAX_DURATION
    ):
        message = (
            "Execution duration must be a whole number of seconds from 0"
            f" to {_MAX_DURATION}"
        )
    elif not problems:
        try:
            job = await service.create(
                caller=caller,
                task=definition.name,
                parameters=parameters,
                run_id=values.get("run_id", "").strip() or None,
                start=values.get("start") == "true",
                execution_duration=int(duration) if duration else None,
                strict=True,
            )
        except InvalidRequestError as exc:
            message = exc.message
            for problem in exc.fields or []:
                name = str(problem.get("field", "")).removeprefix(
                    "parameters."
                )
                problems[name] = str(problem.get("message", ""))
        else:
            return _redirect(request, f"/ui/jobs/{job.id}")
    return _page(
        "submit.html",
        request,
        status=422,
        task=definition,
        fields=fields,
        values={k.removeprefix("p."): v for k, v in values.items()},
        problems=problems,
        message=message or "The job was not created; see below.",
    )
