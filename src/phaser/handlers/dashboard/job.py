"""A job's page, its live part, downloads and actions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response

from ...dependencies.context import Service, Waiter
from ...models.errors import NotFoundError, PhaserError
from ...models.job import Job
from ...models.phase import (
    CHILD_GROUPS,
    FINAL_PHASES,
    RUNNING,
    Action,
    allowed_from,
)
from ...services.jobs import JobService, JobUpdate
from ...ui.preview import PREVIEW_BYTES, preview
from ...ui.render import digest, sse_event
from ..results import result_response
from .common import (
    FormCaller,
    PageCaller,
    PageRoute,
    base_path,
    event_stream,
    form_time,
    html_page,
    redirect,
    render,
)

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


async def _job_context(
    request: Request, service: JobService, job: Job
) -> dict[str, Any]:
    previews = {}
    for result in job.results:
        data = await service.stored_head(result.key, PREVIEW_BYTES)
        if data is not None:
            previews[result.id] = preview(data, result.mime_type)
    history = [(change.phase.value, change.at) for change in job.history]
    if not history:  # a record of an older version: what its times say
        history = [("created", job.created_at)]
        if job.started_at:
            history.append((RUNNING.value, job.started_at))
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


async def _job_live(
    request: Request, service: JobService, job: Job, *, admin: bool
) -> str:
    context = await _job_context(request, service, job)
    return render(
        "_job_live.html",
        request,
        admin=admin,
        child_groups=CHILD_GROUPS,
        **context,
    )


@router.get("/ui/jobs/{job_id}")
async def job_page(
    request: Request,
    job_id: str,
    service: Service,
    caller: PageCaller,
) -> Response:
    job = await service.get(caller, job_id)
    live = await _job_live(request, service, job, admin=caller.admin)
    return html_page(
        "job.html",
        request,
        job=job,
        # Webhook deliveries so far (the job's own and subscriptions').
        deliveries=await service.deliveries(caller, job_id),
        final=job.phase in FINAL_PHASES,
        live=live,
        # Only a def task's process can be paused.
        suspend_phases=suspend_phases(service, job),
        stream=(
            f"{base_path(request)}/ui/jobs/{job.id}/stream"
            f"?shown={digest(live)}"
        ),
    )


def suspend_phases(service: JobService, job: Job) -> str:
    """The phases in which the page offers to suspend the job: none for
    a task that runs on its worker's event loop."""
    try:
        can_pause = not service.task(job.task).is_async
    except PhaserError:
        can_pause = True  # a task this frontend does not know
    return " ".join(allowed_from(Action.SUSPEND)) if can_pause else ""


@router.get("/ui/jobs/{job_id}/stream")
async def job_stream(
    request: Request,
    job_id: str,
    service: Service,
    waiter: Waiter,
    caller: PageCaller,
    shown: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The job page's live part, sent again at each change; ends after the
    job has ended."""
    stream = waiter.watch(caller, job_id)
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
                    html = await _job_live(
                        request, service, job, admin=caller.admin
                    )
                    if digest(html) != last:
                        yield sse_event("live", html)
                        last = digest(html)
                    ended = job.phase in FINAL_PHASES
            if ended:
                # Otherwise the server stops: the browser reconnects.
                yield sse_event("end", "")
        finally:
            await stream.aclose()

    return event_stream(body())


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
    result, found = await service.result(caller, job_id, result_id)
    return result_response(job_id, result, found)


@router.post("/ui/jobs/{job_id}/destruction")
async def destruction(
    request: Request,
    job_id: str,
    service: Service,
    caller: FormCaller,
    destruction_time: Annotated[str, Form(max_length=40)],
) -> Response:
    moment = form_time("destruction time", destruction_time)
    job = await service.update(
        caller, job_id, JobUpdate(destruction_time=moment)
    )
    return redirect(request, f"/ui/jobs/{job.id}")


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
    return html_page(
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
    """Start (or release), hold, suspend, resume, abort or delete a job
    (the forms of its page and of the confirmation pages)."""
    match action:
        case "start":
            await service.start(caller, job_id)
        case "hold":
            await service.hold(caller, job_id)
        case "suspend":
            await service.suspend(caller, job_id)
        case "resume":
            await service.resume(caller, job_id)
        case "abort":
            await service.abort(caller, job_id)
        case "delete":
            await service.delete(caller, job_id)
            return redirect(request, "/ui/jobs")
        case _:
            raise NotFoundError(f"No action {action!r}")
    return redirect(request, f"/ui/jobs/{job_id}")
