"""Values of job record fields that are more than a number or a text:
read back from their stored JSON (see `phaser.storage.codec`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..clock import from_ms, to_ms
from ..models.job import (
    AfterPolicy,
    AttemptRun,
    JobMessage,
    JobUpload,
    MessageLog,
    Notify,
)
from ..models.phase import HISTORY_LETTER, ExecutionPhase
from ..models.text import clean_text

__all__ = [
    "CHILD_FIELD",
    "children_value",
    "ids_value",
    "json_list",
    "limits_value",
    "messages_text",
    "messages_value",
    "notify_value",
    "policy_value",
    "runs_text",
    "runs_value",
    "uploads_value",
]

#: The parent's record field counting its children in each phase
#: (``transition.lua``, ``create.lua`` and ``delete.lua`` keep them).
CHILD_FIELD = {phase: "c" + letter for phase, letter in HISTORY_LETTER.items()}


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


def messages_text(log: MessageLog) -> str:
    """A message log as stored: ``[dropped, [ms, text], …]``."""
    rows: list[Any] = [log.dropped]
    rows += [[to_ms(m.at), m.text] for m in log.items]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def messages_value(raw: str | None) -> MessageLog:
    if not raw:
        return MessageLog()
    dropped, *rows = json.loads(raw)
    return MessageLog(
        tuple(JobMessage(from_ms(int(at)), str(text)) for at, text in rows),
        int(dropped),
    )


def runs_text(runs: list[AttemptRun]) -> str:
    """Attempts as stored: ``[[attempt, entry, worker, ms], …]``."""
    return json.dumps(
        [[r.attempt, r.entry, r.worker, to_ms(r.at)] for r in runs],
        separators=(",", ":"),
    )


def runs_value(raw: str | None) -> list[AttemptRun]:
    return [
        AttemptRun(int(n), clean_text(str(e)), clean_text(str(w)), from_ms(at))
        for n, e, w, at in json_list(raw)
    ]


def children_value(data: Mapping[str, str]) -> dict[ExecutionPhase, int]:
    """A parent's children per phase (the phases with none left out)."""
    counts = {}
    for phase, name in CHILD_FIELD.items():
        count = int(data.get(name) or 0)
        if count > 0:
            counts[phase] = count
    return counts
