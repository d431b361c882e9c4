"""DALI synchronous requests: ``/{task}/sync``, and what the JSON API's
``?sync=true`` shares with it (`until_disconnected`).

A sync request is an ordinary job (marked ``sync``), created, started and
awaited on the client's connection up to ``PHASER_SYNC_TIMEOUT``; the
answer is its main result (the first), streamed with its MIME type. Every
error is a DALI error document: a VOTable whose ``QUERY_STATUS`` INFO is
``ERROR`` and holds the message, with a 4xx status when the request or
the task refused it and 5xx when the service failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from typing import TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from ..dependencies.context import CurrentCaller, Service, Waiter
from ..dependencies.uws import UWSForm, UWSLinks
from ..models.errors import PhaserError
from ..models.job import ErrorCode, Job
from ..models.phase import FAILED, SUCCEEDED
from .results import result_response
from .routes import REDIS_DOWN, validation_text
from .uws_params import VOTABLE, UWSRoute, create_from, error_votable

__all__ = ["router", "until_disconnected"]

_T = TypeVar("_T")


class DaliRoute(UWSRoute):
    """UWS parameter handling; errors as DALI error documents."""

    def answer(self, request: Request, exc: Exception) -> Response:
        match exc:
            case PhaserError():
                return error_votable(
                    exc.message, exc.uws_status_code, exc.headers
                )
            case RequestValidationError():
                return error_votable(validation_text(exc), 400)
            case _:
                return error_votable(REDIS_DOWN, 503, {"Retry-After": "5"})


_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"description": text, "content": {VOTABLE: {}}}
    for status, text in {
        400: "Invalid request, or the task refused it",
        401: "Not authenticated",
        403: "A quota is reached",
        404: "No such task",
        500: "The task failed, or the job was aborted",
        503: "The job store cannot be reached",
        504: "The job did not end within the sync timeout (aborted)",
    }.items()
}

router = APIRouter(route_class=DaliRoute, responses=_ERRORS)


async def _disconnect(request: Request) -> None:
    """Return once the client has closed its connection (the request's
    body, if any, has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnected(
    request: Request, work: Awaitable[_T]
) -> _T | None:
    """``work``'s value, or `None` if the client went away first (then
    ``work`` is cancelled: `JobWaiter.finish_sync` aborts its job)."""
    doing = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({doing, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, doing):
            if not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
    return doing.result() if not doing.cancelled() else None


_CLIENTS_TO_FIX = {ErrorCode.TASK_ERROR, ErrorCode.UPLOAD_FAILED}


async def _answer(job: Job, service: Service) -> Response:
    """A sync job's end as DALI answers it."""
    if job.phase is SUCCEEDED:
        if not job.results:
            return Response(status_code=204)
        result, found = await service.located_result(job, job.results[0].id)
        return result_response(job.id, result, found)
    error = job.shown_error
    message = error.message if error else f"Job {job.id} was aborted"
    # The task refused the request, or the file it referred to could not
    # be fetched: the client's to fix (400); anything else is ours (500).
    refused = error is not None and error.code in _CLIENTS_TO_FIX
    status = 400 if job.phase is FAILED and refused else 500
    return error_votable(f"Job {job.id}: {message}", status)


_DESCRIPTION = (
    "DALI sync: creates a job of the task from the parameters (as"
    " ``/{task}/async`` takes them), runs it and answers its first result"
    " (its bytes and MIME type; 204 if it has none) once it has ended. A"
    " job that does not end within ``PHASER_SYNC_TIMEOUT`` is aborted"
    " (504). Errors are VOTable error documents: 400 when the request is"
    " invalid, the task refused it (``TaskError``) or an upload by"
    " reference could not be fetched, 500 when the task failed or the job"
    " was aborted. Closing the connection aborts the"
    " job. The job is an ordinary one, marked ``sync``."
)


async def _sync(
    task: str,
    request: Request,
    form: UWSForm,
    service: Service,
    waiter: Waiter,
    caller: CurrentCaller,
    links: UWSLinks,
) -> Response:
    job = await create_from(form, task, service, caller, request, sync=True)
    instead = f"{links.root}/{task}/async"
    ended = await until_disconnected(
        request, waiter.finish_sync(caller, job, instead)
    )
    if ended is None:  # nobody is listening
        return Response(status_code=499)
    return await _answer(ended, service)


for _method in ("GET", "POST"):
    router.add_api_route(
        "/{task}/sync",
        _sync,
        methods=[_method],
        summary=f"DALI sync ({_method})",
        description=_DESCRIPTION,
        response_class=Response,
        responses={200: {"description": "The job's first result"}},
        operation_id=f"dali_sync_{_method.lower()}",
    )
