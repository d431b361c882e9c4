"""Submit forms made from a task's parameter JSON Schema.

Each property becomes one control with the schema's constraints as HTML
attributes (``min``, ``max``, ``step``, ``maxlength``, ``pattern``,
``required``), so the browser checks them before sending, and as words
beside the control. The server reads the form back into typed values
(`read_form`) and the task's own model checks them again: the browser's
checks are a convenience, never the guard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FormField", "form_fields", "read_form"]

Kind = Literal["integer", "number", "boolean", "text", "choice", "json"]

#: Name of the one field of a task without a parameter model.
FREE_FORM = "parameters"


@dataclass(slots=True)
class FormField:
    """One control of a submit form."""

    name: str
    label: str
    kind: Kind
    required: bool
    description: str | None = None
    #: The default as the control shows it ("" for none).
    default: str = ""
    #: HTML constraint attributes.
    attrs: dict[str, str] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)
    #: The constraints in words.
    constraints: list[str] = field(default_factory=list)


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Any:
    """A property's schema with ``$ref`` followed and an optional
    (``anyOf`` with ``null``) unwrapped; ``None`` if it may be null."""
    nullable = False
    options = node.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o.get("type") != "null"]
        nullable = len(rest) < len(options)
        if len(rest) == 1:
            node = {
                **rest[0],
                **{k: v for k, v in node.items() if k != "anyOf"},
            }
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node, nullable


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value)


def _field(
    schema: Mapping[str, Any],
    name: str,
    node: Mapping[str, Any],
    required: bool,
) -> FormField:
    node, nullable = _resolve(schema, node)
    kind: Kind
    attrs: dict[str, str] = {}
    words: list[str] = []
    choices: list[str] = []
    match node.get("type"):
        case _ if isinstance(node.get("enum"), list):
            kind = "choice"
            choices = [_shown(v) for v in node["enum"]]
        case "integer":
            kind = "integer"
            attrs["step"] = "1"
        case "number":
            kind = "number"
            attrs["step"] = "any"
        case "boolean":
            kind = "boolean"
        case "string":
            kind = "text"
        case _:
            kind = "json"
            words.append("JSON")
    if kind in {"integer", "number"}:
        for key, attr, word in (
            ("minimum", "min", "≥"),
            ("maximum", "max", "≤"),
            ("exclusiveMinimum", "min", ">"),
            ("exclusiveMaximum", "max", "<"),
        ):
            if isinstance(node.get(key), (int, float)):
                attrs[attr] = _shown(node[key])
                words.append(f"{word} {_shown(node[key])}")
    if kind == "text":
        if isinstance(node.get("maxLength"), int):
            attrs["maxlength"] = str(node["maxLength"])
            words.append(f"at most {node['maxLength']} characters")
        if isinstance(node.get("minLength"), int):
            attrs["minlength"] = str(node["minLength"])
            words.append(f"at least {node['minLength']} characters")
        if isinstance(node.get("pattern"), str):
            attrs["pattern"] = node["pattern"]
            words.append(f"matching {node['pattern']}")
    needed = required and not nullable and "default" not in node
    if needed:
        words.insert(0, "required")
    return FormField(
        name=name,
        label=str(node.get("title") or name),
        kind=kind,
        required=needed and kind != "boolean",
        description=node.get("description"),
        default=_shown(node.get("default")),
        attrs=attrs,
        choices=choices,
        constraints=words,
    )


def form_fields(schema: Mapping[str, Any]) -> list[FormField]:
    """The controls of a task's submit form, in the schema's order."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return [
            FormField(
                name=FREE_FORM,
                label="Parameters",
                kind="json",
                required=False,
                description="The job's parameters as a JSON object.",
                default="{}",
                constraints=["a JSON object"],
            )
        ]
    required = set(schema.get("required", []))
    return [
        _field(schema, name, node, name in required)
        for name, node in properties.items()
        if isinstance(node, dict)
    ]


def read_form(
    fields: list[FormField], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A submitted form as parameters, and a message per field that could
    not be read (the task's model checks the values themselves). Names
    the task does not have are refused, as the JSON API refuses them."""
    parameters: dict[str, Any] = {}
    problems: dict[str, str] = {}
    known = {one.name for one in fields}
    for name in form:
        if name.startswith("p.") and name[2:] not in known:
            problems[name[2:]] = "The task has no such parameter"
    for one in fields:
        raw = form.get(f"p.{one.name}", "")
        if one.kind == "boolean":
            parameters[one.name] = raw == "true"
            continue
        if raw == "":
            if one.required:
                problems[one.name] = "A value is required"
            continue
        try:
            parameters[one.name] = _value(one, raw)
        except ValueError as exc:
            problems[one.name] = str(exc)
    if [one.name for one in fields] == [FREE_FORM] and fields[
        0
    ].kind == "json":
        free = parameters.pop(FREE_FORM, {})
        if not isinstance(free, dict):
            problems[FREE_FORM] = "Must be a JSON object"
        else:
            parameters = free
    return parameters, problems


def _value(one: FormField, raw: str) -> Any:
    match one.kind:
        case "integer":
            try:
                return int(raw.strip())
            except ValueError:
                raise ValueError("Must be a whole number") from None
        case "number":
            try:
                number = float(raw.strip())
            except ValueError:
                raise ValueError("Must be a number") from None
            if not math.isfinite(number):
                raise ValueError("Must be a finite number")
            return number
        case "json":
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"Not valid JSON: {exc}") from None
            except RecursionError:
                raise ValueError("Nested too deeply") from None
        case "choice":
            if raw not in one.choices:
                raise ValueError(f"Must be one of {', '.join(one.choices)}")
            return raw
        case _:
            return raw
