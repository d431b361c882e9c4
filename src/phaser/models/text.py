"""What text and values phaser stores and renders.

Everything a client sends is checked here before it is stored, so that
every stored value can be rendered by both dialects: XML 1.0 cannot carry
most C0 control characters, U+FFFE, U+FFFF or lone surrogates, UTF-8
(hence JSON on the wire) cannot carry lone surrogates, and JSON has no
``NaN`` or infinities. Deeply nested values are refused as well: they cost
every later read a recursion, and pydantic stops serializing at about 256
levels.

Text that phaser did not check on the way in (a task's error or progress
message, a record written by an older version) is made safe on the way out
with `clean_text`, which replaces what XML cannot carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidParametersError, InvalidRequestError

__all__ = [
    "MAX_DEPTH",
    "check_text",
    "check_value",
    "clean_text",
    "clean_value",
    "has_illegal",
]

#: Deepest nesting of arrays and objects accepted in a parameter value.
MAX_DEPTH = 32

#: Characters XML 1.0 cannot carry (its ``Char`` production, negated);
#: lone surrogates are among them.
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_REPLACEMENT = "\ufffd"


def has_illegal(text: str) -> bool:
    """Whether the text has a character XML 1.0 (or UTF-8) cannot carry."""
    return _ILLEGAL.search(text) is not None


def clean_text(text: str) -> str:
    """The text with every character XML 1.0 cannot carry replaced by
    U+FFFD (for text phaser did not check on the way in)."""
    if _ILLEGAL.search(text) is None:
        return text
    return _ILLEGAL.sub(_REPLACEMENT, text)


def clean_value(value: Any) -> Any:
    """`clean_text` applied to every string in a JSON value (keys too)."""
    match value:
        case str():
            return clean_text(value)
        case dict():
            return {
                clean_text(str(k)): clean_value(v) for k, v in value.items()
            }
        case list():
            return [clean_value(v) for v in value]
        case float() if not math.isfinite(value):
            return None
        case _:
            return value


def _describe(text: str) -> str:
    match = _ILLEGAL.search(text)
    assert match is not None
    return f"U+{ord(match.group()):04X} at position {match.start()}"


def check_text(field: str, text: str) -> None:
    """Refuse text with a character XML 1.0 cannot carry.

    Raises
    ------
    InvalidRequestError
        It has one; the message names the field and the character
        (`InvalidParametersError` for a field under ``parameters``).
    """
    if has_illegal(text):
        raise _invalid(
            field, f"character {_describe(text)} is not allowed in text"
        )


def check_value(field: str, value: Any) -> None:
    """Refuse a JSON value that cannot be stored and rendered everywhere:
    text `check_text` refuses (in keys too), non-finite numbers, nesting
    deeper than `MAX_DEPTH`.

    Raises
    ------
    InvalidRequestError
        The message names the field (with the path inside the value).
    """
    # Iterative, so that a hostile depth costs no recursion here.
    pending: list[tuple[str, Any, int]] = [(field, value, 0)]
    while pending:
        path, item, depth = pending.pop()
        match item:
            case str():
                check_text(path, item)
            case float() if not math.isfinite(item):
                raise _invalid(path, f"{item} is not a JSON number")
            case Mapping() | list() if depth >= MAX_DEPTH:
                raise _invalid(path, f"nested deeper than {MAX_DEPTH} levels")
            case Mapping():
                for key, child in item.items():
                    name = str(key)
                    check_text(f"{path} (a name)", name)
                    pending.append((f"{path}.{name}", child, depth + 1))
            case list():
                for index, child in enumerate(item):
                    pending.append((f"{path}[{index}]", child, depth + 1))


def _invalid(field: str, why: str) -> InvalidRequestError:
    shown = clean_text(field)
    kind = (
        InvalidParametersError
        if shown.startswith("parameters")
        else InvalidRequestError
    )
    return kind(
        f"Invalid value of {shown}: {why}",
        fields=[{"field": shown, "message": why}],
    )
