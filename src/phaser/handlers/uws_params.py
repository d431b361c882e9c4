"""UWS request plumbing: case-insensitive parameters, answers (documents,
redirects, links) and errors in the UWS dialect (the job a route is about
and a POST's parameters are `phaser.dependencies.uws`).

UWS parameter names are case-insensitive. `UWSRoute` folds query
parameter names to lower case (as Safir's middleware does), so routes
declare their query parameters (``phase``, ``wait``…)
and OpenAPI documents them. POST bodies carry the task's own parameters,
whose names only the task knows: `UWSForm` reads query and body once,
names folded, repeated names kept in order.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse

from ..clock import parse_time
from ..dependencies.uws import Form
from ..models.api import MAX_REQUEST_SECONDS, problem_responses
from ..models.caller import Caller
from ..models.errors import PhaserError
from ..models.job import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    AfterPolicy,
    Job,
    Notify,
)
from ..models.phase import Action, ExecutionPhase
from ..models.text import clean_text
from ..services.checks import PhaseAction
from ..services.creation import check_idempotency_key
from ..services.jobs import JobService, JobUpdate, NewJob
from ..services.uploads import LinkUpload, NewUpload
from .routes import REDIS_DOWN, DialectRoute, validation_text
from .ui import uws_page, wants_page

__all__ = [
    "ERRORS",
    "PAGE_DOC",
    "TEXT_DOC",
    "VOTABLE",
    "XML",
    "XML_DOC",
    "UWSRoute",
    "bad_value",
    "create_from",
    "document",
    "error_votable",
    "phase_action",
    "phase_value",
    "seconds",
    "see_other",
    "text_errors",
    "time_value",
    "update_of",
    "uploads_of",
    "uws_error",
    "wants_text",
    "xml_answer",
]

XML = "application/xml"


class UWSRoute(DialectRoute):
    """Routes whose query parameter names are case-insensitive (folded to
    lower case before FastAPI reads them, as Safir's middleware does, but
    only on these routes), and whose errors answer ``text/plain`` with the
    UWS status (a Redis outage too: 503 with ``Retry-After``)."""

    def prepare(self, request: Request) -> None:
        raw: bytes = request.scope.get("query_string", b"")
        if raw:
            pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
            folded = urlencode([(k.lower(), v) for k, v in pairs])
            request.scope["query_string"] = folded.encode("latin-1")

    def answer(self, request: Request, exc: Exception) -> Response:
        return uws_error(request, exc)


def uws_error(request: Request, exc: Exception) -> Response:
    """A UWS route's answer to an error: ``text/plain`` with the UWS
    status (a Redis outage: 503 with ``Retry-After``)."""
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


def bad_value(name: str, value: str, why: str) -> PhaserError:
    """The 400 for a control parameter's value."""
    return PhaserError(f"Invalid {name.upper()} value {value!r}: {why}")


def time_value(name: str, value: str | None) -> datetime | None:
    """A time parameter (``DESTRUCTION``, ``AFTER``); empty is none."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise bad_value(
            name, value, "expected an ISO 8601 time from 1970 to 9999 (UTC)"
        ) from None


def integer(
    name: str, value: str | None, minimum: int, maximum: int
) -> int | None:
    """An integer from ``minimum`` to ``maximum`` (``PRIORITY``)."""
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise bad_value(name, value, "expected an integer") from None
    if not minimum <= number <= maximum:
        raise bad_value(name, value, f"expected {minimum} to {maximum}")
    return number


def notify_of(url: str | None) -> Notify | None:
    """``NOTIFY=url``: a webhook told of the job's end."""
    return Notify(url, ("final",)) if url else None


def after_policy(value: str | None) -> AfterPolicy:
    """``AFTERPOLICY``: ``all_completed`` (the default) or ``any_end``."""
    match value:
        case None | "all_completed":
            return "all_completed"
        case "any_end":
            return "any_end"
        case _:
            raise bad_value(
                "afterpolicy", value, "expected all_completed or any_end"
            )


def seconds(name: str, value: str | None, minimum: int) -> int | None:
    """A number of seconds (``EXECUTIONDURATION``, ``WAIT``, ``LAST``)."""
    return integer(name, value, minimum, MAX_REQUEST_SECONDS)


#: The ``PHASE`` values of a job that exists, and what each asks for.
_PHASE_VALUES: dict[str, PhaseAction] = {
    "RUN": Action.START,
    "ABORT": Action.ABORT,
    "HOLD": Action.HOLD,
    "SUSPEND": Action.SUSPEND,
    "RESUME": Action.RESUME,
}


def phase_action(
    value: str | None, *, creating: bool = False
) -> PhaseAction | None:
    """The action a ``PHASE`` value asks for: RUN starts (a HELD job too),
    ABORT aborts, HOLD holds a pending or queued job, SUSPEND pauses a
    running one and RESUME lets it go on (only RUN on creation)."""
    if value is None:
        return None
    if creating and value != "RUN":
        raise bad_value("phase", value, "only RUN is allowed on creation")
    if value not in _PHASE_VALUES:
        raise bad_value(
            "phase", value, f"expected one of {', '.join(_PHASE_VALUES)}"
        )
    return _PHASE_VALUES[value]


def text_errors(
    descriptions: dict[int, str],
) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": text, "content": {"text/plain": {}}}
        for status, text in descriptions.items()
    }


#: The errors every UWS route may answer.
ERRORS = text_errors(
    {
        400: "Invalid request (parameter, header or form)",
        401: "Not authenticated",
        403: "Not allowed in the job's phase, or a quota is reached",
        404: "No such task, job or result",
    }
) | problem_responses(413, 503)

#: A UWS document.
XML_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {XML: {}}}}
#: A UWS document, or (for a browser) the page made of it.
PAGE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {XML: {}, "text/html": {}}}
}
#: A single value.
TEXT_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {}}}
}


def phase_value(value: str) -> ExecutionPhase:
    try:
        return ExecutionPhase(value)
    except ValueError:
        raise bad_value("phase", value, "not a UWS phase") from None


def xml_answer(content: bytes) -> Response:
    return Response(content, media_type=XML)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def document(request: Request, content: bytes) -> Response:
    """A UWS document; a browser gets it as an HTML page."""
    if wants_page(request.headers.get("accept", "")):
        return uws_page(content)
    return xml_answer(content)


def update_of(form: Form, *, creating: bool = False) -> JobUpdate:
    """The one all-or-nothing change a POST asks for: PHASE, DESTRUCTION,
    EXECUTIONDURATION, RUNID, PRIORITY and parameters (``creating``: what
    a new job is created with, where PHASE may only be RUN)."""
    if not creating and (form.files or form.get("upload") is not None):
        raise PhaserError("Files are given when a job is created, not later")
    for name in (
        "concurrencykey",
        "afterjobs",
        "afterpolicy",
        "parentjob",
        "notify",
        "jobdescription",
        "retainafterend",
    ):
        if not creating and form.get(name) is not None:
            raise PhaserError(
                f"{name.upper()} is given when a job is created, not later"
            )
    return JobUpdate(
        parameters=form.task_parameters() or None,
        execution_duration=seconds(
            "executionduration", form.get("executionduration"), 0
        ),
        destruction_time=time_value("destruction", form.get("destruction")),
        run_id=form.get("runid"),
        priority=integer(
            "priority", form.get("priority"), MIN_PRIORITY, MAX_PRIORITY
        ),
        run_after=None
        if creating
        else time_value("runafter", form.get("runafter")),
        action=phase_action(form.get("phase"), creating=creating),
    )


def uploads_of(form: Form) -> list[NewUpload]:
    """The files a creation gives its job: DALI's ``UPLOAD=name,param:part``
    (the file part ``part``, as ``name``) and ``UPLOAD=name,URL`` (by
    reference), repeated or ``;``-separated; and every file part no
    ``UPLOAD`` names, under its own name."""
    uploads: list[NewUpload] = []
    parts = {part.lower(): part for part in form.files}
    used: set[str] = set()
    for value in (v for name, v in form.pairs if name == "upload"):
        for item in filter(str.strip, value.split(";")):
            name, _, source = (s.strip() for s in item.partition(","))
            if not name or not source:
                raise bad_value(
                    "upload", item, "expected name,param:part or name,URL"
                )
            if not source.lower().startswith("param:"):
                uploads.append(LinkUpload(name, source))
                continue
            part = parts.get(source[len("param:") :].lower())
            if part is None or part in used:
                raise bad_value(
                    "upload",
                    item,
                    "names no file part of the request (or one named before)",
                )
            used.add(part)
            uploads.append(replace(form.files[part], name=name))
    uploads += [f for part, f in form.files.items() if part not in used]
    return uploads


async def create_from(
    form: Form,
    task: str,
    service: JobService,
    caller: Caller,
    request: Request,
    *,
    sync: bool = False,
) -> Job:
    """Create a job of ``task`` from a UWS (or DALI) POST: its parameters,
    control parameters and files; started if ``PHASE=RUN`` or ``sync``.
    An ``Idempotency-Key`` header makes a repeated POST answer the job
    the first one made."""
    service.task(task)
    asked = update_of(form, creating=True)
    key = check_idempotency_key(request.headers.get("idempotency-key"))
    new = NewJob(
        task=task,
        parameters=asked.parameters or {},
        run_id=asked.run_id,
        start=sync or asked.action is not None,
        execution_duration=asked.execution_duration,
        destruction_time=asked.destruction_time,
        sync=sync,
        uploads=uploads_of(form),
        idempotency_key=key,
        run_after=time_value("runafter", form.get("runafter")),
        priority=asked.priority,
        concurrency_key=form.get("concurrencykey"),
        after=[
            job_id
            for value in form.values("afterjobs")
            for job_id in value.replace(",", " ").split()
        ],
        after_policy=after_policy(form.get("afterpolicy")),
        parent_id=form.get("parentjob"),
        notify=Notify(url, ("final",))
        if (url := form.get("notify"))
        else None,
        description=form.get("jobdescription"),
        retain_after_end=seconds(
            "retainafterend", form.get("retainafterend"), 0
        ),
    )
    return (await service.create(caller, new)).job


def wants_text(accept: str) -> bool:
    """Whether an ``Accept`` header asks for plain text rather than XML:
    ``text/plain`` named, and neither an XML type nor ``*/*``."""
    accept = accept.lower()
    return "text/plain" in accept and not any(
        kind in accept for kind in ("xml", "*/*")
    )


#: MIME type of VOTables (error documents included).
VOTABLE = "application/x-votable+xml"


def error_votable(
    message: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A VOTable carrying an error message (the IVOA habit: UWS
    ``/error``, DALI error documents)."""
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE type="results">'
        '<INFO name="QUERY_STATUS" value="ERROR">'
        f"{escape(clean_text(message))}</INFO>"
        "</RESOURCE></VOTABLE>"
    )
    return Response(
        document.encode(),
        status_code=status,
        media_type=VOTABLE,
        headers=headers,
    )
