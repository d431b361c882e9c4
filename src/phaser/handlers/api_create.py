"""Creating jobs through the JSON API: ``POST /api/v1/jobs`` (JSON) and
``POST /api/v1/jobs/multipart`` (the same JSON as a ``job`` part, and the
files the job is given as file parts); either may wait for the job's end
(``?sync=true``). And the download of a job's uploaded files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError

from ..dependencies.context import (
    BaseUrl,
    CurrentCaller,
    Service,
    get_service,
)
from ..dependencies.uploads import RequestBody
from ..models.api import JobModel, problem_responses
from ..models.caller import Caller
from ..models.errors import InvalidRequestError
from ..models.job import Notify
from ..models.job_json import dumps, job_document
from ..models.requests import KEY_PATTERN, JobCreate
from ..services.creation import check_idempotency_key
from ..services.jobs import JobService, NewJob
from ..services.uploads import LinkUpload, NewUpload
from ..services.waiting import JobWaiter
from .dali import until_disconnected
from .results import DOWNLOAD_RESPONSES, upload_response

__all__ = ["create_plainly", "router"]

router = APIRouter(responses=problem_responses(400, 401, 413, 422, 503))

_CREATE_EXAMPLES: dict[str, Any] = {
    "start": {
        "summary": "Create and start a job",
        "value": {
            "task": "sleep",
            "parameters": {"seconds": 2},
            "start": True,
            "run_id": "nightly-42",
        },
    },
    "pending": {
        "summary": "Create a job that waits to be started",
        "value": {"task": "echo", "parameters": {"greeting": "hello"}},
    },
}

_SYNC_TEXT = (
    " With ``?sync=true`` the job is started and the answer waits for its"
    " end (up to ``PHASER_SYNC_TIMEOUT``: then the job is aborted and the"
    " answer is 504); closing the connection aborts the job."
)


@dataclass(frozen=True, slots=True)
class _Creating:
    """What both creation routes answer with. Built by each route from
    its own parameters, not as a dependency: a dependency layer costs
    creation throughput (B1)."""

    request: Request
    service: JobService
    caller: Caller
    base_url: str
    sync: bool
    #: The ``Idempotency-Key`` header.
    key: str | None

    @property
    def waiter(self) -> JobWaiter:
        """Waits (only sync creations need it)."""
        waiter: JobWaiter = self.request.app.state.waiter
        return waiter


Sync = Annotated[
    bool, Query(description="Start the job and answer once it has ended.")
]
Key = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        description="Makes the creation safe to repeat (as"
        " ``idempotency_key``).",
    ),
]

#: The answer to a repeated creation.
_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {
        "model": JobModel,
        "description": "The job an earlier request with the same"
        " idempotency key made (header ``Idempotent-Replayed: true``).",
    }
}


async def _create(
    body: JobCreate, files: list[NewUpload], at: _Creating
) -> Response:
    references: list[NewUpload] = [
        LinkUpload(name, url) for name, url in body.uploads.items()
    ]
    # The header wins over the body field when both are given.
    key = check_idempotency_key(at.key or body.idempotency_key)
    made = await at.service.create(
        at.caller,
        NewJob(
            task=body.task,
            parameters=body.parameters,
            run_id=body.run_id,
            start=body.start or at.sync,
            execution_duration=body.execution_duration,
            destruction_time=body.destruction_time,
            strict=True,
            sync=at.sync,
            uploads=[*files, *references],
            idempotency_key=key,
            run_after=body.run_after,
            priority=body.priority,
            concurrency_key=body.concurrency_key,
            after=body.after,
            after_policy=body.after_policy,
            parent_id=body.parent_id,
            notify=Notify(body.notify.url, tuple(body.notify.events))
            if body.notify
            else None,
            description=body.description,
            retain_after_end=body.retain_after_end,
        ),
    )
    job = made.job
    headers: dict[str, str] = {}
    if made.replayed:
        headers["Idempotent-Replayed"] = "true"
    if at.sync:
        instead = f"{at.base_url}/api/v1/jobs (with start: true, then wait)"
        ended = await until_disconnected(
            at.request, at.waiter.finish_sync(at.caller, job, instead)
        )
        if ended is None:  # nobody is listening
            return Response(status_code=499)
        job = ended
    secret = None
    if job.notify is not None and not made.replayed:
        # The webhook's signing secret: this once.
        secret = made.job.notify_secret
        headers["Webhook-Secret"] = str(secret)
    document = job_document(job, at.base_url, secret=secret)
    headers["Location"] = document["href"]
    # Rendered straight from the record (`JobModel` is the schema): a
    # model built, validated and serialized cost a tenth of a creation
    # (B1).
    return Response(
        dumps(document),
        status_code=200 if made.replayed else 201,
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "/jobs",
    status_code=201,
    summary="Create a job",
    description=(
        "Creates a job of a task. With ``start: true`` the job is queued at"
        " once; otherwise it stays PENDING until started. Answers 201 with"
        " the job and its URL in ``Location``." + _SYNC_TEXT
    ),
    responses=problem_responses(403, 404, 409, 429, 504) | _REPLAYED,
    response_model=JobModel,
)
async def create_job(
    body: Annotated[JobCreate, Body(openapi_examples=_CREATE_EXAMPLES)],
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
    sync: Sync = False,
    key: Key = None,
) -> Response:
    at = _Creating(request, service, caller, base_url, sync, key)
    return await _create(body, [], at)


async def create_plainly(
    request: Request, body: JobCreate, *, caller: Caller, base_url: str
) -> Response:
    """`create_job` without ``?sync`` and the ``Idempotency-Key`` header
    (`phaser.handlers.fast_create`, ahead of FastAPI's routing)."""
    service = await get_service(request)
    at = _Creating(request, service, caller, base_url, False, None)
    return await _create(body, [], at)


@router.post(
    "/jobs/multipart",
    status_code=201,
    summary="Create a job with files",
    description=(
        "As ``POST /api/v1/jobs``, from a ``multipart/form-data`` body: a"
        " ``job`` part holding the same JSON, and one file part per file"
        " the task takes, named as its parameter. Files are checked against"
        " ``PHASER_MAX_UPLOAD_BYTES`` (413) before the job exists."
        + _SYNC_TEXT
    ),
    responses=problem_responses(403, 404, 409, 429, 504) | _REPLAYED,
    response_model=JobModel,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["job"],
                        "properties": {
                            "job": {
                                "type": "string",
                                "description": "The job, as JSON"
                                " (``POST /api/v1/jobs``' body).",
                            }
                        },
                        "additionalProperties": {
                            "type": "string",
                            "format": "binary",
                        },
                    }
                }
            },
        }
    },
)
async def create_job_with_files(
    form: RequestBody,
    request: Request,
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
    sync: Sync = False,
    key: Key = None,
) -> Response:
    at = _Creating(request, service, caller, base_url, sync, key)
    text = [value for name, value in form.pairs if name == "job"]
    if len(text) != 1:
        raise InvalidRequestError(
            "Expected a multipart/form-data body with one job part (JSON)"
        )
    try:
        body = JobCreate.model_validate_json(text[0])
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "job", *e["loc"])} for e in exc.errors()]
        ) from None
    return await _create(body, list(form.files.values()), at)


@router.get(
    "/jobs/{job_id}/uploads/{name}",
    summary="Download an uploaded file",
    description="A file the job was given with its request, for its owner.",
    response_class=FileResponse,
    responses={**problem_responses(404), **DOWNLOAD_RESPONSES},
)
async def get_upload(
    job_id: str, name: str, service: Service, caller: CurrentCaller
) -> Response:
    job = await service.get(caller, job_id)
    return await upload_response(service, job, name)
