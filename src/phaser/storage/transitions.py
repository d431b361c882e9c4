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
from datetime import datetime
from typing import Any, Literal

from redis.asyncio import Redis

from ..models.job import AttemptRun, Job, JobError, JobResult, Progress
from ..models.phase import (
    Action,
    allowed_from,
)
from .codec import AnyJob, result_row
from .durable import Acknowledged
from .keys import KeyLayout
from .lua import script_text
from .outcomes import (
    Abortable,
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
from .transition_args import Transition, outcome_of, script_args

__all__ = [
    "Abortable",
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
        run: AttemptRun | None = None,
    ) -> TransitionOutcome:
        """A worker takes attempt ``attempt`` of a queued job: the claim
        ``token`` holds it; its deadline (start + execution duration) and
        first heartbeat are scheduled from the record; ``run`` (the queue
        entry and worker) is added to its attempts."""
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
                    "runs": [run] if run else None,
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

    async def report(
        self,
        job: Job,
        *,
        token: str,
        fields: Mapping[str, Any],
        clear: Sequence[str] = (),
    ) -> TransitionOutcome:
        """The running task's other reports (its messages, whether it may
        be aborted) while ``token`` holds it."""
        return await self.apply(
            job,
            Transition(
                Action.PROGRESS,
                Claim(token),
                fields=fields,
                clear=clear,
                event="update",
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
        asked: bool = False,
    ) -> TransitionOutcome:
        """A client or destruction stops an active job, with ``changes``
        (an edit asked for in the same request) applied in the same
        step, where both the abort and ``changes_need`` allow. An abort
        someone ``asked`` for is refused (`Stale`, with the task's reason)
        while the running task says it may not be aborted."""
        return await self.apply(
            job,
            Transition(
                Action.ABORT,
                Abortable() if asked else None,
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
        args = script_args(job.id, change, self._keys.events)
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
        return outcome_of(job.id, reply)
