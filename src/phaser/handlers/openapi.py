"""The OpenAPI document, as exact as the server's checks.

FastAPI describes a new job as ``{task: string, parameters: object}``;
the server accepts only registered tasks, each with its own parameters,
and only text and times it can store (see `phaser.models.text` and
`phaser.clock.to_utc`). A client generated from the document, or a
fuzzer, should find that what the document allows is accepted. So the
job-creation body becomes one variant per task, with that task's
parameter schema, and every free string and time gets the pattern the
server checks.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..config import Settings
from ..services.jobs import JobService
from ..tasks.registry import Task
from ..tasks.uploads import UPLOAD_NAME

__all__ = ["OPEN_PATHS", "install_openapi"]

#: Routes in the document that need no credentials in any mode (they
#: carry no job data; see docs/security.md).
OPEN_PATHS = (
    "/health",
    "/ready",
    "/availability",
    "/capabilities",
    "/api/v1/tasks",
)

#: Text XML 1.0 can carry (an ECMA 262 pattern, as JSON Schema uses).
TEXT_PATTERN = (
    "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\uFFFE\\uFFFF]*$"
)

#: RFC 3339 times from 1970 to 9998 with an offset: always within the
#: years the server stores once converted to UTC.
TIME_PATTERN = (
    "^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"
    "(:[0-9]{2}(\\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)

#: Any JSON value phaser stores: text it can carry, at any depth.
_JSON_VALUE: dict[str, Any] = {
    "title": "JSON value",
    "anyOf": [
        {"type": "string", "pattern": TEXT_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": TEXT_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the refined document (built once, on
    first use: the tasks are registered by then)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            service: JobService = app.state.job_service
            _refine(document, service)
            _security(document, app.state.settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _refine(document: dict[str, Any], service: JobService) -> None:
    schemas: dict[str, Any] = document["components"]["schemas"]
    schemas["JsonValue"] = _JSON_VALUE
    create = schemas["JobCreate"]
    variants = []
    hosts = service.settings.upload_hosts
    for task in service.tasks():
        if task.required_uploads and not hosts:
            # Only POST /api/v1/jobs/multipart can give this task its files.
            continue
        variant = copy.deepcopy(create)
        variant["title"] = f"JobCreate ({task.name})"
        variant["properties"]["task"] = {
            "type": "string",
            "enum": [task.name],
            "title": "Task",
        }
        parameters = _parameters(task, schemas, service)
        variant["properties"]["parameters"] = parameters
        # Parameters may be left out only if the task needs none.
        variant["required"] = (
            ["task", "parameters"] if parameters.get("required") else ["task"]
        )
        variant["properties"]["uploads"] = _references(task, service)
        if task.required_uploads:
            variant["required"].append("uploads")
        variants.append(variant)
    schemas["JobCreate"] = {
        "title": "JobCreate",
        "description": create.get("description", ""),
        "oneOf": variants,
    }
    patch = schemas["JobPatch"]["properties"]
    patch["parameters"] = {
        "anyOf": [_free_parameters(service), {"type": "null"}],
        "title": "Parameters",
        "description": "Parameters to change (merged); only while PENDING.",
    }
    for schema in schemas.values():
        _restrict(schema)
    for route, path in document["paths"].items():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                _restrict(parameter.get("schema", {}))
            if route.startswith("/{task}/"):
                # UWS answers invalid input with 400 text/plain, never
                # with FastAPI's 422 validation document.
                operation["responses"].pop("422", None)


def _security(document: dict[str, Any], settings: Settings) -> None:
    """Say how requests authenticate, by auth mode (nothing in ``none``)."""
    schemes: dict[str, Any]
    match settings.auth:
        case "none":
            return
        case "token":
            schemes = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Any user name; the token as password.",
                },
            }
        case "header":
            schemes = {
                "proxy": {
                    "type": "apiKey",
                    "in": "header",
                    "name": settings.auth_header,
                    "description": "Set by the authenticating proxy.",
                }
            }
    document["components"]["securitySchemes"] = schemes
    document["security"] = [{name: []} for name in schemes]
    for path in OPEN_PATHS:
        for operation in document["paths"].get(path, {}).values():
            operation["security"] = []


def _free_parameters(service: JobService) -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": service.settings.max_parameters,
        "propertyNames": {"pattern": TEXT_PATTERN},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    }


def _parameters(
    task: Task, schemas: dict[str, Any], service: JobService
) -> dict[str, Any]:
    """A task's parameter schema, its definitions moved to the document's
    components."""
    if task.parameters is None:
        return _free_parameters(service)
    schema = task.parameters_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    # The JSON API refuses names the task does not have.
    schema["additionalProperties"] = False
    return schema


def _references(task: Task, service: JobService) -> dict[str, Any]:
    """The uploads by reference a task's job may be given: URLs of the
    allowed hosts (none when no host is allowed), under the names of the
    files it takes (any name for a task without a parameter model)."""
    hosts = service.settings.upload_hosts
    if not hosts:
        return {"type": "object", "maxProperties": 0}
    names = "|".join(
        re.escape(host) + ("" if ":" in host else "(:[0-9]{1,5})?")
        for host in hosts
    )
    url = {"type": "string", "pattern": f"^https?://({names})(/[!-~]*)?$"}
    schema: dict[str, Any] = {
        "type": "object",
        "maxProperties": service.settings.max_uploads,
        "properties": dict.fromkeys(sorted(task.uploads), url),
        "required": sorted(task.required_uploads),
        "additionalProperties": url if task.parameters is None else False,
    }
    if task.parameters is None:
        schema["propertyNames"] = {"pattern": UPLOAD_NAME}
    return schema


def _restrict(schema: Any) -> None:
    """Give every free string the text pattern, and every date-time the
    time pattern, wherever they are in ``schema``."""
    if isinstance(schema, list):
        for item in schema:
            _restrict(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and "enum" not in schema:
        if schema.get("format") == "date-time":
            schema.setdefault("pattern", TIME_PATTERN)
        elif "pattern" not in schema and "format" not in schema:
            schema["pattern"] = TEXT_PATTERN
    # Objects that take members they do not name (free parameters, the
    # extra parameters a task's model ignores): names and values the
    # server can store.
    extra = schema.get("additionalProperties", True)
    if schema.get("type") == "object" and extra is True:
        schema["additionalProperties"] = {
            "$ref": "#/components/schemas/JsonValue"
        }
        schema.setdefault("propertyNames", {"pattern": TEXT_PATTERN})
    for key, value in schema.items():
        if key != "propertyNames":
            _restrict(value)
