"""Values on the ``phaser jobs`` command line: task parameters typed by
their schema, and ``NAME=VALUE`` options."""

from __future__ import annotations

import json
from typing import Any

from .client import ClientError

__all__ = ["coerce", "pairs"]


def coerce(pairs: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` (coerced by the schema's type for ``key``) and
    ``key:=json`` arguments as parameters.

    Raises
    ------
    ClientError
        An argument is not of either form, or its value does not fit.
    """
    properties: dict[str, Any] = schema.get("properties", {})
    parameters: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.rstrip(":"):
            raise ClientError(f"expected key=value or key:=json, got {pair!r}")
        if name.endswith(":"):
            name = name[:-1]
            try:
                parameters[name] = json.loads(text)
            except ValueError:
                raise ClientError(f"{name}: not JSON: {text!r}") from None
            continue
        kind = properties.get(name, {}).get("type")
        parameters[name] = _typed(name, text, kind)
    return parameters


def _typed(name: str, text: str, kind: str | None) -> Any:
    try:
        match kind:
            case "integer":
                return int(text)
            case "number":
                return float(text)
            case "boolean":
                if text.lower() not in {"true", "false", "1", "0"}:
                    raise ValueError(text)
                return text.lower() in {"true", "1"}
            case "array" | "object":
                return json.loads(text)
            case _:
                return text
    except ValueError:
        raise ClientError(f"{name}: expected {kind}, got {text!r}") from None


def pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` arguments, split."""
    pairs = []
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise ClientError(f"{option}: expected NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs
