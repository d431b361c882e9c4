"""HTTP servers on loopback that tests point phaser at."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from phaser.embedded import free_port

__all__ = ["Collector", "Receiver"]


class _LoopbackServer:
    """An HTTP server on a loopback port, serving on a thread of its own
    once started; subclasses say how it answers (`_handler`)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> None:
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", self.port), self._handler()
        )
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Receiver(_LoopbackServer):
    """An HTTP server on loopback that records what it is sent and answers
    as told: ``fail`` answers 500 that many times first, ``delay`` sleeps
    before answering, ``redirect`` answers 302 to it."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[dict[str, Any]] = []
        self.answered = 0
        self.fail = 0
        self.delay = 0.0
        self.redirect: str | None = None
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        {
                            "at": time.monotonic(),
                            "headers": dict(self.headers),
                            "body": body,
                        }
                    )
                    failing = receiver.fail > 0
                    receiver.fail -= failing
                time.sleep(receiver.delay)
                if receiver.redirect:
                    self.send_response(302)
                    self.send_header("location", receiver.redirect)
                else:
                    self.send_response(500 if failing else 204)
                self.end_headers()
                with receiver._lock:
                    receiver.answered += 1

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class Collector(_LoopbackServer):
    """An OpenTelemetry collector on loopback: accepts OTLP/HTTP
    (protobuf) exports at ``/v1/traces`` and keeps every span, with its
    resource's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"
        self.spans: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                spans = [
                    _span(span, resource.resource)
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                ]
                with collector._changed:
                    collector.spans.extend(spans)
                    collector._changed.notify_all()
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def wait_for(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        """The spans so far, once ``check`` accepts them (or fail)."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: check(self.spans), timeout=timeout
            ):
                names = sorted(span["name"] for span in self.spans)
                raise AssertionError(f"spans not exported; got {names}")
            return list(self.spans)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _span(span: Span, resource: Resource) -> dict[str, Any]:
    """A span as a dict: ids as hex, attributes as a dict."""
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_id": span.parent_span_id.hex() or None,
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "status": span.status.code,
        "status_message": span.status.message,
        "attributes": {a.key: _value(a.value) for a in span.attributes},
        "resource": {a.key: _value(a.value) for a in resource.attributes},
    }
