"""Job ids: 26 characters, sortable by creation time.

The first 10 characters are the creation time in milliseconds and the last
16 are random (80 bits), both in lower-case Crockford base32. Sorting ids as
strings sorts jobs by creation time, which is what lets the job store page
through its indexes with ``ZREVRANGEBYLEX``.
"""

from __future__ import annotations

import re
import secrets

__all__ = [
    "JOB_ID_PATTERN",
    "after_bound",
    "created_ms",
    "is_job_id",
    "new_job_id",
]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

#: What a job id looks like (a regular expression, for schemas too).
JOB_ID_PATTERN = "^[0-9a-hjkmnp-tv-z]{26}$"
_PATTERN = re.compile(JOB_ID_PATTERN)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_job_id(created_ms: int) -> str:
    """A new id for a job created at ``created_ms``."""
    return _encode(created_ms, 10) + _encode(secrets.randbits(80), 16)


def created_ms(job_id: str) -> int:
    """The creation time (ms since the epoch) a job id carries."""
    value = 0
    for char in job_id[:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value


def is_job_id(text: str) -> bool:
    """Whether the text has the shape of a job id."""
    return bool(_PATTERN.fullmatch(text))


def after_bound(ms: int) -> str:
    """Exclusive lower bound on ids of jobs created after ``ms``.

    ``~`` sorts after every id character, so every id created in that very
    millisecond is below the bound and every later one above it.
    """
    return _encode(min(max(ms, 0), 2**50 - 1), 10) + "~"
