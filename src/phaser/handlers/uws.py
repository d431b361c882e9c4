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
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse
from starlette.datastructures import UploadFile

from ..clock import format_time, parse_time
from ..dependencies.context import BaseUrl, CurrentCaller, Service
from ..models.api import MAX_REQUEST_SECONDS, problem_responses
from ..models.caller import Caller
from ..models.errors import (
    JobNotFoundError,
    PhaserError,
    ResultNotFoundError,
)
from ..models.job import Job
from ..models.phase import ExecutionPhase
from ..models.text import clean_text
from ..models.uws import (
    render_job,
    render_job_list,
    render_parameters,
    render_results,
)
from ..services.jobs import JobService, JobUpdate
from .results import add_head_route, result_response
from .routes import REDIS_DOWN, DialectRoute, validation_text
from .ui import uws_page, wants_page

__all__ = ["router"]

#: Most jobs a job list answers without ``LAST``.
_LIST_LIMIT = 1000

#: Parameter names with a meaning of their own (lower case).
_CONTROL = {"phase", "runid", "executionduration", "destruction", "action"}

_XML = "application/xml"


class _UWSRoute(DialectRoute):
    """Routes whose errors answer ``text/plain`` with the UWS status (a
    Redis outage too: 503 with ``Retry-After``)."""

    def answer(self, request: Request, exc: Exception) -> Response:
        match exc:
            case PhaserError():
                return PlainTextResponse(
                    clean_text(exc.message),
                    status_code=exc.uws_status_code,
                    headers=exc.headers,
                )
            case RequestValidationError():
                return PlainTextResponse(
                    clean_text(validation_text(exc)), status_code=400
                )
            case _:
                return PlainTextResponse(
                    REDIS_DOWN, status_code=503, headers={"Retry-After": "5"}
                )


def _text_errors(
    descriptions: dict[int, str],
) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": text, "content": {"text/plain": {}}}
        for status, text in descriptions.items()
    }


router = APIRouter(
    route_class=_UWSRoute,
    responses=_text_errors(
        {
            400: "Invalid request (parameter, header or form)",
            401: "Not authenticated",
            403: "Not allowed in the job's phase, or a quota is reached",
            404: "No such task, job or result",
        }
    )
    | problem_responses(413, 503),
)


class _Params:
    """UWS parameters of a request, names folded to lower case."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = [(name.lower(), value) for name, value in pairs]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def task_parameters(self) -> dict[str, str]:
        return {
            name: value for name, value in self.pairs if name not in _CONTROL
        }


async def _params(request: Request, *, body: bool) -> _Params:
    pairs = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "")
    if body and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        try:
            form = await request.form()
        except Exception as exc:  # the parser's errors have no common base
            raise PhaserError(f"Unreadable form body: {exc}") from exc
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    raise PhaserError(
                        f"Parameter {name} is not UTF-8 text"
                    ) from None
                pairs.append((name, text))
            else:
                pairs.append((name, value))
    return _Params(pairs)


def _bad(name: str, value: str, why: str) -> PhaserError:
    return PhaserError(f"Invalid {name.upper()} value {value!r}: {why}")


def _time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise _bad(
            name, value, "expected an ISO 8601 time from 1970 to 9999 (UTC)"
        ) from None


def _int(name: str, value: str | None, minimum: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(name, value, "expected an integer") from None
    if not minimum <= number <= MAX_REQUEST_SECONDS:
        raise _bad(name, value, f"expected {minimum} to {MAX_REQUEST_SECONDS}")
    return number


def _phase(value: str) -> ExecutionPhase:
    try:
        return ExecutionPhase(value)
    except ValueError:
        raise _bad("phase", value, "not a UWS phase") from None


def _xml(content: bytes) -> Response:
    return Response(content, media_type=_XML)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _document(request: Request, content: bytes) -> Response:
    """A UWS document; a browser gets it as an HTML page."""
    if wants_page(request.headers.get("accept", "")):
        return uws_page(content)
    return _xml(content)


def _stylesheet(base_url: str) -> str:
    """The XSLT that renders UWS documents in a browser."""
    return f"{base_url}/static/uws.xsl"


def _list_url(base_url: str, task: str) -> str:
    return f"{base_url}/{task}/jobs"


def _job_url(base_url: str, task: str, job_id: str) -> str:
    return f"{base_url}/{task}/jobs/{job_id}"


async def _job(
    service: JobService, caller: Caller, task: str, job_id: str
) -> Job:
    """The job, if it belongs to this task's job list."""
    job = await service.get(caller, job_id)
    if job.task != task:
        raise JobNotFoundError(job_id)
    return job


async def _apply(
    service: JobService,
    caller: Caller,
    job: Job,
    params: _Params,
) -> None:
    """Apply the PHASE, DESTRUCTION, EXECUTIONDURATION and parameter
    changes a POST asks for."""
    phase = params.get("phase")
    if phase is not None and phase not in {"RUN", "ABORT"}:
        raise _bad("phase", phase, "expected RUN or ABORT")
    update = JobUpdate(
        parameters=params.task_parameters() or None,
        execution_duration=_int(
            "executionduration", params.get("executionduration"), 0
        ),
        destruction_time=_time("destruction", params.get("destruction")),
        run_id=params.get("runid"),
    )
    if update != JobUpdate():
        await service.update(caller, job.id, update)
    if phase == "RUN":
        await service.start(caller, job.id)
    elif phase == "ABORT":
        await service.abort(caller, job.id, strict=False)


_XML_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {_XML: {}}}}
#: A UWS document, or (for a browser) the page made of it.
_PAGE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {_XML: {}, "text/html": {}}}
}
_TEXT_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {}}}
}


@router.get(
    "/{task}/jobs",
    summary="UWS job list",
    description="``uws:jobs``; filters ``PHASE`` (repeatable), ``AFTER``,"
    " ``LAST``. ARCHIVED jobs only with ``PHASE=ARCHIVED``.",
    response_class=Response,
    responses=_PAGE_DOC,
)
async def list_jobs(
    task: str,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    service.task(task)
    params = await _params(request, body=False)
    phases = [_phase(value) for value in params.all("phase")]
    last = _int("last", params.get("last"), 1)
    page = await service.list(
        caller,
        task=task,
        phases=phases or None,
        after=_time("after", params.get("after")),
        limit=last or _LIST_LIMIT,
    )
    return _document(
        request,
        render_job_list(
            page.jobs,
            _list_url(base_url, task),
            stylesheet=_stylesheet(base_url),
        ),
    )


@router.post(
    "/{task}/jobs",
    status_code=303,
    summary="UWS create job",
    description="Creates a job from the posted parameters (``PHASE=RUN``"
    " starts it, ``RUNID``, ``EXECUTIONDURATION``, ``DESTRUCTION``);"
    " answers 303 to the job.",
    response_class=Response,
)
async def create_job(
    task: str,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    service.task(task)
    params = await _params(request, body=True)
    phase = params.get("phase")
    if phase is not None and phase != "RUN":
        raise _bad("phase", phase, "only RUN is allowed on creation")
    job = await service.create(
        caller=caller,
        task=task,
        parameters=params.task_parameters(),
        run_id=params.get("runid"),
        start=phase == "RUN",
        execution_duration=_int(
            "executionduration", params.get("executionduration"), 0
        ),
        destruction_time=_time("destruction", params.get("destruction")),
    )
    return _see_other(_job_url(base_url, task, job.id))


@router.get(
    "/{task}/jobs/{job_id}",
    summary="UWS job",
    description="``uws:job``. ``WAIT=n`` blocks up to n seconds (-1: the"
    " server's maximum) while the job is PENDING, QUEUED or EXECUTING;"
    " with ``PHASE=X`` only while it is in X.",
    response_class=Response,
    responses=_PAGE_DOC,
)
async def get_job(
    task: str,
    job_id: str,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    params = await _params(request, body=False)
    wait = params.get("wait")
    job = await _job(service, caller, task, job_id)
    if wait is not None:
        seconds = _int("wait", wait, -1)
        guard = params.get("phase")
        job = await service.wait(
            caller,
            job_id,
            service.max_wait if seconds == -1 else float(seconds or 0),
            phase=_phase(guard) if guard is not None else None,
        )
    return _document(
        request,
        render_job(
            job,
            _job_url(base_url, task, job.id),
            stylesheet=_stylesheet(base_url),
        ),
    )


@router.post(
    "/{task}/jobs/{job_id}",
    status_code=303,
    summary="UWS change or delete job",
    description="``ACTION=DELETE`` deletes (303 to the list); ``PHASE``,"
    " ``DESTRUCTION``, ``EXECUTIONDURATION`` and parameters change the"
    " job (303 to the job).",
    response_class=Response,
)
async def post_job(
    task: str,
    job_id: str,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    return await _post_changes(
        task, job_id, request, service, caller, base_url, may_delete=True
    )


@router.delete(
    "/{task}/jobs/{job_id}",
    status_code=303,
    summary="UWS delete job",
    description="Deletes the job (aborting it first); 303 to the list.",
    response_class=Response,
)
async def delete_job(
    task: str,
    job_id: str,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    job = await _job(service, caller, task, job_id)
    await service.delete(caller, job.id)
    return _see_other(_list_url(base_url, task))


def _single(
    name: str, render: Callable[[Job], str]
) -> Callable[..., Coroutine[Any, Any, Response]]:
    async def read(
        task: str, job_id: str, service: Service, caller: CurrentCaller
    ) -> Response:
        job = await _job(service, caller, task, job_id)
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
        responses=_TEXT_DOC,
    )


def _change(
    name: str,
) -> Callable[..., Coroutine[Any, Any, Response]]:
    async def change(
        task: str,
        job_id: str,
        request: Request,
        service: Service,
        caller: CurrentCaller,
        base_url: BaseUrl,
    ) -> Response:
        return await _post_changes(
            task, job_id, request, service, caller, base_url, only=name
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
    responses=_XML_DOC,
)
async def get_parameters(
    task: str, job_id: str, service: Service, caller: CurrentCaller
) -> Response:
    return _xml(render_parameters(await _job(service, caller, task, job_id)))


@router.post(
    "/{task}/jobs/{job_id}/parameters",
    status_code=303,
    summary="UWS change job parameters",
    description="Changes parameters while the job is PENDING (403 after).",
    response_class=Response,
)
async def post_parameters(
    task: str,
    job_id: str,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    return await _post_changes(
        task, job_id, request, service, caller, base_url
    )


async def _post_changes(
    task: str,
    job_id: str,
    request: Request,
    service: JobService,
    caller: Caller,
    base_url: str,
    *,
    may_delete: bool = False,
    only: str | None = None,
) -> Response:
    """Apply the changes a POST carries; 303 to the job (to the list after
    ``ACTION=DELETE``, where ``may_delete``). With ``only``, the POST must
    carry that one parameter and nothing else is looked at."""
    params = await _params(request, body=True)
    job = await _job(service, caller, task, job_id)
    action = params.get("action") if may_delete else None
    if action is not None:
        if action.upper() != "DELETE":
            raise _bad("action", action, "expected DELETE")
        await service.delete(caller, job.id)
        return _see_other(_list_url(base_url, task))
    if only is not None:
        value = params.get(only)
        if value is None:
            raise PhaserError(f"Missing {only.upper()} parameter")
        params = _Params([(only, value)])
    await _apply(service, caller, job, params)
    return _see_other(_job_url(base_url, task, job.id))


@router.get(
    "/{task}/jobs/{job_id}/results",
    summary="UWS job results",
    description="``uws:results``: a reference to each result's URL.",
    response_class=Response,
    responses=_XML_DOC,
)
async def get_results(
    task: str,
    job_id: str,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
) -> Response:
    job = await _job(service, caller, task, job_id)
    return _xml(render_results(job, _job_url(base_url, task, job.id)))


@router.get(
    "/{task}/jobs/{job_id}/results/{result_id}",
    summary="UWS job result",
    description="The result's bytes, with the MIME type the task gave.",
    response_class=FileResponse,
)
async def get_result(
    task: str,
    job_id: str,
    result_id: str,
    service: Service,
    caller: CurrentCaller,
) -> FileResponse:
    job = await _job(service, caller, task, job_id)
    result, path = await service.result(caller, job.id, result_id)
    return result_response(job_id, result, path)


add_head_route(router, "/{task}/jobs/{job_id}/results/{result_id}", get_result)


@router.get(
    "/{task}/jobs/{job_id}/error",
    summary="UWS job error",
    description="A VOTable error document for a job in ERROR (or ABORTED"
    " by a limit); 404 if the job has no error.",
    response_class=Response,
)
async def get_error(
    task: str, job_id: str, service: Service, caller: CurrentCaller
) -> Response:
    job = await _job(service, caller, task, job_id)
    error = job.shown_error
    if error is None:
        raise ResultNotFoundError(f"Job {job_id} has no error")
    return Response(
        error_votable(error.message),
        media_type="application/x-votable+xml",
    )


def error_votable(message: str) -> bytes:
    """A VOTable carrying an error message (the IVOA habit)."""
    from xml.sax.saxutils import escape

    message = clean_text(message)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE type="results">'
        f'<INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>'
        "</RESOURCE></VOTABLE>"
    ).encode()
