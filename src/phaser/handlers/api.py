"""The JSON API, mounted under ``/api/v1``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from ..dependencies.context import (
    BaseUrl,
    CurrentCaller,
    Service,
    Waiter,
)
from ..models.api import (
    JobModel,
    problem_responses,
)
from ..models.api_fields import JobFieldsModel
from ..models.caller import Caller
from ..models.job import Job
from ..models.job_json import Fields, job_json
from ..models.notify import DeliveriesModel
from ..models.phase import ExecutionPhase
from ..models.requests import JobPatch
from ..services.jobs import JobUpdate
from ..services.waiting import JobWaiter
from .api_list import FieldsQuery, selected_fields
from .results import DOWNLOAD_RESPONSES, add_head_route, result_response

__all__ = ["router", "wait_answer"]

#: Characters some line readers take as line breaks, as JSON escapes.
_LINE_BREAKS = str.maketrans(
    {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)

router = APIRouter(responses=problem_responses(400, 401, 413, 422, 503))

_PATCH_EXAMPLES: dict[str, Any] = {
    "destruction": {
        "summary": "Keep a job longer",
        "value": {"destruction_time": "2030-01-01T00:00:00Z"},
    },
    "label": {"summary": "Relabel a job", "value": {"run_id": "rerun-7"}},
    "priority": {
        "summary": "Move a waiting job up the queue",
        "value": {"priority": 8},
    },
}

_NOT_FOUND = problem_responses(404)
_CONFLICT = problem_responses(404, 409)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get(
    "/jobs/{job_id}",
    summary="Get a job",
    description=(
        "The job. With ``wait=S`` the answer waits up to S seconds (capped"
        " by the server) for the job's phase to change, and comes as soon"
        " as it does; it does not wait for a job that has ended. With"
        " ``phase=X`` as well it answers at once unless the job is in X."
        " With ``until=final`` it waits for the job to end instead of for"
        " the next change; with ``until=children``, for every child of the"
        " job to end (the answer's ``children`` has none pending or"
        " running). ``fields`` gives only the fields named."
    ),
    responses=_NOT_FOUND,
    response_model=JobModel | JobFieldsModel,
)
async def get_job(
    job_id: str,
    service: Service,
    waiter: Waiter,
    caller: CurrentCaller,
    base_url: BaseUrl,
    wait: Annotated[
        float | None,
        Query(ge=0, le=86400, description="Seconds to wait for a change."),
    ] = None,
    phase: Annotated[
        ExecutionPhase | None,
        Query(
            description=(
                "With ``wait``: wait only while the job is in this phase"
                " (the phase you last saw), so no change is missed."
            )
        ),
    ] = None,
    until: Annotated[
        Literal["change", "final", "children"],
        Query(
            description=(
                "With ``wait``: answer at the next change of phase"
                " (default), only once the job has ended, or once its"
                " children have all ended."
            )
        ),
    ] = "change",
    fields: FieldsQuery = None,
) -> Response:
    wanted = selected_fields(fields)
    if wait:
        # Plain long polls are answered by `WaitFastPath` before they get
        # here; this is for those it leaves to FastAPI's validation.
        return await wait_answer(
            waiter,
            caller,
            job_id,
            wait,
            phase=phase,
            final=until == "final",
            children=until == "children",
            base_url=base_url,
            fields=wanted,
        )
    job = await service.get(caller, job_id)
    return _json(job_json(job, base_url, admin=caller.admin, fields=wanted))


async def wait_answer(
    waiter: JobWaiter,
    caller: Caller,
    job_id: str,
    seconds: float,
    *,
    phase: ExecutionPhase | None,
    final: bool,
    base_url: str,
    children: bool = False,
    fields: Fields = None,
) -> Response:
    """The answer to a long poll of one job (``GET …?wait=``)."""
    job = await waiter.wait(
        caller, job_id, seconds, phase=phase, final=final, children=children
    )
    return _json(job_json(job, base_url, admin=caller.admin, fields=fields))


#: The verbs a client applies to a job by POSTing to ``/jobs/{id}/{verb}``:
#: summary and description of each; the service method has the verb's name.
_VERBS = {
    "start": (
        "Start a job",
        "Queues a PENDING (or HELD) job. 409 if it is in another phase.",
    ),
    "hold": (
        "Hold a job",
        "Holds a PENDING or QUEUED job back from the queue: it waits in"
        " phase HELD, run by no worker, until released. 409 in another"
        " phase.",
    ),
    "release": (
        "Release a held job",
        "Queues a HELD job (also before its ``run_after`` time). 409 in"
        " another phase.",
    ),
    "abort": (
        "Abort a job",
        "Aborts a pending, queued or running job; a running task is"
        " stopped. 409 if the job has already ended, or while its task"
        " says it may not be aborted (``no_abort_reason``).",
    ),
    "suspend": (
        "Suspend a running job",
        "Pauses an EXECUTING job of a plain ``def`` task: its process is"
        " stopped (SIGSTOP) and its execution duration stops counting"
        " (SUSPENDED). 409 in another phase, and for ``async def`` tasks,"
        " which cannot be paused.",
    ),
    "resume": (
        "Resume a suspended job",
        "Lets a SUSPENDED job's process go on (EXECUTING); a job whose"
        " worker stopped while it was suspended waits HELD, and resuming"
        " it queues it to start over. 409 in another phase.",
    ),
}


def _verb_route(verb: str) -> Callable[..., Awaitable[Response]]:
    async def route(
        job_id: str,
        service: Service,
        caller: CurrentCaller,
        base_url: BaseUrl,
    ) -> Response:
        job = await getattr(service, verb)(caller, job_id)
        return _json(job_json(job, base_url, admin=caller.admin))

    route.__name__ = f"{verb}_job"
    return route


for _verb, (_summary, _description) in _VERBS.items():
    router.add_api_route(
        f"/jobs/{{job_id}}/{_verb}",
        _verb_route(_verb),
        methods=["POST"],
        summary=_summary,
        description=_description,
        responses=_CONFLICT,
        response_model=JobModel,
    )


@router.patch(
    "/jobs/{job_id}",
    summary="Change a job",
    description=(
        "Changes parameters and execution duration (while PENDING) and the"
        " destruction time (any time). Values beyond the server's maxima"
        " are clamped to them."
    ),
    responses=_CONFLICT,
    response_model=JobModel,
)
async def patch_job(
    job_id: str,
    body: Annotated[JobPatch, Body(openapi_examples=_PATCH_EXAMPLES)],
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    update = JobUpdate(
        parameters=body.parameters,
        execution_duration=body.execution_duration,
        destruction_time=body.destruction_time,
        run_id=body.run_id,
        priority=body.priority,
        run_after=body.run_after,
        strict=True,
    )
    job = await service.update(caller, job_id, update)
    return _json(job_json(job, base_url, admin=caller.admin))


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    summary="Delete a job",
    description="Aborts the job if it is active, then deletes it and its"
    " results. 409 (nothing deleted) while its task says it may not be"
    " aborted.",
    responses=_CONFLICT,
)
async def delete_job(
    job_id: str, service: Service, caller: CurrentCaller
) -> Response:
    await service.delete(caller, job_id)
    return Response(status_code=204)


@router.get(
    "/jobs/{job_id}/events",
    summary="Follow a job",
    description=(
        "Server-sent events: ``job`` (the job now), then ``phase`` and"
        " ``progress`` with the job as data, ``deleted`` if it is deleted."
        " The stream ends after the job has ended (and when the server"
        " stops: reconnect to follow the job further)."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_NOT_FOUND},
)
async def job_events(
    job_id: str,
    request: Request,
    waiter: Waiter,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> StreamingResponse:
    stream = waiter.watch(caller, job_id)
    first = await anext(stream)  # raises JobNotFoundError before streaming

    def render(kind: str, job: Job | None) -> str:
        if kind == "keepalive":
            return ": keepalive\n\n"
        data = (
            job_json(job, base_url, admin=caller.admin).decode()
            if job is not None
            else json.dumps({"id": job_id})
        )
        # Escaped so that no client splits the data line: the JSON is
        # one line for the event-stream parser, but line readers built on
        # str.splitlines (Python's) also break at these.
        data = data.translate(_LINE_BREAKS)
        return f"event: {kind}\ndata: {data}\n\n"

    async def body() -> AsyncIterator[str]:
        try:
            yield render(*first)
            async for kind, job in stream:
                yield render(kind, job)
        finally:
            await stream.aclose()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/jobs/{job_id}/deliveries",
    summary="A job's webhook deliveries",
    description=(
        "Each attempt to tell the job's ``notify`` URL of an event: when,"
        " the status answered, how long it took, why it failed; oldest"
        " first, the latest 50."
    ),
    response_model=DeliveriesModel,
    responses=_NOT_FOUND,
)
async def job_deliveries(
    job_id: str, service: Service, caller: CurrentCaller
) -> DeliveriesModel:
    attempts = await service.deliveries(caller, job_id)
    return DeliveriesModel.model_validate({"deliveries": attempts})


@router.get(
    "/jobs/{job_id}/results/{result_id}",
    summary="Download a result",
    description="The result's bytes, with the MIME type the task gave.",
    response_class=FileResponse,
    responses={**_NOT_FOUND, **DOWNLOAD_RESPONSES},
)
async def get_result(
    job_id: str, result_id: str, service: Service, caller: CurrentCaller
) -> Response:
    result, found = await service.result(caller, job_id, result_id)
    return result_response(job_id, result, found)


add_head_route(router, "/jobs/{job_id}/results/{result_id}", get_result)
