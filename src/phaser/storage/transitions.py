"""Named transitions of stored jobs: one verb per thing that changes a job.

Each verb is one call of ``transition.lua``: a compare-and-set on the
phase (which phases an action starts from and where it leads come from
`phaser.models.phase`) and, where the verb needs one, a typed guard (the
worker's claim, the attempt a queue entry belongs to, the heartbeat a
stalled job was last seen with). The script derives schedule entries from
the fields it writes, so no caller computes a deadline or passes a time
twice. A verb answers with the job as it is after the change (`Changed`),
or with why nothing was written (`Missing`, `WrongPhase`, `Stale`);
callers match on the answer exhaustively.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from redis.asyncio import Redis

from ..clock import to_ms
from ..models.job import Job, JobError, JobResult, Progress
from ..models.phase import (
    Action,
    ExecutionPhase,
    allowed_from,
    parse_phase,
    target_phase,
)
from .codec import FIELD, AnyJob, decode, encode_fields, result_row
from .durable import Acknowledged
from .keys import KeyLayout
from .lua import script_text
from .outcomes import (
    Attempt,
    Beat,
    Changed,
    Claim,
    Guard,
    Missing,
    Stale,
    TransitionOutcome,
    WrongPhase,
)

__all__ = [
    "Attempt",
    "Beat",
    "Changed",
    "Claim",
    "Guard",
    "JobTransitions",
    "Missing",
    "Stale",
    "Transition",
    "TransitionOutcome",
    "WrongPhase",
]


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a job, as the script applies it: the action (its
    allowed phases and target from the phase table), a guard, fields to
    set and to remove (by `Job` attribute), and the event to publish."""

    action: Action
    guard: Guard | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    clear: Sequence[str] = ()
    event: Literal["phase", "progress", "update"] | None = "phase"
    #: Narrows the action's phases further (a start that also edits what
    #: the job runs with may start only where an edit may).
    only_from: frozenset[ExecutionPhase] | None = None

    @property
    def allowed(self) -> frozenset[ExecutionPhase]:
        """The phases the job must be in."""
        phases = allowed_from(self.action)
        return phases & self.only_from if self.only_from else phases

    @property
    def target(self) -> ExecutionPhase | None:
        """The phase the job moves to, `None` to keep its phase."""
        return target_phase(self.action)


def _guard_arg(guard: Guard | None) -> tuple[str, str]:
    match guard:
        case None:
            return "", ""
        case Claim(token):
            return FIELD["claim"], token
        case Attempt(number):
            return FIELD["attempts"], str(number)
        case Beat(at):
            return FIELD["heartbeat_at"], str(to_ms(at)) if at else ""


class JobTransitions:
    """The verbs that change stored jobs.

    Parameters
    ----------
    redis
        Client with ``decode_responses=True``.
    keys
        The key layout.
    ack
        How changes are acknowledged (`phaser.storage.durable`).
    """

    def __init__(
        self, redis: Redis, keys: KeyLayout, ack: Acknowledged | None = None
    ) -> None:
        self._keys = keys
        self._ack = ack or Acknowledged(redis)
        self._script = redis.register_script(script_text("transition.lua"))
        self._record_result = redis.register_script(
            script_text("record_result.lua")
        )
        #: The scripts, for `phaser.storage.lua.load_scripts`.
        self.scripts = [self._script, self._record_result]

    async def start(
        self,
        job: Job,
        changes: Mapping[str, Any] | None = None,
        *,
        changes_need: Action = Action.RELABEL,
    ) -> TransitionOutcome:
        """A client runs a pending or held job (or its start time came): it
        is queued as its next attempt (1, unless it was queued before it
        was held: then a new attempt, which arq's leftovers of the old one
        can neither block nor run), with ``changes`` (an edit asked for in
        the same request) applied in the same step, where both the start
        and ``changes_need`` allow."""
        return await self.apply(
            job,
            Transition(
                Action.START,
                fields={**(changes or {}), "attempts": job.attempts + 1},
                # A start time has served its purpose once started.
                clear=("run_after",),
                only_from=allowed_from(changes_need),
            ),
        )

    async def hold(
        self,
        job: AnyJob,
        changes: Mapping[str, Any] | None = None,
        *,
        changes_need: Action = Action.RELABEL,
    ) -> TransitionOutcome:
        """A client holds a pending or queued job: it waits in HELD, not
        run by any worker, until released (or its start time comes, when
        it has one), with ``changes`` applied in the same step."""
        return await self.apply(
            job,
            Transition(
                Action.HOLD,
                fields=dict(changes or {}),
                only_from=allowed_from(changes_need),
            ),
        )

    async def claim(
        self,
        job: AnyJob,
        *,
        attempt: int,
        token: str,
        at: datetime,
        quote: datetime | None = None,
    ) -> TransitionOutcome:
        """A worker takes attempt ``attempt`` of a queued job: the claim
        ``token`` holds it; its deadline (start + execution duration) and
        first heartbeat are scheduled from the record."""
        return await self.apply(
            job,
            Transition(
                Action.CLAIM,
                Attempt(attempt),
                fields={
                    "started_at": at,
                    "claim": token,
                    "heartbeat_at": at,
                    "quote": quote,
                },
            ),
        )

    async def heartbeat(
        self, job: Job, *, token: str, at: datetime
    ) -> TransitionOutcome:
        """The worker holding the claim is alive (no event)."""
        return await self.apply(
            job,
            Transition(
                Action.HEARTBEAT,
                Claim(token),
                fields={"heartbeat_at": at},
                event=None,
            ),
        )

    async def report_progress(
        self, job: Job, *, token: str, progress: Progress
    ) -> TransitionOutcome:
        """The running task's progress."""
        return await self.apply(
            job,
            Transition(
                Action.PROGRESS,
                Claim(token),
                fields={"progress": progress},
                event="progress",
            ),
        )

    async def add_result(
        self, job: Job, *, token: str, result: JobResult
    ) -> Changed | Missing | Stale:
        """Add (or replace) a result of a running job while ``token``
        holds it. The answer's job is the one passed in (the script
        answers with the outcome only)."""
        reply = await self._ack.run(
            self._record_result,
            [self._keys.record(job.id)],
            [
                token,
                json.dumps(result_row(job.id, result)),
                self._keys.events,
                job.id,
            ],
        )
        match reply:
            case "ok":
                return Changed(job, job.phase)
            case "missing":
                return Missing()
            case _:
                return Stale(job.phase)

    async def finish(
        self,
        job: Job,
        action: Literal[Action.COMPLETE, Action.FAIL, Action.ABORT],
        *,
        guard: Claim | Beat,
        at: datetime,
        error: JobError | None = None,
    ) -> TransitionOutcome:
        """End a running job (completed, failed, or aborted by a limit)
        while ``guard`` holds."""
        fields: dict[str, Any] = {"ended_at": at}
        if error is not None:
            fields["errors"] = [error]
        return await self.apply(job, Transition(action, guard, fields))

    async def requeue(
        self,
        job: Job,
        *,
        guard: Claim | Beat,
        attempts: int,
        error: JobError | None,
    ) -> TransitionOutcome:
        """Send a running job back to the queue as attempt ``attempts``
        (a transient failure, a lost worker, a shutdown)."""
        fields: dict[str, Any] = {"attempts": attempts}
        if error is not None:
            fields["errors"] = [error]
        return await self.apply(
            job,
            Transition(
                Action.RETRY,
                guard,
                fields,
                clear=("claim", "heartbeat_at"),
            ),
        )

    async def resend(self, job: Job, *, attempt: int) -> TransitionOutcome:
        """A queued job at ``attempt`` moves on to the next attempt (its
        entry is sent again)."""
        return await self.apply(
            job,
            Transition(
                Action.RESEND,
                Attempt(attempt),
                {"attempts": attempt + 1},
                event="update",
            ),
        )

    async def abort(
        self,
        job: AnyJob,
        *,
        at: datetime,
        changes: Mapping[str, Any] | None = None,
        changes_need: Action = Action.RELABEL,
    ) -> TransitionOutcome:
        """A client or destruction stops an active job, with ``changes``
        (an edit asked for in the same request) applied in the same
        step, where both the abort and ``changes_need`` allow."""
        return await self.apply(
            job,
            Transition(
                Action.ABORT,
                fields={**(changes or {}), "ended_at": at},
                only_from=allowed_from(changes_need),
            ),
        )

    async def archive(self, job: AnyJob) -> TransitionOutcome:
        """Destruction in archive mode: the job's results go, its metadata
        (the destruction time included) stays, and it leaves the
        destruction schedule."""
        return await self.apply(
            job, Transition(Action.ARCHIVE, clear=("results",))
        )

    async def edit(
        self, job: Job, changes: Mapping[str, Any], *, action: Action
    ) -> TransitionOutcome:
        """Change a job's fields in one step (all or nothing), in the
        phases ``action`` allows: `Action.EDIT` for what the job runs with,
        `Action.RELABEL` for what may change in any phase."""
        return await self.apply(
            job, Transition(action, fields=changes, event="update")
        )

    async def apply(
        self, job: AnyJob, change: Transition
    ) -> TransitionOutcome:
        """Apply one transition to a job (`Job` or `JobRef`: only its id,
        owner and task are used). The verbs above are the API; this is
        their one implementation."""
        keys = self._keys.job(job.id, job.owner, job.task)
        encoded = encode_fields(job.id, change.fields)
        guard_field, guard_value = _guard_arg(change.guard)
        to = change.target
        args: list[str] = [
            job.id,
            "," + ",".join(change.allowed) + ",",
            to or "",
            guard_field,
            guard_value,
            self._keys.events,
            change.event or "",
            str(len(encoded)),
        ]
        for name, value in encoded.items():
            args += [name, value]
        args += [FIELD[name] for name in change.clear]
        reply = await self._ack.run(
            self._script,
            [
                keys.record,
                keys.counts,
                keys.by_task_phase_prefix,
                keys.destruction,
                keys.deadline,
                keys.heartbeat,
                keys.queued,
                keys.by_run_prefix,
                keys.scheduled,
                self._keys.limits_prefix,
                self._keys.webhook_prefix,
                self._keys.throughput_prefix,
            ],
            args,
        )
        match reply[0]:
            case "ok":
                flat = reply[2]
                record = dict(zip(flat[::2], flat[1::2], strict=True))
                return Changed(decode(job.id, record), parse_phase(reply[1]))
            case "missing":
                return Missing()
            case "phase":
                return WrongPhase(parse_phase(reply[1]))
            case _:
                return Stale(parse_phase(reply[1]))
