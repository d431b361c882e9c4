"""Values of job record fields that are more than a number or a text:
read back from their stored JSON (see `phaser.storage.codec`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..clock import from_ms, to_ms
from ..models.job import (
    AfterPolicy,
    AttemptRun,
    ErrorType,
    JobError,
    JobMessage,
    JobUpload,
    MessageLog,
    Notify,
    Progress,
)
from ..models.phase import ExecutionPhase
from ..models.text import clean_text
from .keys import entry_name

__all__ = [
    "CHILD_FIELD",
    "children_value",
    "errors_text",
    "errors_value",
    "flag_value",
    "ids_value",
    "json_list",
    "limits_value",
    "messages_text",
    "messages_value",
    "notify_value",
    "policy_value",
    "progress_value",
    "runs_fields",
    "runs_value",
    "time_value",
    "uploads_text",
    "uploads_value",
]

#: The parent's record field counting its children in each phase: ``c``
#: and the phase's name (``transition.lua``, ``create.lua`` and
#: ``delete.lua`` keep them).
CHILD_FIELD = {phase: "c" + phase.value for phase in ExecutionPhase}


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


def uploads_text(uploads: list[JobUpload]) -> str:
    """Uploads as stored: ``[name, size, type, key, url]`` rows."""
    return json.dumps(
        [
            [u.name, u.size, u.mime_type, u.key or "", u.url or ""]
            for u in uploads
        ],
        separators=(",", ":"),
    )


def errors_text(errors: list[JobError]) -> str:
    """Errors as stored: a JSON list of ``{type, message, code, detail}``."""
    return json.dumps(
        [
            {
                "type": e.type.value,
                "message": e.message,
                "code": e.code,
                "detail": e.detail,
            }
            for e in errors
        ]
    )


def errors_value(raw: str) -> list[JobError]:
    return [
        JobError(
            type=ErrorType(e["type"]),
            message=e["message"],
            code=e.get("code"),
            detail=e.get("detail"),
        )
        for e in json_list(raw)
    ]


def progress_value(raw: str) -> Progress:
    value = json.loads(raw)
    return Progress(percent=value["percent"], message=value["message"])


def time_value(raw: str | None) -> datetime | None:
    """A stored time (ms since the epoch; empty or absent: none)."""
    return from_ms(int(raw)) if raw else None


def flag_value(raw: str) -> bool:
    """A flag: set by being there, whatever its value."""
    return True


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


#: The message log of most jobs (immutable, so shared).
_NO_MESSAGES = MessageLog()


def messages_value(raw: str | None) -> MessageLog:
    if not raw:
        return _NO_MESSAGES
    dropped, *rows = json.loads(raw)
    return MessageLog(
        tuple(JobMessage(from_ms(int(at)), str(text)) for at, text in rows),
        int(dropped),
    )


def runs_fields(runs: list[AttemptRun]) -> dict[str, str]:
    """Attempts as stored: a field ``r`` + the attempt number holding the
    worker and the claim time (ms), ``"host-12 1796066089126"`` — one
    short value each, not one growing list, so that a record keeps Redis'
    compact hash encoding (values up to 64 bytes); the queue entry is the
    attempt's (`entry_name`)."""
    return {f"r{r.attempt}": f"{r.worker} {to_ms(r.at)}" for r in runs}


def runs_value(
    job_id: str, attempts: int, data: Mapping[str, str]
) -> list[AttemptRun]:
    runs = []
    for attempt in range(1, attempts + 1):
        raw = data.get(_RUN_FIELDS[attempt] if attempt < 8 else f"r{attempt}")
        if raw is not None:
            worker, _, at = raw.rpartition(" ")
            runs.append(
                AttemptRun(
                    attempt,
                    entry_name(job_id, attempt),
                    clean_text(worker),
                    from_ms(int(at)),
                )
            )
    return runs


#: Field names of the first attempts' runs (most jobs have one).
_RUN_FIELDS = [f"r{n}" for n in range(8)]


def children_value(data: Mapping[str, str]) -> dict[ExecutionPhase, int]:
    """A parent's children per phase (the phases with none left out)."""
    counts = {}
    for phase, name in CHILD_FIELD.items():
        count = int(data.get(name) or 0)
        if count > 0:
            counts[phase] = count
    return counts
