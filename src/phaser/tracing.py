"""Tracing: a trace per job, or nothing at all.

With ``PHASER_TRACING=otlp`` (and the ``otel`` extra installed) every
process exports OpenTelemetry spans (`phaser.otel`); a job's trace is the
trace of the HTTP request that created it (continuing the client's, if it
sent a ``traceparent`` header):

.. code-block:: text

   POST /api/v1/jobs                       HTTP server span
   └─ phaser.job.create                    the checks and the one write
      ├─ phaser.job.queued                 queue wait of an attempt
      ├─ phaser.job.run                    an attempt on a worker
      │  └─ phaser.task <name>             the task itself
      └─ phaser.webhook.deliver            each delivery attempt

The create span's context, as a W3C ``traceparent``, is kept in the job
record (``trace``) and travels in the queue entry, so whichever worker
runs or notifies picks the trace up; a webhook request carries it too.

With tracing off (the default) the module is this no-op surface: no
OpenTelemetry code is imported, nothing is stored or queued, and a span
costs one call that yields a shared do-nothing object.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

    from .config import Settings

__all__ = [
    "AttributeValue",
    "Span",
    "SpanKind",
    "Tracing",
    "configure_tracing",
    "trace_id",
    "tracing",
    "tracing_unavailable",
]

#: What a span attribute may hold.
AttributeValue = str | int | float | bool

#: The OpenTelemetry span kinds phaser uses.
SpanKind = Literal["internal", "client", "consumer"]


class Span:
    """A span being recorded; this one records nothing."""

    #: The span's context as a W3C ``traceparent`` (`None`: not traced).
    traceparent: str | None = None

    def set(self, key: str, value: AttributeValue | None) -> None:
        """Set an attribute (`None` is left out)."""

    def fail(self, message: str) -> None:
        """Mark the span as failed, with why."""


_NO_SPAN = Span()

#: The context every span of `Tracing` is: reusable, allocation-free.
_NOTHING = contextlib.nullcontext(_NO_SPAN)


class Tracing:
    """Tracing switched off: every span is a do-nothing span."""

    def span(
        self,
        name: str,
        *,
        parent: str | None = None,
        kind: SpanKind = "internal",
        start: datetime | None = None,
        attributes: Mapping[str, AttributeValue | None] | None = None,
    ) -> AbstractContextManager[Span]:
        """A span around the block, current within it: a child of the
        current span, or of ``parent`` (a ``traceparent``) if given;
        beginning at ``start`` if given (else now). An exception leaving
        the block marks it failed."""
        return _NOTHING

    def record(
        self,
        name: str,
        *,
        parent: str | None,
        start: datetime,
        end: datetime,
        attributes: Mapping[str, AttributeValue | None] | None = None,
    ) -> None:
        """A span of something already over (a wait), under ``parent``."""

    def telemetry(self) -> TelemetryConfig:
        """FastAPI's own telemetry settings (it makes the HTTP server
        spans): off."""
        return {"tracing": False, "metrics": False, "logs": False}

    def shutdown(self) -> None:
        """Export what is left; spans after this are dropped."""


_tracing: Tracing = Tracing()


def trace_id(traceparent: str) -> str | None:
    """The trace id a W3C ``traceparent`` names (``00-{trace id}-…``)."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None


def tracing() -> Tracing:
    """This process's tracing (as OpenTelemetry's, process-wide)."""
    return _tracing


def configure_tracing(settings: Settings, *, role: str) -> Tracing:
    """Switch this process's tracing on or off as ``settings`` say.

    ``role`` (``frontend``, ``worker``) is recorded on every span's
    resource.

    Raises
    ------
    RuntimeError
        Tracing is asked for but the ``otel`` extra is not installed.
    """
    global _tracing
    _tracing.shutdown()
    if settings.tracing == "off":
        _tracing = Tracing()
        return _tracing
    problem = tracing_unavailable(settings)
    if problem is not None:
        raise RuntimeError(problem)
    from .otel import OtelTracing

    _tracing = OtelTracing(role=role)
    return _tracing


def tracing_unavailable(settings: Settings) -> str | None:
    """Why the tracing ``settings`` ask for cannot start, or `None`."""
    if settings.tracing == "off":
        return None
    try:
        importlib.import_module("phaser.otel")
    except ImportError as exc:
        return (
            "PHASER_TRACING=otlp needs OpenTelemetry: pip install"
            f" 'phaser[otel]' ({exc})"
        )
    return None
