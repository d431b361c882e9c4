"""What a transition may require besides the phase (guards), and how it
ends (outcomes): the types `phaser.storage.transitions` takes and answers
with, matched exhaustively by its callers; and how a creation or a
deletion of the job store ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..models.job import Job
from ..models.phase import ExecutionPhase

__all__ = [
    "Abortable",
    "Attempt",
    "Beat",
    "Changed",
    "Claim",
    "CreateOutcome",
    "Created",
    "Deleted",
    "Existing",
    "Guard",
    "Missing",
    "OverQuota",
    "Stale",
    "TransitionOutcome",
    "WrongPhase",
]


@dataclass(frozen=True, slots=True)
class Claim:
    """Guard: the worker's claim on a running job still holds.

    ``holder``: the change is the claiming worker's own (its progress,
    its end), which that worker need not be told of; a change by anyone
    else under the same guard (maintenance ending a job past its
    deadline) is published to the workers too (`running_channel`).
    """

    token: str
    holder: bool = True


@dataclass(frozen=True, slots=True)
class Attempt:
    """Guard: the job is still at this attempt (a queue entry's)."""

    number: int


@dataclass(frozen=True, slots=True)
class Beat:
    """Guard: the job's last heartbeat is still the one seen (no worker
    has spoken for it since)."""

    at: datetime | None


@dataclass(frozen=True, slots=True)
class Abortable:
    """Guard: the running task has not said it may not be aborted now
    (a client's abort; limits and destruction do not ask)."""


#: What a transition may require besides the phase.
Guard = Claim | Attempt | Beat | Abortable


@dataclass(frozen=True, slots=True)
class Changed:
    """The transition was applied: the job as it is now, and the phase it
    was in before."""

    job: Job
    was: ExecutionPhase


@dataclass(frozen=True, slots=True)
class Missing:
    """There is no such job."""


@dataclass(frozen=True, slots=True)
class WrongPhase:
    """The job is in a phase the action cannot start from."""

    phase: ExecutionPhase


@dataclass(frozen=True, slots=True)
class Stale:
    """The job is in an allowed phase but the guard no longer holds
    (another worker's claim, a newer attempt, a fresh heartbeat), or, for
    `Abortable`, does not: then ``reason`` is the task's."""

    phase: ExecutionPhase
    reason: str | None = None


#: How a transition ended.
TransitionOutcome = Changed | Missing | WrongPhase | Stale


@dataclass(frozen=True, slots=True)
class Created:
    """The job was stored."""

    job: Job


@dataclass(frozen=True, slots=True)
class OverQuota:
    """The job was not stored: an owner's limit, and the count that hit
    it."""

    limit: Literal["stored", "active"]
    count: int


@dataclass(frozen=True, slots=True)
class Existing:
    """The job was not stored: its idempotency key already names a job,
    made by the same request (``same``) or a different one."""

    job_id: str
    same: bool


#: How a creation ended.
CreateOutcome = Created | OverQuota | Existing


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a deletion removed: each job's former phase (`None`: it was
    already gone), and the jobs that were waiting for one of them."""

    phases: list[ExecutionPhase | None]
    waiting: list[str]
