"""VOSI availability and capabilities: of the whole service (``/``) and of
each task as a DALI service (``/{task}``), whose UWS job list is also
reachable as DALI's ``/{task}/async`` (`DaliPaths`)."""

from __future__ import annotations

from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from vo_models.vosi.availability.models import Availability

from ..dependencies.context import BaseUrl, Ops, Service
from ..dependencies.uws import LIST_NAME
from ..models.text import clean_text
from ..services.operations import Operations
from ..tasks.registry import RESERVED_NAMES
from .uws_params import ERRORS, UWSRoute

__all__ = ["DaliPaths", "router", "task_router"]

#: VOSI and UWS standard identifiers.
_CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
_AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"
_UWS = "ivo://ivoa.net/std/UWS"
#: DALI defines sync but no standard id for it (each DAL protocol names
#: its own, e.g. SODA's ``#sync-1.0``); a task is no particular protocol,
#: so its sync capability has phaser's id, described.
_SYNC = "urn:x-phaser:std:dali-sync-1.1"
_DESCRIPTIONS = {
    _SYNC: "DALI sync: the task's parameters in, its first result out"
    " (errors as DALI VOTable error documents)",
}

_XML_DOC: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/xml": {}}}
}

router = APIRouter()

#: The per-task routes: included after every other router, so that
#: ``/{task}/…`` shadows none of the server's own paths.
task_router = APIRouter(route_class=UWSRoute, responses=ERRORS)


class DaliPaths:
    """ASGI middleware: DALI's ``/{task}/async…`` is the task's UWS job
    list ``/{task}/jobs…``, the same resource under its DALI name. The
    name the client used is kept in the request, so the links of the
    answer stay under ``/async`` (`phaser.dependencies.uws.Links`)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # The rewrite in a function of its own: nothing of it stays in
        # this frame while the request runs (a frontend holds thousands of
        # waits, B6).
        await self._app(_dali_scope(scope), receive, send)


def _dali_scope(scope: Scope) -> Scope:
    """The request's scope, with a DALI job list path rewritten."""
    if scope["type"] != "http":
        return scope
    parts = scope["path"].split("/", 3)
    if len(parts) < 3 or parts[2] != "async" or not parts[1]:
        return scope
    if parts[1] in RESERVED_NAMES:
        return scope
    rest = f"/{parts[3]}" if len(parts) == 4 else ""
    path = f"/{parts[1]}/jobs{rest}"
    return {
        **scope,
        "path": path,
        "raw_path": quote(path).encode("ascii"),
        LIST_NAME: "async",
    }


async def _availability(operations: Operations) -> Response:
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


def _capabilities(entries: list[tuple[str, str]]) -> Response:
    """A VOSI capabilities document of (standard id, access URL) pairs
    (phaser's own ids are described: `_DESCRIPTIONS`).

    Written by hand: vo-models' `VOSICapabilities` writes an empty
    ``xsi:type`` on each capability, which is not a valid QName.
    """
    parts = []
    for standard, url in entries:
        parts.append(f"<capability standardID={quoteattr(standard)}>")
        if standard in _DESCRIPTIONS:
            parts.append(
                f"<description>{escape(_DESCRIPTIONS[standard])}</description>"
            )
        parts.append(
            '<interface xsi:type="vs:ParamHTTP" role="std">'
            f'<accessURL use="base">{escape(url)}</accessURL></interface>'
            "</capability>"
        )
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


_AVAILABILITY_TEXT = (
    "Whether the service can take and run jobs: ``false`` while its Redis"
    " cannot be reached, or while no worker has been seen for the stall"
    " timeout (jobs are accepted then, but wait)."
)


@router.get(
    "/availability",
    summary="VOSI availability",
    description=_AVAILABILITY_TEXT,
    response_class=Response,
    responses=_XML_DOC,
)
async def availability(operations: Ops) -> Response:
    return await _availability(operations)


@router.get(
    "/capabilities",
    summary="VOSI capabilities",
    description="One UWS job list per task, plus the VOSI endpoints.",
    response_class=Response,
    responses=_XML_DOC,
)
async def capabilities(service: Service, base_url: BaseUrl) -> Response:
    entries = [
        (_CAPABILITIES, f"{base_url}/capabilities"),
        (_AVAILABILITY, f"{base_url}/availability"),
    ]
    entries += [(_UWS, f"{base_url}/{t.name}/jobs") for t in service.tasks()]
    return _capabilities(entries)


@task_router.get(
    "/{task}/availability",
    summary="VOSI availability of a task's DALI service",
    description=_AVAILABILITY_TEXT + " The same for every task.",
    response_class=Response,
    responses=_XML_DOC,
)
async def task_availability(
    task: str, service: Service, operations: Ops
) -> Response:
    service.task(task)
    return await _availability(operations)


@task_router.get(
    "/{task}/capabilities",
    summary="VOSI capabilities of a task's DALI service",
    description="The task's UWS job list (DALI ``/async``), its DALI"
    " ``/sync`` and its VOSI endpoints.",
    response_class=Response,
    responses=_XML_DOC,
)
async def task_capabilities(
    task: str, service: Service, base_url: BaseUrl
) -> Response:
    service.task(task)
    base = f"{base_url}/{task}"
    return _capabilities(
        [
            (_CAPABILITIES, f"{base}/capabilities"),
            (_AVAILABILITY, f"{base}/availability"),
            (_UWS, f"{base}/async"),
            (_SYNC, f"{base}/sync"),
        ]
    )
