"""VOSI availability and capabilities of the service."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Response
from vo_models.vosi.availability.models import Availability

from ..dependencies.context import BaseUrl, Ops, Service
from ..models.text import clean_text

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/availability",
    summary="VOSI availability",
    description=(
        "Whether the service can take and run jobs: ``false`` while its"
        " Redis cannot be reached, or while no worker has been seen for"
        " the stall timeout (jobs are accepted then, but wait)."
    ),
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def availability(operations: Ops) -> Response:
    problem = await operations.unavailable()
    gap = await operations.worker_gap() if problem is None else None
    if problem is not None:
        available, note = False, f"job store unreachable: {problem}"
    elif gap is not None:
        available, note = False, f"accepting jobs, but {gap}"
    else:
        available, note = True, "service is accepting jobs"
    body = Availability(available=available, note=[clean_text(note)]).to_xml(
        encoding="UTF-8", xml_declaration=True
    )
    return Response(body, media_type="application/xml")


@router.get(
    "/capabilities",
    summary="VOSI capabilities",
    description="One UWS job list per task, plus the VOSI endpoints.",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def capabilities(service: Service, base_url: BaseUrl) -> Response:
    def capability(standard: str, url: str) -> str:
        return (
            f"<capability standardID={quoteattr(standard)}>"
            '<interface xsi:type="vs:ParamHTTP" role="std">'
            f'<accessURL use="base">{escape(url)}</accessURL>'
            "</interface></capability>"
        )

    parts = [
        capability(
            "ivo://ivoa.net/std/VOSI#capabilities", f"{base_url}/capabilities"
        ),
        capability(
            "ivo://ivoa.net/std/VOSI#availability", f"{base_url}/availability"
        ),
    ]
    parts += [
        capability("ivo://ivoa.net/std/UWS", f"{base_url}/{task.name}/jobs")
        for task in service.tasks()
    ]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<vosi:capabilities"
        ' xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1">'
        + "".join(parts)
        + "</vosi:capabilities>"
    )
    return Response(body, media_type="application/xml")
