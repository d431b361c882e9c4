"""OpenTelemetry behind `phaser.tracing` (``PHASER_TRACING=otlp``).

Imported only when tracing is on. Spans go through a batch processor to
an OTLP/HTTP exporter; both are configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_SCHEDULE_DELAY``,
``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME`` …). The provider is also
made the process's global one, so an ``async`` task's own spans nest
under its ``phaser.task`` span; FastAPI's own telemetry makes the HTTP
server spans with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

from . import __version__
from .tracing import AttributeValue, Span, SpanKind, Tracing

__all__ = ["OtelTracing"]

_KINDS = {
    "internal": trace.SpanKind.INTERNAL,
    "client": trace.SpanKind.CLIENT,
    "consumer": trace.SpanKind.CONSUMER,
}

#: Requests that get no span: probes and scrapes, many a minute.
_UNTRACED = frozenset({"/health", "/ready", "/metrics"})

_PROPAGATOR = TraceContextTextMapPropagator()


_made: list[TracerProvider] = []


def _provider(role: str) -> TracerProvider:
    """The process's provider, made once (OpenTelemetry's global provider
    can be set only once; the first role asked for is the process's)."""
    if _made:
        return _made[0]
    resource = Resource.create(
        {
            "phaser.role": role,
            "service.version": __version__,
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith(
        "unknown_service"
    ):
        resource = resource.merge(Resource({SERVICE_NAME: "phaser"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _made.append(provider)
    return provider


def _context(parent: str | None) -> Context | None:
    if parent is None:
        return None  # the current span's
    return _PROPAGATOR.extract({"traceparent": parent})


def _ns(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1e9) if moment is not None else None


def _attributes(
    values: Mapping[str, AttributeValue | None] | None,
) -> dict[str, AttributeValue]:
    return {k: v for k, v in (values or {}).items() if v is not None}


class _OtelSpan(Span):
    def __init__(self, span: trace.Span) -> None:
        self._span = span
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
        self.traceparent = carrier.get("traceparent")

    def set(self, key: str, value: AttributeValue | None) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def fail(self, message: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, message))


class OtelTracing(Tracing):
    """Spans exported over OTLP (see the module doc)."""

    def __init__(self, *, role: str) -> None:
        self._provider = _provider(role)
        self._tracer = self._provider.get_tracer("phaser", __version__)

    def span(
        self,
        name: str,
        *,
        parent: str | None = None,
        kind: SpanKind = "internal",
        start: datetime | None = None,
        attributes: Mapping[str, AttributeValue | None] | None = None,
    ) -> AbstractContextManager[Span]:
        return self._span(name, parent, kind, start, attributes)

    @contextlib.contextmanager
    def _span(
        self,
        name: str,
        parent: str | None,
        kind: SpanKind,
        start: datetime | None,
        attributes: Mapping[str, AttributeValue | None] | None,
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name,
            context=_context(parent),
            kind=_KINDS[kind],
            start_time=_ns(start),
            attributes=_attributes(attributes),
        ) as span:
            yield _OtelSpan(span)

    def record(
        self,
        name: str,
        *,
        parent: str | None,
        start: datetime,
        end: datetime,
        attributes: Mapping[str, AttributeValue | None] | None = None,
    ) -> None:
        span = self._tracer.start_span(
            name,
            context=_context(parent),
            start_time=_ns(start),
            attributes=_attributes(attributes),
        )
        span.end(end_time=_ns(max(start, end)))

    def telemetry(self) -> TelemetryConfig:
        # A server span per request (continuing a client's traceparent);
        # no spans inside requests, no metrics or logs (phaser has its
        # own), none for probes and scrapes.
        return {
            "tracer_provider": self._provider,
            "tracing": True,
            "operation_spans": False,
            "metrics": False,
            "logs": False,
            "exclude": lambda scope: scope.get("path") in _UNTRACED,
        }

    def shutdown(self) -> None:
        # Exported now; the provider itself shuts down at exit.
        self._provider.force_flush()
