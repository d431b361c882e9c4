"""Submit forms made from a task's parameter JSON Schema."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request, Response

from ...dependencies.context import Service
from ...dependencies.uploads import RequestBody
from ...models.api import MAX_REQUEST_SECONDS
from ...models.errors import (
    InvalidRequestError,
    NotFoundError,
    UnknownTaskError,
)
from ...services.jobs import NewJob
from ...ui.forms import FormField, form_fields, read_form
from .common import (
    FormCaller,
    PageCaller,
    PageRoute,
    html_page,
    redirect,
)

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/ui/tasks/{task}")
async def submit_page(
    request: Request,
    task: str,
    service: Service,
    caller: PageCaller,
) -> Response:
    try:
        definition = service.task(task)
    except UnknownTaskError as exc:
        raise NotFoundError(exc.message) from None
    return html_page(
        "submit.html",
        request,
        max_seconds=MAX_REQUEST_SECONDS,
        max_upload_bytes=service.settings.max_upload_bytes,
        task=definition,
        fields=form_fields(definition.parameters_schema()),
        values={},
        problems={},
        message=None,
    )


@router.post("/ui/tasks/{task}")
async def submit(
    request: Request,
    task: str,
    service: Service,
    caller: FormCaller,
    body: RequestBody,
) -> Response:
    values = dict(body.pairs)
    # File inputs are named ``f.<upload>`` (the task's Upload fields).
    files = [
        replace(upload, name=part.removeprefix("f."))
        for part, upload in body.files.items()
        if part.startswith("f.")
    ]
    try:
        definition = service.task(task)
    except UnknownTaskError as exc:
        raise NotFoundError(exc.message) from None
    fields: list[FormField] = form_fields(definition.parameters_schema())
    parameters, problems = read_form(fields, values)
    message = None
    duration = values.get("execution_duration", "").strip()
    if duration and not (
        duration.isascii()
        and duration.isdigit()
        and int(duration) <= MAX_REQUEST_SECONDS
    ):
        message = (
            "Execution duration must be a whole number of seconds from 0"
            f" to {MAX_REQUEST_SECONDS}"
        )
    elif not problems:
        try:
            new = NewJob(
                task=definition.name,
                parameters=parameters,
                run_id=values.get("run_id", "").strip() or None,
                start=values.get("start") == "true",
                execution_duration=int(duration) if duration else None,
                strict=True,
                uploads=files,
            )
            job = (await service.create(caller, new)).job
        except InvalidRequestError as exc:
            message = exc.message
            for problem in exc.fields or []:
                name = str(problem.get("field", "")).removeprefix(
                    "parameters."
                )
                problems[name] = str(problem.get("message", ""))
        else:
            return redirect(request, f"/ui/jobs/{job.id}")
    return html_page(
        "submit.html",
        request,
        max_seconds=MAX_REQUEST_SECONDS,
        max_upload_bytes=service.settings.max_upload_bytes,
        status=422,
        task=definition,
        fields=fields,
        values={k.removeprefix("p."): v for k, v in values.items()},
        problems=problems,
        message=message or "The job was not created; see below.",
    )
