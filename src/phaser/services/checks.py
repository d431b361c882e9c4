"""What a client may ask of a job, checked at the boundary.

Creation and changes (both dialects) go through these checks before
anything is stored: every value must be renderable in both dialects, fit
the task and the configured limits, and times must be storable. A refusal
is a 4xx that names the field; nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..clock import now, to_utc
from ..config import Settings, cap_duration
from ..models.api import MAX_REQUEST_SECONDS
from ..models.errors import (
    InvalidParametersError,
    InvalidRequestError,
    LifetimeConflictError,
    QuotaExceededError,
)
from ..models.job import MAX_PRIORITY, MIN_PRIORITY, Job
from ..models.phase import OPEN_PHASES, Action
from ..models.text import check_text, check_value
from ..storage.job_store import OverQuota, Quota
from ..tasks.registry import Task, TaskRegistry

__all__ = [
    "JobChecks",
    "JobUpdate",
    "PhaseAction",
    "check_concurrency_key",
    "check_described",
    "check_priority",
    "check_run_id",
    "refuse_unknown",
    "start_time",
    "utc",
]

#: Longest run id.
_MAX_RUN_ID = 256


#: The phase changes a client may ask for along with other changes.
PhaseAction = Literal[
    Action.START, Action.ABORT, Action.HOLD, Action.SUSPEND, Action.RESUME
]


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """Changes a client asks for in one request; `None` leaves a field
    alone. All of them apply, in one step, or none."""

    parameters: Mapping[str, Any] | None = None
    execution_duration: int | None = None
    destruction_time: datetime | None = None
    run_id: str | None = None
    #: New priority (while the job waits: PENDING, QUEUED or HELD).
    priority: int | None = None
    #: New start time (while the job waits): it is held until then.
    run_after: datetime | None = None
    #: Also start or abort the job, in the same step (UWS ``PHASE``).
    action: PhaseAction | None = None
    #: Refuse parameter names the task does not have (JSON API).
    strict: bool = False
    #: An abort a server limit asks for (a sync request's timeout), which
    #: a task that may not be aborted now cannot refuse.
    by_limit: bool = False

    @property
    def edit_action(
        self,
    ) -> Literal[Action.EDIT, Action.REPRIORITISE, Action.RELABEL]:
        """The action whose phases the field changes need: `Action.EDIT`
        when they touch what the job runs with (parameters, execution
        duration), `Action.REPRIORITISE` for its place in the queue, else
        `Action.RELABEL` (destruction time, run id)."""
        if self.parameters is not None or self.execution_duration is not None:
            return Action.EDIT
        if self.priority is not None:
            return Action.REPRIORITISE
        return Action.RELABEL


class JobChecks:
    """The checks that depend on the configured limits.

    Parameters
    ----------
    settings
        Limits and defaults.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def parameters(
        self,
        task: Task,
        parameters: Mapping[str, Any],
        *,
        strict: bool,
        from_form: bool | None = None,
        uploads: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Check parameters; their stored form.

        With ``strict`` (the JSON API), names the task does not have are
        refused; otherwise (UWS, as IVOA services do) they are ignored.
        ``from_form`` (default: not ``strict``) reads them as UWS sends
        them (see `Task.validate`); ``uploads`` names the job's files.

        Raises
        ------
        InvalidParametersError
            They do not fit; the message names the parameter.
        """
        if strict:
            refuse_unknown(task, parameters)
        check_value("parameters", parameters)
        self._check_size(parameters)
        stored = task.validate(
            parameters,
            from_form=not strict if from_form is None else from_form,
            uploads=uploads,
        )
        # The task's model may turn text into values JSON cannot carry
        # (``"nan"`` into a float).
        check_value("parameters", stored)
        return stored

    def changes(
        self, job: Job, update: JobUpdate, registry: TaskRegistry
    ) -> dict[str, Any]:
        """The record fields an update writes, checked."""
        fields: dict[str, Any] = {}
        if update.parameters is not None:
            definition = registry.get(job.task)
            merged = {**job.parameters, **update.parameters}
            if update.strict:
                refuse_unknown(definition, update.parameters)
            fields["parameters"] = self.parameters(
                definition,
                merged,
                strict=False,
                from_form=not update.strict,
                uploads=frozenset(u.name for u in job.uploads),
            )
            ignored = definition.unknown(update.parameters, ignore_case=True)
            if ignored:
                fields["ignored"] = list(
                    dict.fromkeys([*job.ignored, *ignored])
                )
        if update.execution_duration is not None:
            fields["execution_duration"] = self.execution_duration(
                registry.get(job.task), update.execution_duration
            )
        if update.destruction_time is not None:
            fields["destruction_time"] = self.destruction(
                update.destruction_time
            )
        if update.run_id is not None:
            check_run_id(update.run_id)
            fields["run_id"] = update.run_id
        if update.priority is not None:
            fields["priority"] = check_priority(update.priority)
        return fields

    @property
    def quota(self) -> Quota:
        """Per-owner limits, checked by the store in the same atomic step
        as the creation, so concurrent requests cannot overshoot them."""
        return Quota(
            max_stored=self._settings.stored_jobs_limit,
            max_active=self._settings.active_jobs_limit,
            active_phases=sorted(OPEN_PHASES),
        )

    def over_quota(self, outcome: OverQuota) -> QuotaExceededError:
        """The 4xx that says which limit a creation ran into."""
        if outcome.limit == "stored":
            return QuotaExceededError(
                f"Stored jobs limit reached: {outcome.count} jobs kept"
                f" (limit {self._settings.stored_jobs_limit},"
                " PHASER_MAX_STORED_JOBS); delete some first"
            )
        return QuotaExceededError(
            f"Active jobs limit reached: {outcome.count} jobs pending,"
            f" queued or executing (limit {self._settings.active_jobs_limit},"
            " PHASER_MAX_ACTIVE_JOBS); wait for one to finish or abort one"
        )

    def _check_size(self, parameters: Mapping[str, Any]) -> None:
        """Refuse too many or too large parameters."""
        limit = self._settings.max_parameters
        if len(parameters) > limit:
            raise InvalidParametersError(
                f"Too many parameters: {len(parameters)} (at most {limit})"
            )
        size = len(json.dumps(parameters, default=str))
        limit = self._settings.max_parameters_bytes
        if size > limit:
            raise InvalidParametersError(
                f"Parameters too large: {size} bytes as JSON (at most {limit})"
            )

    def execution_duration(self, task: Task, requested: int | None) -> int:
        """The duration a job gets: defaults, then configured and task
        maxima applied (0, unlimited, only when neither sets a maximum)."""
        if requested is None:
            requested = task.execution_duration
        duration = self._settings.clamp_execution_duration(requested)
        return cap_duration(duration, task.max_execution_duration)

    def destruction(
        self, requested: datetime | None, *, start: datetime | None = None
    ) -> datetime:
        """The destruction time a job gets: the default lifetime (from its
        scheduled ``start``, if later than now), or the requested time;
        either capped by the longest lifetime."""
        latest = now() + self._settings.max_lifetime
        if requested is None:
            begins = max(now(), start) if start else now()
            return min(begins + self._settings.default_lifetime, latest)
        return min(utc("destruction_time", requested), latest)


def start_time(
    run_after: datetime | None, destruction: datetime
) -> datetime | None:
    """When a job asked to start at ``run_after`` (in UTC, checked by
    `utc`) is queued: `None` for at once (no time, or one that has
    passed).

    Raises
    ------
    LifetimeConflictError
        A time at or after the job's destruction (it would never run).
    """
    if run_after is None:
        return None
    if run_after >= destruction:
        raise LifetimeConflictError(
            "run_after is at or after the job's destruction time"
            f" ({destruction.isoformat()}, PHASER_MAX_LIFETIME at most);"
            " it would never run"
        )
    return run_after if run_after > now() else None


def utc(field: str, moment: datetime) -> datetime:
    """A client's time in UTC, refused with a 4xx naming the field if it
    cannot be stored (see `phaser.clock.to_utc`)."""
    try:
        return to_utc(moment)
    except ValueError as exc:
        raise InvalidRequestError(
            f"Invalid {field}: {exc}",
            fields=[{"field": field, "message": str(exc)}],
        ) from None


def check_priority(priority: int) -> int:
    """A priority a client asked for, checked.

    Raises
    ------
    InvalidRequestError
        Not in `MIN_PRIORITY` .. `MAX_PRIORITY`.
    """
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        message = f"not in {MIN_PRIORITY}..{MAX_PRIORITY}"
        raise InvalidRequestError(
            f"Invalid priority {priority}: {message} (higher runs first)",
            fields=[{"field": "priority", "message": message}],
        )
    return priority


#: Longest concurrency key.
_MAX_KEY = 128


def check_concurrency_key(key: str) -> str:
    """A concurrency key, checked: 1 to 128 characters that render.

    Raises
    ------
    InvalidRequestError
        Empty, too long, or not renderable.
    """
    if not key or len(key) > _MAX_KEY:
        raise InvalidRequestError(
            f"Invalid concurrency_key: 1 to {_MAX_KEY} characters",
            fields=[{"field": "concurrency_key", "message": "invalid"}],
        )
    check_text("concurrency_key", key)
    return key


def check_run_id(run_id: str | None) -> None:
    """Refuse a run id that is too long or cannot be rendered."""
    if run_id is None:
        return
    if len(run_id) > _MAX_RUN_ID:
        raise InvalidRequestError(
            f"Invalid run_id: longer than {_MAX_RUN_ID} characters",
            fields=[{"field": "run_id", "message": "too long"}],
        )
    check_text("run_id", run_id)


#: Longest job description, in characters.
MAX_DESCRIPTION = 1000


def check_described(description: str | None, retain: int | None) -> None:
    """Refuse a description too long or that cannot be rendered, and a
    retention that is not a number of seconds a request may give."""
    if description is not None:
        if len(description) > MAX_DESCRIPTION:
            raise InvalidRequestError(
                f"Invalid description: longer than {MAX_DESCRIPTION}"
                " characters",
                fields=[{"field": "description", "message": "too long"}],
            )
        check_text("description", description)
    if retain is not None and not 0 <= retain <= MAX_REQUEST_SECONDS:
        raise InvalidRequestError(
            f"Invalid retain_after_end: 0 to {MAX_REQUEST_SECONDS} seconds",
            fields=[{"field": "retain_after_end", "message": "out of range"}],
        )


def refuse_unknown(task: Task, parameters: Mapping[str, Any]) -> None:
    """Refuse parameter names the task does not have (JSON API)."""
    unknown = task.unknown(parameters)
    if unknown:
        raise InvalidParametersError(
            f"Unknown parameters for task {task.name}: {', '.join(unknown)}",
            fields=[
                {"field": f"parameters.{name}", "message": "unknown parameter"}
                for name in unknown
            ],
        )
