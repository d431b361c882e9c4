"""One transition as ``transition.lua`` takes it: what changes
(`Transition`), its arguments, and its reply read back as an outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..clock import to_ms
from ..models.phase import (
    Action,
    ExecutionPhase,
    allowed_from,
    parse_phase,
    target_phase,
)
from .codec import FIELD, decode_flat, encode_fields
from .events import running_channel
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

__all__ = ["Transition", "outcome_of", "script_args"]


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
        case Abortable():
            return "!" + FIELD["no_abort"], ""


def script_args(job_id: str, change: Transition, channel: str) -> list[str]:
    """The script's ``ARGV`` for ``change`` of job ``job_id``, events
    going to ``channel``."""
    encoded = encode_fields(job_id, change.fields)
    guard_field, guard_value = _guard_arg(change.guard)
    args: list[str] = [
        job_id,
        "," + ",".join(change.allowed) + ",",
        change.target or "",
        guard_field,
        guard_value,
        channel,
        change.event or "",
        # The running worker's own changes are not repeated to workers.
        ""
        if isinstance(change.guard, Claim) and change.guard.holder
        else running_channel(channel),
        str(len(encoded)),
    ]
    for name, value in encoded.items():
        args += [name, value]
    args += [FIELD[name] for name in change.clear]
    return args


def outcome_of(job_id: str, reply: list[Any]) -> TransitionOutcome:
    """The outcome the script's reply says."""
    match reply[0]:
        case "ok":
            return Changed(
                decode_flat(job_id, reply[2]), parse_phase(reply[1])
            )
        case "missing":
            return Missing()
        case "phase":
            return WrongPhase(parse_phase(reply[1]))
        case _:
            reason = reply[2] if len(reply) > 2 else None
            return Stale(parse_phase(reply[1]), reason)
