"""What a browser needs from phaser: the XSLT that renders UWS documents.

UWS job and job-list documents carry an ``xml-stylesheet`` instruction
naming ``/static/uws.xsl`` (as DaCHS does), so a browser opening a job's
UWS URL shows a readable page while XML clients read the same document.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Response

__all__ = ["router"]

router = APIRouter()


@cache
def _stylesheet() -> bytes:
    return resources.files("phaser.ui").joinpath("uws.xsl").read_bytes()


@router.get(
    "/static/uws.xsl",
    summary="XSLT for UWS documents",
    description=(
        "Renders ``uws:job`` and ``uws:jobs`` as HTML in a browser; the"
        " documents name it in an ``xml-stylesheet`` instruction."
    ),
    response_class=Response,
    responses={200: {"content": {"text/xsl": {}}}},
)
async def uws_stylesheet() -> Response:
    return Response(
        _stylesheet(),
        media_type="text/xsl",
        headers={"Cache-Control": "public, max-age=3600"},
    )
