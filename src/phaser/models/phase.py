"""Execution phases and the one table of allowed transitions.

Both dialects (UWS and JSON) and the worker ask this module which phases an
action may start from; the job store then applies the transition as one
atomic compare-and-set, so an actor that lost a race sees the transition
fail instead of overwriting the winner.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_PHASES",
    "FAILED_PHASES",
    "FINAL_PHASES",
    "Action",
    "ExecutionPhase",
    "allowed_from",
    "target_phase",
]


class ExecutionPhase(StrEnum):
    """Phases of a job, as named by UWS 1.1."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


P = ExecutionPhase

#: Phases in which a job may still change by itself (a waiter blocks here).
ACTIVE_PHASES = frozenset({P.PENDING, P.QUEUED, P.EXECUTING})

#: Phases a job never leaves except by destruction or archiving.
FINAL_PHASES = frozenset({P.COMPLETED, P.ERROR, P.ABORTED, P.ARCHIVED})

#: Phases in which a job's error is the answer clients are shown (UWS
#: ``errorSummary`` and ``/error``).
FAILED_PHASES = frozenset({P.ERROR, P.ABORTED})


class Action(StrEnum):
    """Things that move a job from one phase to another."""

    START = "start"  # a client asks to run the job
    CLAIM = "claim"  # a worker takes the job
    COMPLETE = "complete"  # the task returned
    FAIL = "fail"  # the task or the server failed the job
    RETRY = "retry"  # a transient failure sends the job back to the queue
    ABORT = "abort"  # a client, a limit, or destruction stops the job
    ARCHIVE = "archive"  # destruction in archive mode
    EDIT = "edit"  # parameters and duration change; the phase does not


_TRANSITIONS: dict[Action, tuple[frozenset[P], P | None]] = {
    Action.START: (frozenset({P.PENDING, P.HELD}), P.QUEUED),
    Action.CLAIM: (frozenset({P.QUEUED}), P.EXECUTING),
    Action.COMPLETE: (frozenset({P.EXECUTING}), P.COMPLETED),
    Action.FAIL: (
        frozenset({P.PENDING, P.QUEUED, P.EXECUTING, P.HELD, P.SUSPENDED}),
        P.ERROR,
    ),
    Action.RETRY: (frozenset({P.EXECUTING}), P.QUEUED),
    Action.ABORT: (
        frozenset({P.PENDING, P.QUEUED, P.EXECUTING, P.HELD, P.SUSPENDED}),
        P.ABORTED,
    ),
    Action.ARCHIVE: (
        frozenset({P.COMPLETED, P.ERROR, P.ABORTED}),
        P.ARCHIVED,
    ),
    Action.EDIT: (frozenset({P.PENDING, P.HELD}), None),
}


def allowed_from(action: Action) -> frozenset[ExecutionPhase]:
    """Phases the action may start from."""
    return _TRANSITIONS[action][0]


def target_phase(action: Action) -> ExecutionPhase | None:
    """Phase the action leads to, `None` if it keeps the phase."""
    return _TRANSITIONS[action][1]
