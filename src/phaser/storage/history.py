"""A job's history as stored: a phase letter and the milliseconds since
creation in base 36 per change (``P0Q1kE1mC2bk``), short enough to keep
the record in Redis' compact hash encoding; ``transition.lua`` appends
to it."""

from __future__ import annotations

import re
from datetime import datetime

from ..clock import from_ms, to_ms
from ..models.job import Job, PhaseChange
from ..models.phase import HISTORY_LETTER

__all__ = ["history_text", "read_history"]

_LETTER_PHASE = {letter: phase for phase, letter in HISTORY_LETTER.items()}
_HISTORY_ENTRY = re.compile(r"([A-Z])([0-9a-z]{1,12})")


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        value, digit = divmod(value, 36)
        text = digits[digit] + text
        if not value:
            return text


def history_text(job: Job) -> str:
    """The history as stored: a phase letter and the milliseconds since
    creation in base 36 per change (``P0Q1kE1mC2bk``): short enough to
    keep the record in Redis' compact hash encoding. The transition
    script appends to it."""
    created = to_ms(job.created_at)
    return "".join(
        HISTORY_LETTER[change.phase]
        + _base36(max(0, to_ms(change.at) - created))
        for change in job.history
    )


def read_history(text: str, created: datetime) -> list[PhaseChange]:
    """The stored history read back (a ``~`` where the script dropped
    changes from a very long history is skipped)."""
    base = to_ms(created)
    return [
        PhaseChange(_LETTER_PHASE[letter], from_ms(base + int(offset, 36)))
        for letter, offset in _HISTORY_ENTRY.findall(text)
        if letter in _LETTER_PHASE
    ]
