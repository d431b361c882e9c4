"""UWS 1.1 XML documents, rendered through vo-models.

The job record is rendered as ``uws:job``, ``uws:jobs``, ``uws:results`` and
``uws:parameters``. phaser adds task progress inside ``uws:jobInfo`` in its
own namespace.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from pydantic_xml import BaseXmlModel, element
from vo_models.uws import (
    ErrorSummary,
    JobSummary,
    Parameter,
    Parameters,
    ResultReference,
    Results,
)
from vo_models.uws.models import NSMAP
from vo_models.uws.types import ErrorType as UwsErrorType
from vo_models.uws.types import ExecutionPhase as UwsPhase

from ..clock import format_time
from .job import Job
from .text import clean_text
from .uws_info import PHASER_NAMESPACE, JobInfo, job_info

__all__ = [
    "PHASER_NAMESPACE",
    "render_job",
    "render_job_list",
    "render_parameters",
    "render_results",
]


class PhaserParameters(Parameters, tag="parameters", ns="uws", nsmap=NSMAP):
    """``uws:parameters`` holding any set of parameters.

    vo-models expects one model field per parameter; phaser's parameters
    are per task and, for tasks like ``echo``, arbitrary, so this keeps them
    as one list of ``uws:parameter`` elements.
    """

    parameter: list[Parameter] = element(tag="parameter", default_factory=list)

    def __init__(self, **data: Any) -> None:
        # Skip Parameters.__init__, which regroups parameters into fields.
        BaseXmlModel.__init__(self, **data)


class PhaserJob(JobSummary[PhaserParameters], tag="job"):
    """``uws:job`` with phaser's ``jobInfo``."""

    job_info: JobInfo | None = element(  # type: ignore[assignment]
        tag="jobInfo", default=None
    )


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    import json

    return json.dumps(value)


def _values(value: Any) -> list[Any]:
    """A parameter's values as UWS lists them: a non-empty list of plain
    values is a repeated parameter, one element per value; anything else
    is one element."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (str, int, float, bool)) for v in value)
    ):
        return value
    return [value]


def _parameters(job: Job, job_url: str) -> PhaserParameters:
    """The parameters, then the uploads: by reference, their URL (the
    owner's download URL for a file uploaded with the request)."""
    return PhaserParameters(
        parameter=[
            Parameter(id=name, value=_value(one))
            for name, value in job.parameters.items()
            for one in _values(value)
        ]
        + [
            Parameter(
                id=upload.name,
                value=upload.url or f"{job_url}/uploads/{upload.name}",
                by_reference=True,
            )
            for upload in job.uploads
        ]
    )


def _results(job: Job, job_url: str) -> Results:
    return Results(
        results=[
            ResultReference(
                id=result.id,
                href=f"{job_url}/results/{result.id}",
                size=result.size,
                mime_type=result.mime_type,
            )
            for result in job.results
        ]
    )


def _xml(model: BaseXmlModel) -> bytes:
    data: bytes = model.to_xml(  # type: ignore[assignment]
        encoding="UTF-8", xml_declaration=True
    )
    # vo-models writes an absent runId as an empty element; the schema
    # allows that, but absent is what it means.
    return data.replace(b"<uws:runId></uws:runId>", b"")


def with_stylesheet(document: bytes, stylesheet: str | None) -> bytes:
    """The document with an ``xml-stylesheet`` instruction after its XML
    declaration (browsers render it through that XSLT; XML clients and the
    schema ignore it)."""
    if stylesheet is None:
        return document
    declaration, newline, rest = document.partition(b"\n")
    instruction = (
        f'<?xml-stylesheet type="text/xsl" href="{_attr(stylesheet)}"?>'
    ).encode()
    return declaration + newline + instruction + b"\n" + rest


def render_job(
    job: Job,
    job_url: str,
    *,
    stylesheet: str | None = None,
    admin: bool = False,
) -> bytes:
    """The ``uws:job`` document of a job (with an ``xml-stylesheet``
    instruction naming ``stylesheet``, if given; for an ``admin``, with
    its attempts' queue entries and workers)."""
    error = None
    first = job.shown_error
    if first is not None:
        error = ErrorSummary(
            message=first.message,
            type=UwsErrorType(first.type.value),
            has_detail=True,
        )
    info = job_info(job, admin=admin)
    document = PhaserJob(
        job_id=job.id,
        run_id=job.run_id,
        owner_id=job.owner,
        phase=UwsPhase(job.phase.value),
        quote=job.quote,
        creation_time=job.created_at,
        start_time=job.started_at,
        end_time=job.ended_at,
        execution_duration=job.execution_duration,
        destruction=job.destruction_time,
        parameters=_parameters(job, job_url),
        results=_results(job, job_url),
        error_summary=error,
        job_info=info,
    )
    return with_stylesheet(_xml(document), stylesheet)


def render_job_list(
    jobs: list[Job], list_url: str, *, stylesheet: str | None = None
) -> bytes:
    """The ``uws:jobs`` document of some jobs (with an ``xml-stylesheet``
    instruction naming ``stylesheet``, if given).

    Written directly rather than through vo-models: a page of 100 jobrefs
    took over 10 ms through pydantic-xml and lxml (benchmark B4), this takes
    well under one. It writes the very bytes vo-models writes, which
    ``tests/test_uws.py`` checks by rendering both.
    """
    if not jobs:
        return with_stylesheet(_JOBS_EMPTY, stylesheet)
    parts = [_JOBS_OPEN]
    for job in jobs:
        href = _attr(f"{list_url}/{job.id}")
        parts.append(
            f'<uws:jobref id="{_attr(job.id)}" xlink:type="simple"'
            f' xlink:href="{href}"><uws:phase>{job.phase.value}</uws:phase>'
        )
        if job.run_id:
            parts.append(f"<uws:runId>{_text(job.run_id)}</uws:runId>")
        if job.owner is None:
            parts.append('<uws:ownerId xsi:nil="true"></uws:ownerId>')
        else:
            parts.append(f"<uws:ownerId>{_text(job.owner)}</uws:ownerId>")
        parts.append(
            f"<uws:creationTime>{format_time(job.created_at)}"
            "</uws:creationTime></uws:jobref>"
        )
    parts.append("</uws:jobs>")
    return with_stylesheet("".join(parts).encode(), stylesheet)


_JOBS_START = (
    "<?xml version='1.0' encoding='UTF-8'?>\n<uws:jobs"
    ' xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"'
    ' xmlns:xlink="http://www.w3.org/1999/xlink"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.1"'
)
_JOBS_OPEN = _JOBS_START + ">"
_JOBS_EMPTY = (_JOBS_START + "/>").encode()
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _text(value: str) -> str:
    return escape(clean_text(value), {"\r": "&#13;"})


def _attr(value: str) -> str:
    return escape(clean_text(value), _ATTR_ENTITIES)


def render_results(job: Job, job_url: str) -> bytes:
    """The ``uws:results`` document of a job."""
    return _xml(_results(job, job_url))


def render_parameters(job: Job, job_url: str) -> bytes:
    """The ``uws:parameters`` document of a job."""
    return _xml(_parameters(job, job_url))
