"""Execution phases and the one table of allowed transitions.

Both dialects (UWS and JSON), the worker and maintenance ask this module
which phases an action may start from and where it leads; the job store's
named transitions apply it as one atomic compare-and-set, so an actor that
lost a race sees the transition fail instead of overwriting the winner.

No other Python module names a phase: they ask this one (a test greps for
it). The Lua scripts' guards are the one other place.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_PHASES",
    "ADMITTED_PHASES",
    "ARCHIVED",
    "CHILD_GROUP",
    "CHILD_GROUPS",
    "CLAIMED_PHASES",
    "FAILED",
    "FAILED_PHASES",
    "FINAL_PHASES",
    "HELD",
    "HISTORY_LETTER",
    "LISTED_PHASES",
    "OPEN_PHASES",
    "RUNNING",
    "STOPPED",
    "SUCCEEDED",
    "SUSPENDED",
    "WAITING",
    "Action",
    "ExecutionPhase",
    "allowed_from",
    "created_phase",
    "exit_code",
    "parse_phase",
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

#: Phases that count against an owner's active-jobs limit: every phase a
#: job can still leave by itself or by a client's start.
OPEN_PHASES = frozenset(
    {P.PENDING, P.QUEUED, P.EXECUTING, P.HELD, P.SUSPENDED}
)

#: Phases in which a job with concurrency limits holds its place in its
#: groups (admitted: in the queue to run, or running).
ADMITTED_PHASES = frozenset({P.QUEUED, P.EXECUTING, P.SUSPENDED})

#: Phases a job list shows unless asked for others (both dialects):
#: archived jobs are listed only on request.
LISTED_PHASES: tuple[ExecutionPhase, ...] = tuple(
    p for p in ExecutionPhase if p is not P.ARCHIVED
)

#: The phase of a job waiting in the queue for a worker.
WAITING = P.QUEUED

#: The phase of a job a worker has claimed and runs.
RUNNING = P.EXECUTING

#: The phase of a job whose task returned.
SUCCEEDED = P.COMPLETED

#: The phase of a job that failed (its task, or the server).
FAILED = P.ERROR

#: The phase of a job stopped by a client or a limit.
STOPPED = P.ABORTED

#: The phase of a job held back from the queue (by a client, or until
#: its start time).
HELD = P.HELD

#: The phase of a running job whose process a client has paused.
SUSPENDED = P.SUSPENDED

#: Phases of a job a worker holds (its claim, its heartbeats).
CLAIMED_PHASES = frozenset({P.EXECUTING, P.SUSPENDED})

#: The phase of a job whose destruction kept its metadata.
ARCHIVED = P.ARCHIVED

#: One letter per phase in a job's stored history (``transition.lua``
#: holds the same table).
HISTORY_LETTER = {
    P.PENDING: "P",
    P.QUEUED: "Q",
    P.EXECUTING: "E",
    P.COMPLETED: "C",
    P.ERROR: "R",
    P.ABORTED: "A",
    P.UNKNOWN: "U",
    P.HELD: "H",
    P.SUSPENDED: "S",
    P.ARCHIVED: "V",
}

#: How a parent's children are counted by phase (Azure IoT Hub's
#: ``deviceJobStatistics``): waiting to run, running, and how they ended.
#: Archived children (and unknown ones) count in the total only.
CHILD_GROUPS = ("pending", "running", "succeeded", "failed", "aborted")
CHILD_GROUP = {
    P.PENDING: "pending",
    P.QUEUED: "pending",
    P.HELD: "pending",
    P.EXECUTING: "running",
    P.SUSPENDED: "running",
    P.COMPLETED: "succeeded",
    P.ERROR: "failed",
    P.ABORTED: "aborted",
}

#: Exit status of a command that waited for a job to end in that phase.
_EXIT_CODES = {SUCCEEDED: 0, FAILED: 1, STOPPED: 2}


def parse_phase(value: str) -> ExecutionPhase:
    """A stored or sent phase name; UNKNOWN for a name this version does
    not have (a newer version's record, a damaged one)."""
    try:
        return ExecutionPhase(value)
    except ValueError:
        return P.UNKNOWN


def created_phase(*, start: bool) -> ExecutionPhase:
    """The phase a new job is stored in: PENDING, or (started at once)
    the phase `Action.START` leads to."""
    if start:
        started = target_phase(Action.START)
        assert started is not None
        return started
    return P.PENDING


def exit_code(phase: ExecutionPhase) -> int | None:
    """The exit status of a CLI command that waited for a job: 0
    completed, 1 error, 2 aborted; `None` for any other phase."""
    return _EXIT_CODES.get(phase)


class Action(StrEnum):
    """Things that move a job from one phase to another."""

    START = "start"  # a client asks to run the job
    CLAIM = "claim"  # a worker takes the job
    HEARTBEAT = "heartbeat"  # the worker running the job is alive
    PROGRESS = "progress"  # the task reports progress or a result
    COMPLETE = "complete"  # the task returned
    FAIL = "fail"  # the task or the server failed the job
    RETRY = "retry"  # a transient failure sends the job back to the queue
    RESEND = "resend"  # a queued job's entry is sent again (next attempt)
    ABORT = "abort"  # a client, a limit, or destruction stops the job
    HOLD = "hold"  # a client holds a job back from the queue
    ARCHIVE = "archive"  # destruction in archive mode
    EDIT = "edit"  # parameters and duration change; the phase does not
    RELABEL = "relabel"  # destruction time and run id change, in any phase
    REPRIORITISE = "reprioritise"  # the priority of a waiting job changes
    RESCHEDULE = "reschedule"  # a HELD job's start time changes
    SUSPEND = "suspend"  # a client pauses a running job's process
    RESUME = "resume"  # a client lets a suspended job's process go on
    SHELVE = "shelve"  # a suspended job's worker stopped: it waits HELD


_TRANSITIONS: dict[Action, tuple[frozenset[P], P | None]] = {
    Action.START: (frozenset({P.PENDING, P.HELD}), P.QUEUED),
    Action.CLAIM: (frozenset({P.QUEUED}), P.EXECUTING),
    Action.HEARTBEAT: (frozenset({P.EXECUTING, P.SUSPENDED}), None),
    Action.PROGRESS: (frozenset({P.EXECUTING}), None),
    Action.COMPLETE: (frozenset({P.EXECUTING, P.SUSPENDED}), P.COMPLETED),
    Action.FAIL: (
        frozenset({P.PENDING, P.QUEUED, P.EXECUTING, P.HELD, P.SUSPENDED}),
        P.ERROR,
    ),
    Action.RETRY: (frozenset({P.EXECUTING}), P.QUEUED),
    Action.RESEND: (frozenset({P.QUEUED}), None),
    Action.ABORT: (
        frozenset({P.PENDING, P.QUEUED, P.EXECUTING, P.HELD, P.SUSPENDED}),
        P.ABORTED,
    ),
    Action.HOLD: (frozenset({P.PENDING, P.QUEUED}), P.HELD),
    Action.ARCHIVE: (
        frozenset({P.COMPLETED, P.ERROR, P.ABORTED}),
        P.ARCHIVED,
    ),
    Action.EDIT: (frozenset({P.PENDING, P.HELD}), None),
    Action.RELABEL: (frozenset(ExecutionPhase), None),
    Action.REPRIORITISE: (frozenset({P.PENDING, P.QUEUED, P.HELD}), None),
    Action.RESCHEDULE: (frozenset({P.HELD}), None),
    Action.SUSPEND: (frozenset({P.EXECUTING}), P.SUSPENDED),
    Action.RESUME: (frozenset({P.SUSPENDED}), P.EXECUTING),
    Action.SHELVE: (frozenset({P.SUSPENDED}), P.HELD),
}


def allowed_from(action: Action) -> frozenset[ExecutionPhase]:
    """Phases the action may start from."""
    return _TRANSITIONS[action][0]


def target_phase(action: Action) -> ExecutionPhase | None:
    """Phase the action leads to, `None` if it keeps the phase."""
    return _TRANSITIONS[action][1]
