"""Values of job record fields that are more than a number or a text:
read back from their stored JSON (see `phaser.storage.codec`)."""

from __future__ import annotations

import json
from typing import Any

from ..models.job import AfterPolicy, JobUpload, Notify
from ..models.text import clean_text

__all__ = [
    "ids_value",
    "json_list",
    "limits_value",
    "notify_value",
    "policy_value",
    "uploads_value",
]


def notify_value(raw: str | None) -> Notify | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return Notify(str(value["url"]), tuple(value["events"]))


def json_list(raw: str | None) -> list[Any]:
    """A stored JSON list; most records have none of most lists, and an
    absent one is not parsed (decoding a record is on every job's path)."""
    return json.loads(raw) if raw else []


def ids_value(raw: str | None) -> list[str]:
    return [clean_text(str(value)) for value in json_list(raw)]


def policy_value(raw: str | None) -> AfterPolicy:
    return "any_end" if raw == "any_end" else "all_completed"


def limits_value(raw: str | None) -> dict[str, int]:
    if not raw:
        return {}
    return {str(k): int(v) for k, v in json.loads(raw).items()}


def uploads_value(raw: str | None) -> list[JobUpload]:
    return [
        JobUpload(
            name=row[0],
            size=int(row[1]),
            mime_type=row[2],
            key=row[3] or None,
            url=row[4] or None,
        )
        for row in json_list(raw)
    ]
