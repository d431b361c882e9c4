"""Job ids: 26 characters, sortable by creation time.

The first 10 characters are the creation time in milliseconds and the last
16 are random (80 bits), both in lower-case Crockford base32. Sorting ids as
strings sorts jobs by creation time, which is what lets the job store page
through its indexes with ``ZREVRANGEBYLEX``.
"""

from __future__ import annotations

import re
import secrets
import threading

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


_last = [0, 0]
_lock = threading.Lock()


def new_job_id(created_ms: int) -> str:
    """A new id for a job created at ``created_ms``.

    Ids made by one process sort in the order they were made: within one
    millisecond the random part of the next id is the last one's plus one
    (as monotonic ULIDs do), so a client's jobs created back to back list
    in that order. Ids from different processes in the same millisecond
    sort at random, which is as good as either order.
    """
    with _lock:
        last_ms, last_random = _last
        if created_ms == last_ms and last_random < 2**80 - 1:
            random = last_random + 1
        else:
            random = secrets.randbits(79)  # room to count up within the ms
        _last[:] = [created_ms, random]
    return _encode(created_ms, 10) + _encode(random, 16)


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
