"""The IVOA UWS 1.1 dialect: ``/{task}/jobs`` for every task.

Every route renders the same job service as the JSON API. Parameter names
are case-insensitive and read from the query string and from urlencoded or
multipart bodies; single values answer ``text/plain`` without a trailing
newline, containers ``application/xml``; state changes answer 303 with an
absolute ``Location``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse

from ..clock import format_time
from ..dependencies.context import BaseUrl, CurrentCaller, Service, Waiter
from ..dependencies.uws import Form, UWSForm, UWSJob
from ..models.caller import Caller
from ..models.errors import ResultNotFoundError
from ..models.job import Job
from ..models.uws import (
    render_job,
    render_job_list,
    render_parameters,
    render_results,
)
from ..services.jobs import JobService, JobUpdate
from .results import add_head_route, result_response
from .uws_params import (
    ERRORS,
    PAGE_DOC,
    TEXT_DOC,
    XML_DOC,
    UWSRoute,
    bad_value,
    document,
    error_votable,
    job_url,
    list_url,
    phase_value,
    seconds,
    see_other,
    stylesheet,
    time_value,
    update_of,
    xml_answer,
)

__all__ = ["router"]

#: Most jobs a job list answers without ``LAST``.
_LIST_LIMIT = 1000


router = APIRouter(route_class=UWSRoute, responses=ERRORS)


@router.get(
    "/{task}/jobs",
    summary="UWS job list",
    description="``uws:jobs``; filters ``PHASE`` (repeatable), ``AFTER``,"
    " ``LAST``. ARCHIVED jobs only with ``PHASE=ARCHIVED``.",
    response_class=Response,
    responses=PAGE_DOC,
)
async def list_jobs(
    task: str,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
    phase: Annotated[
        list[str] | None,
        Query(description="Only jobs in these phases (repeatable)."),
    ] = None,
    after: Annotated[
        str | None, Query(description="Only jobs created after this time.")
    ] = None,
    last: Annotated[
        str | None, Query(description="At most this many jobs, newest.")
    ] = None,
) -> Response:
    service.task(task)
    page = await service.list(
        caller,
        task=task,
        phases=[phase_value(value) for value in phase or []] or None,
        after=time_value("after", after),
        limit=seconds("last", last, 1) or _LIST_LIMIT,
    )
    return document(
        request,
        render_job_list(
            page.jobs,
            list_url(base_url, task),
            stylesheet=stylesheet(base_url),
        ),
    )


@router.post(
    "/{task}/jobs",
    status_code=303,
    summary="UWS create job",
    description="Creates a job from the posted parameters (``PHASE=RUN``"
    " starts it, ``RUNID``, ``EXECUTIONDURATION``, ``DESTRUCTION``;"
    " a repeated parameter keeps every value); answers 303 to the job.",
    response_class=Response,
)
async def create_job(
    task: str,
    form: UWSForm,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    service.task(task)
    asked = update_of(form, creating=True)
    job = await service.create(
        caller=caller,
        task=task,
        parameters=asked.parameters or {},
        run_id=asked.run_id,
        start=asked.action is not None,
        execution_duration=asked.execution_duration,
        destruction_time=asked.destruction_time,
    )
    return see_other(job_url(base_url, task, job.id))


@router.get(
    "/{task}/jobs/{job_id}",
    summary="UWS job",
    description="``uws:job``. ``WAIT=n`` blocks up to n seconds (-1: the"
    " server's maximum) while the job is PENDING, QUEUED or EXECUTING;"
    " with ``PHASE=X`` only while it is in X.",
    response_class=Response,
    responses=PAGE_DOC,
)
async def get_job(
    task: str,
    job: UWSJob,
    request: Request,
    waiter: Waiter,
    caller: CurrentCaller,
    base_url: BaseUrl,
    wait: Annotated[
        str | None,
        Query(description="Seconds to wait for a change (-1: the most)."),
    ] = None,
    phase: Annotated[
        str | None,
        Query(description="With WAIT: wait only while in this phase."),
    ] = None,
) -> Response:
    if wait is not None:
        limit = seconds("wait", wait, -1)
        job = await waiter.wait(
            caller,
            job.id,
            waiter.max_wait if limit == -1 else float(limit or 0),
            phase=phase_value(phase) if phase is not None else None,
        )
    return document(
        request,
        render_job(
            job,
            job_url(base_url, task, job.id),
            stylesheet=stylesheet(base_url),
        ),
    )


@router.post(
    "/{task}/jobs/{job_id}",
    status_code=303,
    summary="UWS change or delete job",
    description="``ACTION=DELETE`` deletes (303 to the list); ``PHASE``,"
    " ``DESTRUCTION``, ``EXECUTIONDURATION`` and parameters change the"
    " job, all in one step or (403) none of them (303 to the job).",
    response_class=Response,
)
async def post_job(
    task: str,
    job: UWSJob,
    form: UWSForm,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    action = form.get("action")
    if action is not None:
        if action.upper() != "DELETE":
            raise bad_value("action", action, "expected DELETE")
        await service.delete(caller, job.id)
        return see_other(list_url(base_url, task))
    return await _post_changes(task, job, form, service, caller, base_url)


@router.delete(
    "/{task}/jobs/{job_id}",
    status_code=303,
    summary="UWS delete job",
    description="Deletes the job (aborting it first); 303 to the list.",
    response_class=Response,
)
async def delete_job(
    task: str,
    job: UWSJob,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    await service.delete(caller, job.id)
    return see_other(list_url(base_url, task))


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
    ("phase", lambda job: job.phase.value, "phase"),
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
        base_url: BaseUrl,
    ) -> Response:
        return await _post_changes(
            task, job, form.only(name), service, caller, base_url
        )

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


@router.get(
    "/{task}/jobs/{job_id}/parameters",
    summary="UWS job parameters",
    description="``uws:parameters``: the job's parameters as stored.",
    response_class=Response,
    responses=XML_DOC,
)
async def get_parameters(job: UWSJob) -> Response:
    return xml_answer(render_parameters(job))


@router.post(
    "/{task}/jobs/{job_id}/parameters",
    status_code=303,
    summary="UWS change job parameters",
    description="Changes parameters while the job is PENDING (403 after).",
    response_class=Response,
)
async def post_parameters(
    task: str,
    job: UWSJob,
    form: UWSForm,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    return await _post_changes(task, job, form, service, caller, base_url)


async def _post_changes(
    task: str,
    job: Job,
    form: Form,
    service: JobService,
    caller: Caller,
    base_url: str,
) -> Response:
    """Apply the changes a POST carries, in one service call (all or
    nothing); 303 to the job."""
    update = update_of(form)
    if update != JobUpdate():
        await service.update(caller, job.id, update)
    return see_other(job_url(base_url, task, job.id))


@router.get(
    "/{task}/jobs/{job_id}/results",
    summary="UWS job results",
    description="``uws:results``: a reference to each result's URL.",
    response_class=Response,
    responses=XML_DOC,
)
async def get_results(task: str, job: UWSJob, base_url: BaseUrl) -> Response:
    return xml_answer(render_results(job, job_url(base_url, task, job.id)))


@router.get(
    "/{task}/jobs/{job_id}/results/{result_id}",
    summary="UWS job result",
    description="The result's bytes, with the MIME type the task gave.",
    response_class=FileResponse,
)
async def get_result(
    job: UWSJob, result_id: str, service: Service
) -> FileResponse:
    result, path = service.located_result(job, result_id)
    return result_response(job.id, result, path)


add_head_route(router, "/{task}/jobs/{job_id}/results/{result_id}", get_result)


@router.get(
    "/{task}/jobs/{job_id}/error",
    summary="UWS job error",
    description="A VOTable error document for a job in ERROR (or ABORTED"
    " by a limit); 404 if the job has no error.",
    response_class=Response,
)
async def get_error(job: UWSJob) -> Response:
    error = job.shown_error
    if error is None:
        raise ResultNotFoundError(f"Job {job.id} has no error")
    return Response(
        error_votable(error.message),
        media_type="application/x-votable+xml",
    )
