"""How a job is stored: the fields of its Redis hash, encoded and back.

Record values are kept short (times as milliseconds, results as compact
lists, the phase history as letters and base-36 offsets) so that Redis
keeps a small job's hash in its compact encoding. A record this version
cannot read in full is decoded field by field, so it still renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import structlog

from ..clock import from_ms, to_ms
from ..models.job import (
    DEFAULT_PRIORITY,
    ErrorType,
    Job,
    JobError,
    JobResult,
    MessageLog,
    Progress,
)
from ..models.phase import ExecutionPhase, parse_phase
from ..models.text import clean_text, clean_value
from .history import history_text, read_history
from .values import (
    children_value,
    errors_text,
    errors_value,
    flag_value,
    ids_value,
    json_list,
    limits_value,
    messages_text,
    messages_value,
    notify_value,
    policy_value,
    progress_value,
    runs_fields,
    runs_value,
    time_value,
    uploads_text,
    uploads_value,
)

__all__ = [
    "FIELD",
    "AnyJob",
    "JobRef",
    "decode",
    "decode_flat",
    "encode",
    "encode_fields",
    "result_row",
]

_logger = structlog.get_logger("phaser.storage")


@dataclass(frozen=True, slots=True)
class JobRef:
    """What identifies a job's keys, and its phase: enough to change or
    delete it without reading (and decoding) the whole record."""

    id: str
    owner: str | None
    task: str
    phase: ExecutionPhase


#: A job as the store's writes need it: the record, or a reference.
AnyJob = Job | JobRef


#: Redis hash field of each `Job` attribute (short names keep records small;
#: the id is the record's key, not a field).
FIELD = {
    "task": "task",
    "owner": "owner",
    "phase": "phase",
    "parameters": "params",
    "created_at": "created",
    "execution_duration": "duration",
    "destruction_time": "destroy",
    "run_id": "run_id",
    "started_at": "started",
    "ended_at": "ended",
    "quote": "quote",
    "results": "results",
    "errors": "errors",
    "progress": "progress",
    "attempts": "attempts",
    "ignored": "ignored",
    "queue": "queue",
    "claim": "claim",
    "heartbeat_at": "beat",
    "sync": "sync",
    "uploads": "uploads",
    "run_after": "runat",
    "priority": "prio",
    "concurrency_key": "ckey",
    "limits": "limits",
    "after": "after",
    "after_policy": "apol",
    "parent_id": "parent",
    "has_dependants": "deps",
    "has_children": "kids",
    "notify": "notify",
    "notify_secret": "nsecret",
    "trace": "trace",
    "description": "desc",
    "info": "info",
    "warnings": "warn",
    "retain_after_end": "retain",
    "no_abort": "noabort",
}

#: Attributes left out of a record while empty.
_EMPTY_LEFT_OUT: tuple[str, ...] = ("results", "errors", "ignored")
_EMPTY_LEFT_OUT += ("uploads", "limits", "after", "info", "warnings")
_EMPTY_LEFT_OUT += ("sync", "has_dependants", "has_children")


def result_row(job_id: str, result: JobResult) -> list[Any]:
    """A result as stored: ``[id, size, mime type, key]``, the key without
    the job id it starts with (keeps the value short)."""
    key = result.key.removeprefix(f"{job_id}/")
    return [result.id, result.size, result.mime_type, key]


def _result_from_row(job_id: str, row: list[Any]) -> JobResult:
    key = row[3] if "/" in row[3] else f"{job_id}/{row[3]}"
    return JobResult(id=row[0], size=int(row[1]), mime_type=row[2], key=key)


def _encode_value(job_id: str, name: str, value: Any) -> str:
    match name:
        case "parameters" | "ignored" | "limits" | "after":
            return json.dumps(value, separators=(",", ":"))
        case "results":
            return json.dumps(
                [result_row(job_id, r) for r in value], separators=(",", ":")
            )
        case "errors":
            return errors_text(value)
        case "progress":
            return json.dumps(
                {"percent": value.percent, "message": value.message}
            )
        case "sync" | "has_dependants" | "has_children":
            return "1"
        case "info" | "warnings":
            return messages_text(value)
        case "notify":
            return json.dumps({"url": value.url, "events": list(value.events)})
        case "uploads":
            return uploads_text(value)
        case _ if isinstance(value, datetime):
            return str(to_ms(value))
        case _:
            return str(value)


def encode_fields(job_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
    """Record fields of `Job` attributes (``runs``: a field per attempt,
    `runs_fields`)."""
    encoded = {
        FIELD[name]: _encode_value(job_id, name, value)
        for name, value in fields.items()
        if value is not None and name != "runs"
    }
    if fields.get("runs"):
        encoded.update(runs_fields(fields["runs"]))
    return encoded


def encode(job: Job) -> dict[str, str]:
    values = {name: getattr(job, name) for name in FIELD}
    for name in _EMPTY_LEFT_OUT:
        if not values[name]:
            del values[name]
    if job.priority == DEFAULT_PRIORITY:
        del values["priority"]
    if job.after_policy == "all_completed":
        del values["after_policy"]
    encoded = encode_fields(job.id, values | {"runs": job.runs})
    if job.history:
        encoded["history"] = history_text(job)
    return encoded


#: What decoding a damaged or foreign record can raise.
_UNREADABLE = (
    KeyError,
    ValueError,
    TypeError,
    OverflowError,
    IndexError,
    RecursionError,
)


def decode(job_id: str, data: Mapping[str, str]) -> Job:
    """The job a record holds.

    A record this version cannot read in full (written by an older one, or
    damaged) is decoded field by field, each field that fails taking its
    empty value, so that it still renders, lists and can be deleted.
    """
    try:
        return _decode_strict(job_id, data)
    except _UNREADABLE:
        _logger.warning("Job record partly unreadable", job_id=job_id)
        return _decode_lenient(job_id, data)


def decode_flat(job_id: str, flat: Sequence[str]) -> Job:
    """`decode` of a record as a script hands it over (HGETALL's list)."""
    return decode(job_id, dict(zip(flat[::2], flat[1::2], strict=True)))


def _parameters(raw: str) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise TypeError("parameters are not an object")
    # Stored parameters were checked on the way in (`check_value`); only an
    # older version's record can hold what cannot be rendered, and only
    # then does the JSON text hold an escape for it.
    if "\\u" in raw or "\\b" in raw or "\\f" in raw:
        cleaned: dict[str, Any] = clean_value(value)
        return cleaned
    return value


def _run_id(value: str | None) -> str | None:
    return clean_text(value) if value is not None else None


#: How each field of a record is read, by field: the `Job` attribute it
#: fills, and how (`None`: the text as it is). A record is read by
#: walking the fields it has (a dozen, for most jobs) rather than asking
#: for every field a record may have; the fields a value needs with
#: others (results, history, runs, children) are read after.
_READ: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "task": ("task", None),
    "owner": ("owner", None),
    "phase": ("phase", ExecutionPhase),
    "params": ("parameters", _parameters),
    "duration": ("execution_duration", int),
    "destroy": ("destruction_time", time_value),
    "run_id": ("run_id", clean_text),
    "started": ("started_at", time_value),
    "ended": ("ended_at", time_value),
    "quote": ("quote", time_value),
    "errors": ("errors", errors_value),
    "progress": ("progress", progress_value),
    "attempts": ("attempts", int),
    "ignored": ("ignored", json_list),
    "queue": ("queue", None),
    "claim": ("claim", None),
    "beat": ("heartbeat_at", time_value),
    "sync": ("sync", flag_value),
    "uploads": ("uploads", uploads_value),
    "runat": ("run_after", time_value),
    "prio": ("priority", int),
    "ckey": ("concurrency_key", None),
    "limits": ("limits", limits_value),
    "after": ("after", json_list),
    "apol": ("after_policy", policy_value),
    "parent": ("parent_id", None),
    "deps": ("has_dependants", flag_value),
    "kids": ("has_children", flag_value),
    "notify": ("notify", notify_value),
    "nsecret": ("notify_secret", None),
    "trace": ("trace", None),
    "desc": ("description", None),
    "info": ("info", messages_value),
    "warn": ("warnings", messages_value),
    "retain": ("retain_after_end", int),
    "noabort": ("no_abort", None),
}


def _decode_strict(job_id: str, data: Mapping[str, str]) -> Job:
    # Absent for the anonymous owner, and for a job never destroyed.
    values: dict[str, Any] = {"owner": None, "destruction_time": None}
    for name, raw in data.items():
        how = _READ.get(name)
        if how is not None:
            attribute, read = how
            values[attribute] = raw if read is None else read(raw)
    created = from_ms(int(data["created"]))
    if "results" in data:
        values["results"] = [
            _result_from_row(job_id, row) for row in json_list(data["results"])
        ]
    if "history" in data:
        values["history"] = read_history(data["history"], created)
    if "attempts" in data:
        values["runs"] = runs_value(job_id, values["attempts"], data)
    if "kids" in data:
        values["children"] = children_value(data)
    return Job(id=job_id, created_at=created, **values)


_T = TypeVar("_T")


def _field(read: Callable[[], _T], default: _T) -> _T:
    try:
        return read()
    except _UNREADABLE:
        return default


def _decode_lenient(job_id: str, data: Mapping[str, str]) -> Job:
    def results() -> list[JobResult]:
        return [
            _result_from_row(job_id, row)
            for row in json_list(data.get("results"))
        ]

    def errors() -> list[JobError]:
        return [
            JobError(ErrorType(e["type"]), str(e["message"]))
            for e in json_list(data.get("errors"))
        ]

    def progress() -> Progress | None:
        if "progress" not in data:
            return None
        raw = json.loads(data["progress"])
        return Progress(raw.get("percent"), raw.get("message"))

    def time(name: str) -> datetime | None:
        return _field(lambda: time_value(data.get(name)), None)

    return Job(
        id=job_id,
        task=clean_text(data.get("task", "")),
        owner=_run_id(data.get("owner")),
        phase=parse_phase(data.get("phase", "")),
        parameters=_field(lambda: _parameters(data["params"]), {}),
        created_at=time("created") or from_ms(0),
        execution_duration=_field(lambda: int(data["duration"]), 0),
        destruction_time=time("destroy"),
        run_id=_run_id(data.get("run_id")),
        started_at=time("started"),
        ended_at=time("ended"),
        quote=time("quote"),
        results=_field(results, []),
        errors=_field(errors, []),
        progress=_field(progress, None),
        attempts=_field(lambda: int(data.get("attempts", "0")), 0),
        ignored=_field(lambda: json_list(data.get("ignored")), []),
        queue=data.get("queue"),
        claim=data.get("claim"),
        heartbeat_at=time("beat"),
        sync="sync" in data,
        uploads=_field(lambda: uploads_value(data.get("uploads")), []),
        run_after=time("runat"),
        priority=_field(
            lambda: int(data.get("prio", DEFAULT_PRIORITY)), DEFAULT_PRIORITY
        ),
        concurrency_key=_run_id(data.get("ckey")),
        limits=_field(lambda: limits_value(data.get("limits")), {}),
        after=_field(lambda: ids_value(data.get("after")), []),
        after_policy=policy_value(data.get("apol")),
        parent_id=_run_id(data.get("parent")),
        has_dependants="deps" in data,
        has_children="kids" in data,
        notify=_field(lambda: notify_value(data.get("notify")), None),
        notify_secret=data.get("nsecret"),
        trace=data.get("trace"),
        history=_field(
            lambda: read_history(
                data.get("history", ""), time("created") or from_ms(0)
            ),
            [],
        ),
        description=_run_id(data.get("desc")),
        info=_field(lambda: messages_value(data.get("info")), MessageLog()),
        warnings=_field(
            lambda: messages_value(data.get("warn")), MessageLog()
        ),
        retain_after_end=_field(lambda: int(data["retain"]), None),
        children=_field(lambda: children_value(data), {}),
        no_abort=_run_id(data.get("noabort")),
        runs=_field(
            lambda: runs_value(job_id, int(data.get("attempts", "0")), data),
            [],
        ),
    )
