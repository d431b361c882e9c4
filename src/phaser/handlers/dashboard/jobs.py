"""The job list: filters, cursor paging, rows that follow their jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from ...dependencies.context import Ops, Service
from ...models.caller import Caller
from ...models.errors import InvalidRequestError
from ...models.job import Job
from ...models.phase import ExecutionPhase
from ...services.ids import is_job_id
from ...services.operations import EVERYONE
from ...storage.events import EventQueue, next_event
from ...ui.render import digest, sse_event
from .common import (
    KEEPALIVE,
    PageCaller,
    PageRoute,
    base_path,
    event_stream,
    form_time,
    html_page,
    owner_filter,
    render,
)

__all__ = ["router"]

#: Most jobs a live list follows (the page's and those it gained).
MAX_FOLLOWED = 500

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _job_filters(
    caller: Caller,
    task: str | None,
    phase: list[str],
    run_id: str | None,
    after: str | None,
    owner: str | None,
    parent_id: str | None = None,
) -> dict[str, Any]:
    phases = []
    for value in phase:
        if value:
            try:
                phases.append(ExecutionPhase(value))
            except ValueError:
                raise InvalidRequestError(f"Unknown phase {value!r}") from None
    moment = form_time("time", after) if after else None
    whose = owner_filter(caller, owner)
    if whose == EVERYONE:
        whose = None
    if parent_id and not is_job_id(parent_id):
        raise InvalidRequestError(f"Invalid parent id {parent_id!r}")
    return {
        "parent_id": parent_id or None,
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
    operations: Ops,
    caller: PageCaller,
    task: Annotated[str | None, Query(max_length=64)] = None,
    phase: Annotated[list[str] | None, Query(max_length=20)] = None,
    run_id: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    parent_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    if cursor and not is_job_id(cursor):
        raise InvalidRequestError(f"Invalid cursor {cursor!r}")
    filters = _job_filters(
        caller, task, phase or [], run_id, after, owner, parent_id
    )
    page = await service.list(
        caller, cursor=cursor or None, limit=limit, **filters
    )
    total = await service.count(caller, **filters)
    shown = {
        "task": task or "",
        "phase": [p for p in (phase or []) if p],
        "run_id": run_id or "",
        "after": after or "",
        "owner": filters["owner"] or "",
        "parent_id": parent_id or "",
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
    return html_page(
        "jobs.html",
        request,
        jobs=page.jobs,
        total=total,
        rows=rows,
        filters=shown,
        next_page=(
            urlencode([*query, ("cursor", page.next_cursor)])
            if page.next_cursor
            else None
        ),
        first_page=urlencode(query) if cursor else None,
        stream=f"{base_path(request)}/ui/jobs/stream?{urlencode(stream_query)}",
        tasks=[t.name for t in service.tasks()],
        owners=await operations.owners(caller),
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
    parent_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Rows of a job list as their jobs change (and new jobs that match,
    on the first page)."""
    followed = {i for i in ids.split(",") if i}
    if not all(is_job_id(i) for i in followed) or len(followed) > 200:
        raise InvalidRequestError("Invalid job ids")
    filters = _job_filters(
        caller, task, phase or [], run_id, after, owner, parent_id
    )
    whose = filters["owner"] if filters["owner"] else caller.name

    def matches(job: Job) -> bool:
        return (
            (filters["task"] is None or job.task == filters["task"])
            and (filters["phases"] is None or job.phase in filters["phases"])
            and (filters["run_id"] is None or job.run_id == filters["run_id"])
            and (filters["after"] is None or job.created_at > filters["after"])
            and (
                filters["parent_id"] is None
                or job.parent_id == filters["parent_id"]
            )
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
                if job.id > newest and len(followed) < MAX_FOLLOWED:
                    followed.add(job.id)
                    yield sse_event("new", row(job))

    async def changes(events: EventQueue) -> AsyncIterator[str]:
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
                    if not new or len(followed) >= MAX_FOLLOWED:
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

    return event_stream(body())


def _row(request: Request, job: Job) -> str:
    """One row of a job list."""
    return render("_row.html", request, job=job)
