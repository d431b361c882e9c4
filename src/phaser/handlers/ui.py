"""What a browser needs from phaser: UWS documents as pages.

UWS job and job-list documents carry an ``xml-stylesheet`` instruction
naming ``/static/uws.xsl`` (as DaCHS does), so a browser opening a job's
UWS URL shows a readable page while XML clients read the same document.
Chromium warns that it will drop XSLT, so a request that asks for XHTML
(every browser's ``Accept`` does; XML clients' do not — Java's default
asks for ``text/html`` but not XHTML) gets the page rendered by the same
stylesheet on the server (`uws_page`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Response
from lxml import etree

__all__ = ["router", "uws_page", "wants_page"]

router = APIRouter()


@cache
def _stylesheet() -> bytes:
    return resources.files("phaser.ui").joinpath("uws.xsl").read_bytes()


@cache
def _transform() -> etree.XSLT:
    return etree.XSLT(etree.fromstring(_stylesheet()))


def wants_page(accept: str) -> bool:
    """Whether a request's ``Accept`` is a browser's (asks for XHTML)."""
    return "application/xhtml+xml" in accept and "text/html" in accept


def uws_page(document: bytes) -> Response:
    """A UWS document as the HTML page the stylesheet makes of it."""
    page = _transform()(etree.fromstring(document))
    return Response(
        bytes(page), media_type="text/html; charset=utf-8"
    )  # the same page a browser's own XSLT would make


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
