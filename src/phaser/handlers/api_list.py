"""The JSON API's job list and count (``GET /api/v1/jobs``,
``GET /api/v1/jobs/count``), and field selection (``fields=``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from ..dependencies.context import BaseUrl, CurrentCaller, Service
from ..models.api import (
    CountModel,
    JobListModel,
    JobModel,
    problem_responses,
)
from ..models.api_fields import JobFieldsListModel
from ..models.errors import InvalidRequestError
from ..models.job_json import Fields, page_json
from ..models.phase import ExecutionPhase
from ..services.ids import JOB_ID_PATTERN

__all__ = ["FieldsQuery", "router", "selected_fields"]

router = APIRouter(responses=problem_responses(400, 401, 413, 422, 503))

#: What ``fields=`` may name, and what is always given.
_FIELDS = frozenset(JobModel.model_fields)
_ALWAYS = frozenset({"id", "href"})

#: What ``fields=`` may be: names of job fields, comma-separated (the
#: schema says so; `selected_fields` checks it, naming what is unknown).
_NAME = "(?:" + "|".join(sorted(_FIELDS, key=len, reverse=True)) + ")"
_FIELDS_PATTERN = rf"^ *{_NAME} *(?:, *{_NAME} *)*$"

#: The ``fields`` query parameter of the job and the job list.
FieldsQuery = Annotated[
    str | None,
    Query(
        max_length=2000,
        json_schema_extra={"pattern": _FIELDS_PATTERN},
        description=(
            "Comma-separated fields of the job to give (``id`` and"
            " ``href`` always come): e.g. ``id,phase,progress`` for a"
            " dashboard polling many jobs. Names: "
            + ", ".join(f"``{name}``" for name in JobModel.model_fields)
            + "."
        ),
    ),
]


def selected_fields(fields: str | None) -> Fields:
    """The fields ``fields=`` names (`None`: every one).

    Raises
    ------
    InvalidRequestError
        A name that is no field of a job.
    """
    if fields is None:
        return None
    names = {name.strip() for name in fields.split(",") if name.strip()}
    unknown = sorted(names - _FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"Unknown fields: {', '.join(unknown)}",
            fields=[{"field": "fields", "message": "unknown field"}],
        )
    return frozenset(names | _ALWAYS)


async def _filters(
    owner: Annotated[
        str | None,
        Query(max_length=128, description="Admins: whose jobs."),
    ] = None,
    task: Annotated[str | None, Query(max_length=64)] = None,
    phase: Annotated[list[ExecutionPhase] | None, Query()] = None,
    run_id: Annotated[str | None, Query(max_length=256)] = None,
    parent_id: Annotated[
        str | None,
        Query(pattern=JOB_ID_PATTERN, description="Only this job's children."),
    ] = None,
    top_level: Annotated[
        bool,
        Query(description="Only jobs that are no other job's child."),
    ] = False,
    after: Annotated[
        datetime | None, Query(description="Only jobs created after this.")
    ] = None,
) -> dict[str, Any]:
    return {
        "owner": owner,
        "task": task,
        "phases": phase,
        "run_id": run_id,
        "parent_id": parent_id,
        "top_level": top_level,
        "after": after,
    }


#: The filters a list and a count share.
Filters = Annotated[dict[str, Any], Depends(_filters)]


@router.get(
    "/jobs",
    summary="List jobs",
    description=(
        "Your jobs, newest first. Filters combine; ``phase`` may repeat."
        " Pass ``next_cursor`` of one page as ``cursor`` for the next."
        " ``total`` is how many match, over every page, where the indexes"
        " know it without reading jobs (no filter; ``task``, ``phase`` and"
        " ``after`` in any combination; ``parent_id`` with ``phase``);"
        " null with ``run_id``, ``top_level``, or ``parent_id`` with"
        " ``task`` or ``after``."
    ),
    # With ``fields``, each job has only those (the schema says both).
    response_model=JobListModel | JobFieldsListModel,
)
async def list_jobs(
    service: Service,
    caller: CurrentCaller,
    base_url: BaseUrl,
    filters: Filters,
    fields: FieldsQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(
            pattern=JOB_ID_PATTERN,
            description="``next_cursor`` of the previous page.",
        ),
    ] = None,
) -> Response:
    wanted = selected_fields(fields)
    page = await service.list(caller, cursor=cursor, limit=limit, **filters)
    total = await service.count(caller, **filters)
    # Rendered straight from the records (`JobListModel` is the schema):
    # building and validating a model per job was most of a page's time
    # (benchmark B4).
    body = page_json(
        page.jobs,
        page.next_cursor,
        base_url,
        total=total,
        admin=caller.admin,
        fields=wanted,
    )
    return Response(body, media_type="application/json")


@router.get(
    "/jobs/count",
    summary="Count jobs",
    description=(
        "How many of your jobs match the filters (those of the list):"
        ' ``{"count": n}``, or ``{"count": null}`` where the list\'s'
        " ``total`` is null."
    ),
    response_model=CountModel,
)
async def count_jobs(
    service: Service, caller: CurrentCaller, filters: Filters
) -> CountModel:
    return CountModel(count=await service.count(caller, **filters))
