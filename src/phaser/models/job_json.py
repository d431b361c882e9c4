"""A job as the JSON API shows it, built straight from the stored `Job`.

`phaser.models.api.JobModel` describes the document (the OpenAPI schema
and the Python client's types come from it); this module builds the same
document as plain dicts and lists and serializes it with pydantic-core's
encoder (written in Rust; three times as fast as the standard library's
here). Building a pydantic model per job and serializing it was about
two thirds of a list page of 100 jobs (benchmark B4) and a tenth of a
creation (B1). ``tests/test_jobs_api.py`` checks, for jobs with
every field set and for generated ones, that the document validates as a
`JobModel` and reads back unchanged, so the schema stays the truth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import to_json

from ..clock import format_time
from .job import Job, MessageLog

__all__ = ["Fields", "dumps", "job_document", "job_json", "page_json"]


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def _messages(log: MessageLog) -> list[dict[str, str]]:
    return [{"at": format_time(m.at), "message": m.text} for m in log.shown()]


def job_document(
    job: Job,
    base_url: str,
    *,
    secret: str | None = None,
    admin: bool = False,
) -> dict[str, Any]:
    """The job's JSON document, links absolute under ``base_url``; with
    ``secret``, its webhook's signing secret (the creation's answer
    only); for an ``admin``, its attempts' queue entries and workers."""
    href = f"{base_url}/api/v1/jobs/{job.id}"
    progress = job.progress
    notify = job.notify
    return {
        "id": job.id,
        "task": job.task,
        "owner": job.owner,
        "run_id": job.run_id,
        "phase": job.phase.value,
        "parameters": job.parameters,
        "created_at": format_time(job.created_at),
        "started_at": _time(job.started_at),
        "ended_at": _time(job.ended_at),
        "execution_duration": job.execution_duration,
        "destruction_time": _time(job.destruction_time),
        "quote": _time(job.quote),
        "progress": {
            "percent": progress.percent if progress else None,
            "message": progress.message if progress else None,
        },
        "results": [
            {
                "id": r.id,
                "href": f"{href}/results/{r.id}",
                "size": r.size,
                "mime_type": r.mime_type,
            }
            for r in job.results
        ],
        "uploads": [
            {
                "name": u.name,
                "href": u.url or f"{href}/uploads/{u.name}",
                "by_reference": u.url is not None,
                "size": u.size if u.size >= 0 else None,
                "mime_type": u.mime_type,
            }
            for u in job.uploads
        ],
        "errors": [
            {
                "type": e.type.value,
                "code": e.code,
                "message": e.message,
                "detail": e.detail,
            }
            for e in job.errors
        ],
        "attempts": job.attempts,
        "ignored_parameters": job.ignored,
        "run_after": _time(job.run_after),
        "priority": job.priority,
        "concurrency_key": job.concurrency_key,
        "after": job.after,
        "after_policy": job.after_policy,
        "parent_id": job.parent_id,
        "notify": {
            "url": notify.url,
            "events": list(notify.events),
            "secret": secret,
        }
        if notify
        else None,
        "sync": job.sync,
        "history": [
            {"phase": change.phase.value, "at": format_time(change.at)}
            for change in job.history
        ],
        "description": job.description,
        "info": _messages(job.info),
        "warnings": _messages(job.warnings),
        "retain_after_end": job.retain_after_end,
        "children": job.child_counts,
        "no_abort_reason": job.no_abort,
        "attempt_runs": [
            {
                "attempt": run.attempt,
                "queue_entry": run.entry,
                "worker": run.worker,
                "at": format_time(run.at),
            }
            for run in job.runs
        ]
        if admin
        else None,
        "href": href,
    }


def dumps(document: Any) -> bytes:
    """Compact UTF-8 JSON, as `JobModel` serializes (an infinite or NaN
    number, which the checks on the way in keep out of records, as
    ``null``)."""
    return to_json(document, inf_nan_mode="null")


#: What a job document may be cut down to (``fields=``); ``id`` and
#: ``href`` are always given.
Fields = frozenset[str] | None


def _selected(document: dict[str, Any], fields: Fields) -> dict[str, Any]:
    if fields is None:
        return document
    return {k: v for k, v in document.items() if k in fields}


def job_json(
    job: Job, base_url: str, *, admin: bool = False, fields: Fields = None
) -> bytes:
    """`job_document` as JSON text (only ``fields``, if given)."""
    return dumps(_selected(job_document(job, base_url, admin=admin), fields))


def page_json(
    jobs: list[Job],
    next_cursor: str | None,
    base_url: str,
    *,
    total: int | None = None,
    admin: bool = False,
    fields: Fields = None,
) -> bytes:
    """A page of the job list (`phaser.models.api.JobListModel`)."""
    return dumps(
        {
            "jobs": [
                _selected(job_document(job, base_url, admin=admin), fields)
                for job in jobs
            ],
            "next_cursor": next_cursor,
            "total": total,
        }
    )
