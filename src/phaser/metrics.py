"""Prometheus metrics, in one place.

Every process (frontend or worker) keeps its own metrics in the default
registry of ``prometheus_client``; Prometheus scrapes each pod and sums.
Frontends serve them at ``/metrics``; workers on ``PHASER_METRICS_PORT``
(see `serve_worker_metrics`). Names follow the Prometheus conventions:
``phaser_`` prefix, ``_total`` for counters, base units (seconds).
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "CONNECTIONS_REFUSED",
    "CONNECTIONS_TIMED_OUT",
    "CONTENT_TYPE_LATEST",
    "HTTP_REQUEST_DURATION",
    "JOBS_CREATED",
    "JOBS_FINISHED",
    "JOBS_STARTED",
    "JOB_DURATION",
    "JOB_QUEUE_WAIT",
    "OPEN_WAITS",
    "QUEUE_DEPTH",
    "WORKER_SILENCE",
    "render",
    "serve_worker_metrics",
]

#: Job durations and queue waits run from milliseconds to hours.
_JOB_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    float("inf"),
)

JOBS_CREATED = Counter(
    "phaser_jobs_created_total", "Jobs created, by task.", ["task"]
)
JOBS_STARTED = Counter(
    "phaser_jobs_started_total",
    "Attempts of jobs that a worker started, by task.",
    ["task"],
)
JOBS_FINISHED = Counter(
    "phaser_jobs_finished_total",
    "Jobs that ended, by task and final phase (COMPLETED, ERROR, ABORTED).",
    ["task", "phase"],
)
QUEUE_DEPTH = Gauge(
    "phaser_queue_depth",
    "Jobs waiting in a queue for a worker, read at scrape time.",
    ["queue"],
)
CONNECTIONS_REFUSED = Counter(
    "phaser_http_connections_refused_total",
    "Connections closed at once because PHASER_HTTP_MAX_CONNECTIONS were"
    " open.",
)
CONNECTIONS_TIMED_OUT = Counter(
    "phaser_http_connections_timed_out_total",
    "Connections closed because a request's headers or body did not"
    " arrive in time, by stage (header, body).",
    ["stage"],
)
WORKER_SILENCE = Gauge(
    "phaser_worker_silence_seconds",
    "Seconds since any worker was last seen alive (+Inf: none has been),"
    " read at scrape time.",
)
JOB_DURATION = Histogram(
    "phaser_job_duration_seconds",
    "Time from a job's start on a worker to its end, by task.",
    ["task"],
    buckets=_JOB_BUCKETS,
)
JOB_QUEUE_WAIT = Histogram(
    "phaser_job_queue_wait_seconds",
    "Time from an attempt's entry in the queue to its start, by task.",
    ["task"],
    buckets=_JOB_BUCKETS,
)
OPEN_WAITS = Gauge(
    "phaser_open_waits",
    "Open long polls (kind=wait) and event streams (kind=events).",
    ["kind"],
)
HTTP_REQUEST_DURATION = Histogram(
    "phaser_http_request_duration_seconds",
    "HTTP request latency by method, route template and status code.",
    ["method", "route", "status"],
)


def render() -> bytes:
    """The metrics of this process in Prometheus' text format."""
    return generate_latest()


async def serve_worker_metrics(port: int) -> asyncio.Server:
    """Serve ``/metrics`` and ``/health`` of a worker process on ``port``.

    A few lines of HTTP/1.0 on asyncio rather than a web framework: the
    worker has no other HTTP to do, and probes and scrapes are rare.
    """

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = request.split()
            path = parts[1].decode("latin-1") if len(parts) > 1 else ""
            while (await reader.readline()).strip():
                pass  # headers
            match path.split("?")[0]:
                case "/metrics":
                    status, kind, body = (
                        "200 OK",
                        CONTENT_TYPE_LATEST,
                        render(),
                    )
                case "/health":
                    status, kind, body = "200 OK", "text/plain", b"ok\n"
                case _:
                    status, kind, body = (
                        "404 Not Found",
                        "text/plain",
                        b"not found\n",
                    )
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    # All interfaces: Prometheus and the kubelet scrape from outside the pod.
    return await asyncio.start_server(answer, host="0.0.0.0", port=port)  # noqa: S104
