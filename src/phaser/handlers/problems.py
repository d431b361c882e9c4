"""Errors as RFC 9457 problem details, mapped to status codes in one place."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from ..models.errors import PhaserError
from ..models.text import clean_text, clean_value
from .methods import allowed_methods, options_response
from .routes import REDIS_DOWN

__all__ = ["install_problem_handlers", "problem"]

_logger = structlog.get_logger("phaser.http")

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    # Messages can quote what the client sent; JSON on the wire is UTF-8,
    # which cannot carry a lone surrogate.
    body: dict[str, Any] = {
        "type": f"urn:phaser:problem:{slug}",
        "title": title,
        "status": status,
        "detail": clean_text(detail),
    }
    if errors:
        body["errors"] = clean_value(errors)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _phaser_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PhaserError)
    return problem(
        exc.status_code,
        exc.slug,
        exc.title,
        exc.message,
        errors=exc.fields,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(
            400,
            "malformed-json",
            "Malformed JSON",
            "The request body is not valid JSON",
        )
    fields = [
        {"field": _location(tuple(e["loc"])), "message": e["msg"]}
        for e in errors
    ]
    text = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return problem(
        422, "invalid-request", "Invalid request", text, errors=fields
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        options = options_response(request)
        if options is not None:
            return options
        headers = {"Allow": ", ".join(allowed_methods(request))}
    return problem(
        exc.status_code,
        "http-error",
        str(exc.detail),
        str(exc.detail),
        headers=headers,
    )


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    _logger.warning("Redis unreachable", error=str(exc))
    return problem(
        503,
        "service-unavailable",
        "Service unavailable",
        REDIS_DOWN,
        headers={"Retry-After": "5"},
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error a client can cause as problem+json."""
    app.add_exception_handler(PhaserError, _phaser_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # Any Redis failure while serving a request is the job store being
    # unavailable (connection lost, still loading its data, a WATCH broken
    # by a dropped connection), never the client's fault.
    app.add_exception_handler(RedisError, _redis_down)
