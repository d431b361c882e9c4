"""Plain creations served ahead of FastAPI's routing: JSON (``POST
/api/v1/jobs`` with a JSON body) and UWS (``POST /{task}/jobs`` with a
form body), without a query or an ``Idempotency-Key`` header.

Creation is the busiest write a frontend takes (benchmark B1); under
FastAPI a fifth of it went to solving the route's dependencies, and for
UWS another tenth to trying the routes before ``/{task}/jobs`` (matched
last, so that it shadows none). This layer answers with the routes' own
code and models: JSON bodies are validated with `JobCreate` as FastAPI
would (the parsed JSON, in Python mode) and answered by
`phaser.handlers.api_create.create_plainly`; forms are read by
`phaser.dependencies.uploads.read_body` and answered by
`phaser.handlers.uws.created`, errors by each dialect's own answers.
Anything else — a query, the header, another content type or path, a
JSON body that is not a valid `JobCreate` (its body replayed) — goes on
to FastAPI as before; the answers are the same either way
(``tests/test_access.py``). It sits inside the body size limit.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..dependencies.context import get_caller, public_base_url
from ..dependencies.uploads import read_body
from ..dependencies.uws import LIST_NAME, Form, links_of
from ..models.errors import UnknownTaskError
from ..models.requests import JobCreate
from ..services.jobs import JobService
from ..tasks.registry import RESERVED_NAMES
from .ahead import StandIn, handled
from .api_create import create_plainly
from .routes import DIALECT_ERRORS, dialect_answer
from .uws import created
from .uws_params import uws_error

__all__ = ["CreateFastPath"]

_JSON_PATH = "/api/v1/jobs"
_JSON_ROUTE = StandIn(_JSON_PATH)
_UWS_ROUTE = StandIn("/{task}/jobs")
_JSON = b"application/json"
_FORM = b"application/x-www-form-urlencoded"


def _content_type(scope: Scope) -> bytes | None:
    """The request's media type; `None` with an ``Idempotency-Key``
    (left to the routes, which check it)."""
    kind = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
        elif name == b"idempotency-key":
            return None
    return kind


def _uws_task(scope: Scope, service: JobService) -> str | None:
    """The task of a ``/{task}/jobs`` path, if it is a known task's."""
    parts = scope["path"].split("/")
    if (
        len(parts) != 3
        or parts[2] != "jobs"
        or parts[1] in RESERVED_NAMES
        or LIST_NAME in scope
    ):
        return None
    try:
        service.task(parts[1])
    except UnknownTaskError:
        return None
    return parts[1]


async def _body(receive: Receive) -> bytes | None:
    """The whole body; `None` if the client left before sending it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class CreateFastPath:
    """ASGI middleware: answers plain creations itself."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        kind = (
            _content_type(scope)
            if scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope["query_string"]
            and not scope.get("root_path")
            else None
        )
        if kind == _JSON and scope["path"] == _JSON_PATH:
            await self._json(scope, receive, send)
            return
        if kind == _FORM:
            service: JobService = scope["app"].state.job_service
            task = _uws_task(scope, service)
            if task is not None:
                await _uws(scope, receive, send, task, service)
                return
        await self._app(scope, receive, send)

    async def _json(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _body(receive)
        if body is None:
            return
        try:
            asked = JobCreate.model_validate(json.loads(body))
        except (ValueError, RecursionError, ValidationError):
            # FastAPI's validation answers it (json.JSONDecodeError and
            # UnicodeDecodeError are ValueErrors).
            await self._app(scope, _replay(body, receive), send)
            return
        _JSON_ROUTE.enter(scope)
        request = Request(scope, receive)
        try:
            response = await create_plainly(
                request,
                asked,
                caller=await get_caller(request),
                base_url=await public_base_url(request),
            )
        except Exception as exc:
            response = await handled(request, exc)
        await response(scope, receive, send)


async def _uws(
    scope: Scope, receive: Receive, send: Send, task: str, service: JobService
) -> None:
    _UWS_ROUTE.enter(scope, task=task)
    request = Request(scope, receive)
    response: Response
    try:
        # In the order the route's dependencies run.
        body = await read_body(request)
        caller = await get_caller(request)
        links = await links_of(request, task)
        response = await created(
            request, Form(body.pairs, body.files), task, service, caller, links
        )
    except DIALECT_ERRORS as exc:
        response = dialect_answer(uws_error, request, exc)
    except Exception as exc:
        response = await handled(request, exc)
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read handed out again first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
