"""phaser's additions inside ``uws:jobInfo``, in its own namespace.

UWS 1.1 lets ``jobInfo`` hold anything (``xs:any``, lax); phaser puts
there what its JSON job shows and UWS has no element for: priority,
concurrency key, dependencies, parent and children, webhook, progress,
the task's messages, the ignored parameters, the start time of a
scheduled job, retention, whether it may be aborted and, for admins,
its attempts. A job with none of these has no ``jobInfo`` (its document
stays plain UWS).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic_xml import BaseXmlModel, attr, element
from vo_models.uws.models import NSMAP

from ..clock import format_time
from .job import DEFAULT_PRIORITY, Job, MessageLog

__all__ = ["PHASER_NAMESPACE", "JobInfo", "job_info"]

#: Namespace of phaser's additions inside ``uws:jobInfo``.
PHASER_NAMESPACE = "urn:x-phaser:uws-extension:v1"


class PhaserElement(
    BaseXmlModel, ns="phaser", nsmap={"phaser": PHASER_NAMESPACE}
):
    """An element of phaser's namespace in ``uws:jobInfo``."""


class ProgressInfo(PhaserElement, tag="progress"):
    """A task's progress: ``<phaser:progress percent="50">msg</…>``."""

    percent: float | None = attr(default=None)
    message: str | None = None


class IgnoredParameter(PhaserElement, tag="ignoredParameter"):
    """A parameter the task does not have, ignored:
    ``<phaser:ignoredParameter>name</…>``."""

    name: str


class SyncMarker(PhaserElement, tag="sync"):
    """``<phaser:sync>true</…>``: the job of a synchronous request (a
    model, not a bare value, so that a job without it has no element)."""

    value: str = "true"


class RunAfter(PhaserElement, tag="runAfter"):
    """When a HELD job is queued by itself: ``<phaser:runAfter
    note="…">time</…>`` (UWS 1.1's HELD "will not automatically be
    executed"; this one will, at its time)."""

    note: str = attr()
    time: str


class Priority(PhaserElement, tag="priority"):
    """``<phaser:priority>7</…>``: 0 to 9, higher runs first (the UWS
    ``PRIORITY`` parameter sets it); absent for the default, 5 (the
    document of a job that says nothing extra stays plain UWS, which
    validators such as taplint check without warnings)."""

    value: int


class ConcurrencyKey(PhaserElement, tag="concurrencyKey"):
    """``<phaser:concurrencyKey>k</…>``: the owner's jobs with this key
    share a running limit (UWS ``CONCURRENCYKEY``)."""

    value: str


class After(PhaserElement, tag="after"):
    """``<phaser:after policy="all_completed"><phaser:job>id</…>…</…>``:
    the jobs this one waits for (HELD until they end)."""

    policy: str = attr()
    jobs: list[str] = element(tag="job", ns="phaser")


class Parent(PhaserElement, tag="parent"):
    """``<phaser:parent>id</…>``: the job this one is a child of."""

    value: str


class NotifyInfo(PhaserElement, tag="notify"):
    """``<phaser:notify events="final phase">url</…>``: the job's webhook
    (its secret is never shown)."""

    events: str = attr()
    url: str


class Description(PhaserElement, tag="description"):
    """``<phaser:description>text</…>``: what its creator said it is."""

    value: str


class Message(PhaserElement):
    """A line the task logged, with when: ``<phaser:info at="…">``,
    ``<phaser:warning at="…">``."""

    at: str = attr()
    text: str


class InfoMessage(Message, tag="info"):
    """``<phaser:info at="…">text</…>``."""


class WarningMessage(Message, tag="warning"):
    """``<phaser:warning at="…">text</…>``."""


class Children(PhaserElement, tag="children"):
    """``<phaser:children total="…" pending="…" running="…"
    succeeded="…" failed="…" aborted="…"/>``: a parent's children by
    phase."""

    total: int = attr()
    pending: int = attr()
    running: int = attr()
    succeeded: int = attr()
    failed: int = attr()
    aborted: int = attr()


class RetainAfterEnd(PhaserElement, tag="retainAfterEnd"):
    """``<phaser:retainAfterEnd>300</…>``: seconds kept after its end."""

    value: int


class NoAbort(PhaserElement, tag="noAbort"):
    """``<phaser:noAbort>reason</…>``: its running task may not be
    aborted now (``PHASE=ABORT`` answers 403)."""

    value: str


class AttemptInfo(PhaserElement, tag="attempt"):
    """``<phaser:attempt number="1" queueEntry="…" worker="…"
    at="…"/>`` (admins only)."""

    number: int = attr()
    queue_entry: str = attr(name="queueEntry")
    worker: str = attr()
    at: str = attr()


class JobInfo(BaseXmlModel, tag="jobInfo", ns="uws", nsmap=NSMAP):
    """``uws:jobInfo`` with phaser's elements (the module says which);
    each is absent (`None`, empty) when it has nothing to say."""

    priority: Priority | None = element(default=None)
    concurrency_key: ConcurrencyKey | None = element(default=None)
    after: After | None = element(default=None)
    parent: Parent | None = element(default=None)
    notify: NotifyInfo | None = element(default=None)
    progress: ProgressInfo | None = element(default=None)
    ignored: list[IgnoredParameter] = element(default_factory=list)
    sync: SyncMarker | None = element(default=None)
    run_after: RunAfter | None = element(default=None)
    description: Description | None = element(default=None)
    info: list[InfoMessage] = element(default_factory=list)
    warnings: list[WarningMessage] = element(default_factory=list)
    children: Children | None = element(default=None)
    retain_after_end: RetainAfterEnd | None = element(default=None)
    no_abort: NoAbort | None = element(default=None)
    attempts: list[AttemptInfo] = element(default_factory=list)


_M = TypeVar("_M", InfoMessage, WarningMessage)


def _messages(log: MessageLog, kind: type[_M]) -> list[_M]:
    return [kind(at=format_time(m.at), text=m.text) for m in log.shown()]


def job_info(job: Job, *, admin: bool = False) -> JobInfo | None:
    """The job's ``jobInfo``, if it has anything to say there."""
    counts = job.child_counts
    progress = job.progress
    info = JobInfo(
        priority=Priority(value=job.priority)
        if job.priority != DEFAULT_PRIORITY
        else None,
        concurrency_key=ConcurrencyKey(value=job.concurrency_key)
        if job.concurrency_key
        else None,
        after=After(policy=job.after_policy, jobs=job.after)
        if job.after
        else None,
        parent=Parent(value=job.parent_id) if job.parent_id else None,
        notify=NotifyInfo(
            url=job.notify.url, events=" ".join(job.notify.events)
        )
        if job.notify
        else None,
        progress=ProgressInfo(
            percent=progress.percent, message=progress.message
        )
        if progress is not None
        else None,
        ignored=[IgnoredParameter(name=name) for name in job.ignored],
        sync=SyncMarker() if job.sync else None,
        run_after=RunAfter(
            note="queued by the server at this time",
            time=format_time(job.run_after),
        )
        if job.run_after
        else None,
        description=Description(value=job.description)
        if job.description
        else None,
        info=_messages(job.info, InfoMessage),
        warnings=_messages(job.warnings, WarningMessage),
        children=Children(**counts) if counts else None,
        retain_after_end=RetainAfterEnd(value=job.retain_after_end)
        if job.retain_after_end is not None
        else None,
        no_abort=NoAbort(value=job.no_abort) if job.no_abort else None,
        attempts=[
            AttemptInfo(
                number=run.attempt,
                queue_entry=run.entry,
                worker=run.worker,
                at=format_time(run.at),
            )
            for run in job.runs
        ]
        if admin
        else [],
    )
    # Only a job with something to say has a jobInfo (a plain job's
    # document stays plain UWS).
    said = any(getattr(info, name) for name in JobInfo.model_fields)
    return info if said else None
