"""Time as phaser stores it: UTC, millisecond resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

__all__ = [
    "EARLIEST",
    "LATEST",
    "format_time",
    "from_ms",
    "now",
    "parse_time",
    "to_ms",
    "to_utc",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

#: The earliest and latest times phaser accepts: every stored time is
#: milliseconds since the epoch, and must render as a four-digit year.
EARLIEST = _EPOCH
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def now() -> datetime:
    """The current UTC time, truncated to milliseconds."""
    return from_ms(to_ms(datetime.now(tz=UTC)))


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The UTC datetime of milliseconds since the epoch."""
    return _EPOCH + ms * _MS


@lru_cache(maxsize=4096)
def format_time(moment: datetime) -> str:
    """RFC 3339 / ISO 8601 in UTC with milliseconds and a trailing ``Z``."""
    # isoformat is implemented in C; strftime took a sixth of the time of
    # a JSON page of 100 jobs (benchmark B4). Remembered: a job's history
    # repeats its other times, and pages are read again and again (a
    # dashboard's poll), and a hit costs a tenth of formatting. Equal
    # instants in other time zones hit too, and format alike.
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def to_utc(moment: datetime) -> datetime:
    """The same moment in UTC, truncated to milliseconds (naive datetimes
    are taken as UTC).

    Raises
    ------
    ValueError
        It is before 1970 or after 9999 once in UTC (a time near the ends
        of the calendar with an offset may not exist in UTC at all).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError("must be between 1970 and 9999 (in UTC)")
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; ``Z``, an offset or no zone (UTC).

    Raises
    ------
    ValueError
        The text is not an ISO 8601 time, or not one `to_utc` accepts.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return to_utc(datetime.fromisoformat(value))
