"""The overview: counts, queues, throughput and workers, kept live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from ...dependencies.context import Ops, Service
from ...services.operations import EVERYONE, Stats
from ...storage.events import next_event
from ...ui.render import chart, digest, sse_event
from .common import (
    KEEPALIVE,
    STATS_TTL,
    PageCaller,
    PageRoute,
    base_path,
    event_stream,
    html_page,
    owner_filter,
    render,
    stats_cache,
)

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _overview_live(request: Request, stats: Stats, owner: str | None) -> str:
    return render(
        "_overview_live.html",
        request,
        stats=stats,
        owner=owner,
        chart=chart(stats),
        totals=stats.totals,
    )


@router.get("/ui")
async def overview(
    request: Request,
    service: Service,
    operations: Ops,
    caller: PageCaller,
    owner: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    whose = owner_filter(caller, owner)
    stats = await stats_cache(request).get(operations, caller, whose)
    live = _overview_live(request, stats, whose)
    query = urlencode(
        {**({"owner": whose} if whose else {}), "shown": digest(live)}
    )
    return html_page(
        "overview.html",
        request,
        live=live,
        stream=f"{base_path(request)}/ui/stream?{query}",
        owners=await operations.owners(caller),
        owner=whose,
        tasks=service.tasks(),
    )


@router.get("/ui/stream")
async def overview_stream(
    request: Request,
    service: Service,
    operations: Ops,
    caller: PageCaller,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    shown: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The overview's live part, sent again whenever it changes."""
    whose = owner_filter(caller, owner)
    cache_ = stats_cache(request)
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
        max_age = STATS_TTL
        async with subscription as events:
            while True:
                stats = await cache_.get(operations, caller, whose, max_age)
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
                max_age = STATS_TTL
                await asyncio.sleep(STATS_TTL)
                while not events.empty():
                    if events.get_nowait().kind == "closing":
                        return

    return event_stream(body())
