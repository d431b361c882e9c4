"""UWS routes of a job's single values (phase, execution duration,
destruction, quote, owner: read as ``text/plain``, the first three also
changed by POST) and its error document. Part of the UWS dialect
(`phaser.handlers.uws`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from ..clock import format_time
from ..dependencies.context import CurrentCaller, Service, Waiter
from ..dependencies.uploads import read_body
from ..dependencies.uws import Form, Links, UWSForm, UWSJob, UWSLinks
from ..models.caller import Caller
from ..models.errors import ResultNotFoundError
from ..models.job import Job
from ..services.jobs import JobService, JobUpdate
from .uws_params import (
    ERRORS,
    TEXT_DOC,
    VOTABLE,
    UWSRoute,
    error_votable,
    phase_value,
    seconds,
    see_other,
    update_of,
    wants_text,
)

__all__ = ["WaitedJob", "post_changes", "router"]

router = APIRouter(route_class=UWSRoute, responses=ERRORS)


async def _waited(
    job: UWSJob,
    waiter: Waiter,
    caller: CurrentCaller,
    request: Request,
    wait: Annotated[
        str | None,
        Query(description="Seconds to wait for a change (-1: the most)."),
    ] = None,
    phase: Annotated[
        str | None,
        Query(description="With WAIT: wait only while in this phase."),
    ] = None,
) -> Job:
    """The job, after a UWS ``WAIT`` if one was asked for (-1: the
    server's longest), blocking only while it is active (and, with
    ``PHASE``, in that phase).

    ``WAIT`` and ``PHASE`` may also come in a form body of the GET:
    cadctap sends them so (``requests.get(url, data=…)``), and polled in
    a busy loop while they were ignored.
    """
    if wait is None and phase is None:
        form = Form((await read_body(request)).pairs)
        wait, phase = form.get("wait"), form.get("phase")
    if wait is None:
        return job
    limit = seconds("wait", wait, -1)
    return await waiter.wait(
        caller,
        job.id,
        waiter.max_wait if limit == -1 else float(limit or 0),
        phase=phase_value(phase) if phase is not None else None,
    )


#: The job a route is about, after the ``WAIT`` the request asks for.
WaitedJob = Annotated[Job, Depends(_waited)]


@router.get(
    "/{task}/jobs/{job_id}/phase",
    summary="UWS job phase",
    description="The job's phase, as ``text/plain``. ``WAIT`` (and"
    " ``PHASE``) block as on the job itself: clients that poll the phase"
    " (CADC's cadctap) get one answer per change instead of a busy loop.",
    response_class=Response,
    responses=TEXT_DOC,
)
async def get_phase(job: WaitedJob) -> Response:
    return PlainTextResponse(job.phase.value)


def _single(
    name: str, render: Callable[[Job], str]
) -> Callable[..., Coroutine[Any, Any, Response]]:
    async def read(job: UWSJob) -> Response:
        return PlainTextResponse(render(job))

    read.__name__ = f"get_{name}"
    return read


def _optional_time(value: datetime | None) -> str:
    return format_time(value) if value else ""


for _name, _render, _summary in [
    (
        "executionduration",
        lambda job: str(job.execution_duration),
        "execution duration (s, 0 = unlimited)",
    ),
    (
        "destruction",
        lambda job: _optional_time(job.destruction_time),
        "destruction time (empty if none)",
    ),
    (
        "quote",
        lambda job: _optional_time(job.quote),
        "quote (empty if unknown)",
    ),
    ("owner", lambda job: job.owner or "", "owner (empty if anonymous)"),
]:
    router.add_api_route(
        f"/{{task}}/jobs/{{job_id}}/{_name}",
        _single(_name, _render),
        methods=["GET"],
        summary=f"UWS job {_summary}",
        description=f"The job's {_summary}, as ``text/plain``.",
        response_class=Response,
        responses=TEXT_DOC,
    )


def _change(
    name: str,
) -> Callable[..., Coroutine[Any, Any, Response]]:
    async def change(
        task: str,
        job: UWSJob,
        form: UWSForm,
        service: Service,
        caller: CurrentCaller,
        links: UWSLinks,
    ) -> Response:
        return await post_changes(job, form.only(name), service, caller, links)

    change.__name__ = f"post_{name}"
    return change


for _name in ("phase", "executionduration", "destruction"):
    router.add_api_route(
        f"/{{task}}/jobs/{{job_id}}/{_name}",
        _change(_name),
        methods=["POST"],
        status_code=303,
        summary=f"UWS change job {_name}",
        description=(
            f"Sets the job's {_name.upper()} (posted as a form or query"
            " parameter) and answers 303 to the job; 403 where the job's"
            " phase does not allow it."
        ),
        response_class=Response,
    )


async def post_changes(
    job: Job,
    form: Form,
    service: JobService,
    caller: Caller,
    links: Links,
) -> Response:
    """Apply the changes a POST carries, in one service call (all or
    nothing); 303 to the job."""
    update = update_of(form)
    if update != JobUpdate():
        await service.update(caller, job.id, update)
    return see_other(links.job(job.id))


@router.get(
    "/{task}/jobs/{job_id}/error",
    summary="UWS job error",
    description="The error of a job in ERROR (or ABORTED by a limit): a"
    " VOTable error document (``QUERY_STATUS=ERROR``, as pyvo and"
    " astroquery read it), or the message as text for a client whose"
    " ``Accept`` asks for ``text/plain`` and no XML; 404 if the job has no"
    " error.",
    response_class=Response,
    responses={
        200: {
            "content": {
                VOTABLE: {},
                "text/plain": {},
            }
        }
    },
)
async def get_error(job: UWSJob, request: Request) -> Response:
    error = job.shown_error
    if error is None:
        raise ResultNotFoundError(f"Job {job.id} has no error")
    if wants_text(request.headers.get("accept", "")):
        return PlainTextResponse(error.message)
    return error_votable(error.message)
