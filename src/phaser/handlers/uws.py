"""The IVOA UWS 1.1 dialect: ``/{task}/jobs`` for every task.

Every route renders the same job service as the JSON API. Parameter names
are case-insensitive and read from the query string and from urlencoded or
multipart bodies; single values answer ``text/plain`` without a trailing
newline, containers ``application/xml``; state changes answer 303 with an
absolute ``Location``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from ..dependencies.context import CurrentCaller, Service
from ..dependencies.uws import Form, Links, UWSForm, UWSJob, UWSLinks
from ..models.caller import Caller
from ..models.uws import (
    render_job,
    render_job_list,
    render_parameters,
    render_results,
)
from ..services.jobs import JobService
from .results import (
    DOWNLOAD_RESPONSES,
    add_head_route,
    result_response,
    upload_response,
)
from .uws_params import (
    ERRORS,
    PAGE_DOC,
    XML_DOC,
    UWSRoute,
    bad_value,
    create_from,
    document,
    phase_value,
    seconds,
    see_other,
    time_value,
    xml_answer,
)
from .uws_values import WaitedJob, post_changes

__all__ = ["created", "router"]

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
    links: UWSLinks,
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
            links.jobs,
            stylesheet=links.stylesheet,
        ),
    )


@router.post(
    "/{task}/jobs",
    status_code=303,
    summary="UWS create job",
    description="Creates a job from the posted parameters (``PHASE=RUN``"
    " starts it, ``RUNID``, ``EXECUTIONDURATION``, ``DESTRUCTION``;"
    " a repeated parameter keeps every value); answers 303 to the job."
    " With an ``Idempotency-Key`` header, a repeat of the request within"
    " ``PHASER_IDEMPOTENCY_WINDOW`` answers 303 to the job the first one"
    " made (the same key with another request: 400).",
    response_class=Response,
)
async def create_job(
    task: str,
    request: Request,
    form: UWSForm,
    service: Service,
    caller: CurrentCaller,
    links: UWSLinks,
) -> Response:
    return await created(request, form, task, service, caller, links)


async def created(
    request: Request,
    form: Form,
    task: str,
    service: JobService,
    caller: Caller,
    links: Links,
) -> Response:
    """`create_job`'s answer (also `phaser.handlers.fast_create`'s, ahead
    of FastAPI's routing)."""
    job = await create_from(form, task, service, caller, request)
    answer = see_other(links.job(job.id))
    if job.notify_secret is not None:
        # NOTIFY's signing secret, this once.
        answer.headers["Webhook-Secret"] = job.notify_secret
    return answer


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
    job: WaitedJob, request: Request, links: UWSLinks, caller: CurrentCaller
) -> Response:
    return document(
        request,
        render_job(
            job,
            links.job(job.id),
            stylesheet=links.stylesheet,
            admin=caller.admin,
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
    job: UWSJob,
    form: UWSForm,
    service: Service,
    caller: CurrentCaller,
    links: UWSLinks,
) -> Response:
    action = form.get("action")
    if action is not None:
        if action.upper() != "DELETE":
            raise bad_value("action", action, "expected DELETE")
        await service.delete(caller, job.id)
        return see_other(links.jobs)
    return await post_changes(job, form, service, caller, links)


@router.delete(
    "/{task}/jobs/{job_id}",
    status_code=303,
    summary="UWS delete job",
    description="Deletes the job (aborting it first); 303 to the list.",
    response_class=Response,
)
async def delete_job(
    job: UWSJob,
    service: Service,
    caller: CurrentCaller,
    links: UWSLinks,
) -> Response:
    await service.delete(caller, job.id)
    return see_other(links.jobs)


@router.get(
    "/{task}/jobs/{job_id}/parameters",
    summary="UWS job parameters",
    description="``uws:parameters``: the job's parameters as stored.",
    response_class=Response,
    responses=XML_DOC,
)
async def get_parameters(job: UWSJob, links: UWSLinks) -> Response:
    return xml_answer(render_parameters(job, links.job(job.id)))


@router.post(
    "/{task}/jobs/{job_id}/parameters",
    status_code=303,
    summary="UWS change job parameters",
    description="Changes parameters while the job is PENDING (403 after).",
    response_class=Response,
)
async def post_parameters(
    job: UWSJob,
    form: UWSForm,
    service: Service,
    caller: CurrentCaller,
    links: UWSLinks,
) -> Response:
    return await post_changes(job, form, service, caller, links)


@router.get(
    "/{task}/jobs/{job_id}/results",
    summary="UWS job results",
    description="``uws:results``: a reference to each result's URL.",
    response_class=Response,
    responses=XML_DOC,
)
async def get_results(job: UWSJob, links: UWSLinks) -> Response:
    return xml_answer(render_results(job, links.job(job.id)))


@router.get(
    "/{task}/jobs/{job_id}/results/{result_id}",
    summary="UWS job result",
    description="The result's bytes, with the MIME type the task gave.",
    response_class=FileResponse,
    responses=DOWNLOAD_RESPONSES,
)
async def get_result(
    job: UWSJob, result_id: str, service: Service
) -> Response:
    result, found = await service.located_result(job, result_id)
    return result_response(job.id, result, found)


add_head_route(router, "/{task}/jobs/{job_id}/results/{result_id}", get_result)


@router.get(
    "/{task}/jobs/{job_id}/uploads/{name}",
    summary="UWS job upload",
    description="A file the job was given with its request (its"
    " ``uws:parameter`` with ``byReference``), for its owner.",
    response_class=FileResponse,
    responses=DOWNLOAD_RESPONSES,
)
async def get_upload(job: UWSJob, name: str, service: Service) -> Response:
    return await upload_response(service, job, name)
