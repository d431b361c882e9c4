"""Rendering for the dashboard: the Jinja2 environment (templates from
the package, autoescaped), its filters, the throughput chart, and live
parts as server-sent events."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2

from ..models.phase import (
    ACTIVE_PHASES,
    FAILED_PHASES,
    RUNNING,
    SUCCEEDED,
    Action,
    ExecutionPhase,
    allowed_from,
)
from ..services.operations import Stats

__all__ = ["chart", "digest", "environment", "sse_event"]

#: The style of each phase: succeeded, failed, running, waiting (none
#: for the phases a job rarely shows).
PHASE_CLASSES = {
    SUCCEEDED: "ok",
    **dict.fromkeys(FAILED_PHASES, "bad"),
    RUNNING: "run",
    **dict.fromkeys(ACTIVE_PHASES - {RUNNING}, "wait"),
}


def _phases(action: Action) -> str:
    """The phases an action starts from, as ``data-show-in`` lists them."""
    return " ".join(sorted(allowed_from(action)))


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ago(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "never"
    if seconds < 60:
        return "within the last minute"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return _ago(seconds).removesuffix(" ago")


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return (
                f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            )
        value /= 1024
    raise AssertionError(size)


@cache
def environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("phaser.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=_when, iso=_iso, ago=_ago, age=_age, size=_size
    )
    environment.globals.update(
        phases=list(ExecutionPhase),
        phase_class=PHASE_CLASSES,
        start_phases=_phases(Action.START),
        hold_phases=_phases(Action.HOLD),
        suspend_phases=_phases(Action.SUSPEND),
        resume_phases=_phases(Action.RESUME),
        abort_phases=_phases(Action.ABORT),
    )
    return environment


def chart(stats: Stats) -> dict[str, Any]:
    """Bars of jobs started and finished per minute (inline SVG)."""
    peak = max([1, *stats.started_per_minute, *stats.finished_per_minute])
    height = 60.0
    bars = []
    for minute, (started, finished) in enumerate(
        zip(stats.started_per_minute, stats.finished_per_minute, strict=True)
    ):
        bars.append(
            {
                "x": minute * 6,
                "started": round(height * started / peak, 1),
                "finished": round(height * finished / peak, 1),
            }
        )
    return {"bars": bars, "peak": peak, "height": height}


def digest(html: str) -> str:
    """A short digest of a live part, so that a stream does not send the
    page what it already shows (a replaced part loses the keyboard focus)."""
    return hashlib.sha256(html.encode()).hexdigest()[:16]


def sse_event(kind: str, html: str) -> str:
    """One server-sent event; every line of the HTML a ``data`` line."""
    lines = html.replace("\r", "").split("\n")
    return (
        f"event: {kind}\n"
        + "".join(f"data: {line}\n" for line in lines)
        + "\n"
    )
