"""OpenTelemetry traces (issue 17, part 2): with ``PHASER_TRACING=otlp`` a
job's trace links its HTTP creation, its queue wait, its runs with the
task as a child span, and its webhook deliveries, across the frontend and
worker processes; spans reach a real OTLP/HTTP collector on loopback.
With tracing off nothing of it is loaded, stored or queued."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Stack, run_python, wait_for, wait_until
from phaser.embedded import EmbeddedRedis
from receivers import Collector, Receiver

#: OTLP's span status code for an error.
_ERROR = 2


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    running = Collector()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def traced(
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    collector: Collector,
    receiver: Receiver,
) -> Iterator[Stack]:
    """A frontend and a worker exporting their spans to ``collector``."""
    data = tmp_path_factory.mktemp("traced")
    stack = Stack(
        redis_server.url,
        data,
        tracing="otlp",
        webhook_hosts=f"127.0.0.1:{receiver.port}",
        maintenance_interval=0.2,
        log_level="INFO",
    )
    stack.env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
    )
    stack.env.pop("OTEL_SERVICE_NAME", None)
    try:
        stack.start_worker(log=data / "worker.log")
        stack.start_frontend()
        yield stack
    finally:
        stack.stop()


def _traceparent() -> tuple[str, str, str]:
    """A client's trace context: (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _of_trace(
    spans: list[dict[str, Any]], trace_id: str
) -> list[dict[str, Any]]:
    return [span for span in spans if span["trace_id"] == trace_id]


def _named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [span for span in spans if span["name"] == name]


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [span] = _named(spans, name)
    return span


def test_one_trace_links_create_queue_run_task_and_webhook(
    traced: Stack, collector: Collector, receiver: Receiver
) -> None:
    header, trace_id, client_span = _traceparent()
    with httpx.Client(base_url=traced.url, timeout=30) as http:
        answer = http.post(
            "/api/v1/jobs",
            json={
                "task": "echo",
                "parameters": {"x": 1},
                "start": True,
                "notify": {"url": receiver.url},
            },
            headers={"traceparent": header},
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        wait_for(http, job_id, {"COMPLETED"})
        # A plain long poll, answered ahead of routing, in the trace too.
        waited = http.get(
            f"/api/v1/jobs/{job_id}",
            params={"wait": 1},
            headers={"traceparent": header},
        )
        assert waited.status_code == 200
    wait_until(lambda: receiver.answered >= 1)

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {span["name"] for span in _of_trace(spans, trace_id)}
        return {
            "phaser.job.run",
            "phaser.webhook.deliver",
            "GET /api/v1/jobs/{job_id}",
        } <= names

    spans = _of_trace(collector.wait_for(complete, timeout=20), trace_id)
    http_span = _one(spans, "POST /api/v1/jobs")
    create = _one(spans, "phaser.job.create")
    queued = _one(spans, "phaser.job.queued")
    run = _one(spans, "phaser.job.run")
    task = _one(spans, "phaser.task echo")
    deliver = _one(spans, "phaser.webhook.deliver")
    # The client's trace goes on: HTTP span → create → the rest.
    assert http_span["parent_id"] == client_span
    assert http_span["attributes"]["http.route"] == "/api/v1/jobs"
    wait_span = _one(spans, "GET /api/v1/jobs/{job_id}")
    assert wait_span["attributes"]["http.route"] == "/api/v1/jobs/{job_id}"
    assert create["parent_id"] == http_span["span_id"]
    for span in (queued, run, deliver):
        assert span["parent_id"] == create["span_id"], span["name"]
    assert task["parent_id"] == run["span_id"]
    # Who recorded what: the frontend the creation, a worker the rest.
    for span in (http_span, create):
        assert span["resource"]["phaser.role"] == "frontend"
        assert span["resource"]["service.name"] == "phaser"
    for span in (queued, run, task, deliver):
        assert span["resource"]["phaser.role"] == "worker"
    assert create["attributes"]["phaser.job.id"] == job_id
    assert run["attributes"]["phaser.job.id"] == job_id
    assert run["attributes"]["phaser.outcome"] == "completed"
    assert run["attributes"]["phaser.attempt"] == 1
    assert deliver["attributes"]["phaser.event"] == "final"
    assert deliver["attributes"]["http.response.status_code"] == 204
    # In order: queued until the run began, the task within its run.
    # (The queue wait starts at arq's enqueue time, stored in whole
    # milliseconds, so it is compared with the others to the millisecond.)
    assert queued["end"] <= run["start"] + 1_000_000
    assert run["start"] <= task["start"] <= task["end"] <= run["end"]
    assert create["start"] <= queued["start"] + 1_000_000
    # The webhook request carries the delivery's span on.
    [sent] = [
        r
        for r in receiver.received
        if job_id.encode() in r["body"] and "traceparent" in r["headers"]
    ]
    assert sent["headers"]["traceparent"] == (
        f"00-{trace_id}-{deliver['span_id']}-01"
    )
    # The worker's log lines of the job name its trace.
    log = (traced.data_dir / "worker.log").read_text()
    assert any(
        job_id in line and trace_id in line for line in log.splitlines()
    )


def test_every_attempt_of_a_retried_job_is_in_its_trace(
    traced: Stack, collector: Collector
) -> None:
    header, trace_id, _ = _traceparent()
    with httpx.Client(base_url=traced.url, timeout=30) as http:
        answer = http.post(
            "/api/v1/jobs",
            json={
                "task": "fail",
                "parameters": {"transient": True, "message": "again"},
                "start": True,
            },
            headers={"traceparent": header},
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        job = wait_for(http, job_id, {"ERROR"}, timeout=30)
    attempts = job["attempts"]
    assert attempts > 1

    def every_run(spans: list[dict[str, Any]]) -> bool:
        runs = _named(_of_trace(spans, trace_id), "phaser.job.run")
        return len(runs) == attempts

    spans = _of_trace(collector.wait_for(every_run, timeout=20), trace_id)
    runs = sorted(
        _named(spans, "phaser.job.run"),
        key=lambda span: span["attributes"]["phaser.attempt"],
    )
    assert [r["attributes"]["phaser.attempt"] for r in runs] == list(
        range(1, attempts + 1)
    )
    outcomes = [r["attributes"]["phaser.outcome"] for r in runs]
    assert outcomes == ["retried"] * (attempts - 1) + ["failed"]
    assert all(run["status"] == _ERROR for run in runs)
    create = _one(spans, "phaser.job.create")
    assert all(run["parent_id"] == create["span_id"] for run in runs)
    tasks = _named(spans, "phaser.task fail")
    assert len(tasks) == attempts
    assert {t["status_message"] for t in tasks} == {"again"}
    assert len(_named(spans, "phaser.job.queued")) == attempts


def test_a_uws_job_started_later_is_traced_from_its_creation(
    traced: Stack, collector: Collector, evidence: Path
) -> None:
    """Created PENDING through UWS, started by a second request: the run
    belongs to the creation's trace (kept in the job record), not to the
    request that started it."""
    header, trace_id, _ = _traceparent()
    with httpx.Client(base_url=traced.url, timeout=30) as http:
        created = http.post(
            "/burn/jobs",
            data={"directory": str(evidence), "seconds": "0.1"},
            headers={"traceparent": header},
        )
        assert created.status_code == 303, created.text
        job_url = created.headers["location"]
        job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
        started = http.post(f"{job_url}/phase", data={"PHASE": "RUN"})
        assert started.status_code == 303
        wait_for(http, job_id, {"COMPLETED"})

    def ran(spans: list[dict[str, Any]]) -> bool:
        return bool(_named(_of_trace(spans, trace_id), "phaser.job.run"))

    spans = _of_trace(collector.wait_for(ran, timeout=20), trace_id)
    http_span = _one(spans, "POST /{task}/jobs")
    create = _one(spans, "phaser.job.create")
    assert create["parent_id"] == http_span["span_id"]
    run = _one(spans, "phaser.job.run")
    assert run["parent_id"] == create["span_id"]
    # A def task runs in a child process; its span is the worker's.
    task = _one(spans, "phaser.task burn")
    assert task["parent_id"] == run["span_id"]
    assert traced.record(job_id) is not None


def test_with_tracing_off_nothing_is_loaded_stored_or_queued(
    stack: Stack, client: httpx.Client
) -> None:
    header, _, _ = _traceparent()
    answer = client.post(
        "/api/v1/jobs",
        json={"task": "echo", "parameters": {}, "start": False},
        headers={"traceparent": header},
    )
    assert answer.status_code == 201
    record = stack.record(answer.json()["id"])
    assert record is not None
    assert record.trace is None
    # Neither the frontend's app nor the worker loads the SDK or an
    # exporter (FastAPI itself imports OpenTelemetry's API, a no-op).
    probe = (
        "import sys\n"
        "from phaser.config import load_settings\n"
        "from phaser.main import create_app\n"
        "from phaser.worker.app import create_worker\n"
        "settings = load_settings()\n"
        "create_app(settings)\n"
        "create_worker(settings)\n"
        "loaded = ('opentelemetry.sdk', 'opentelemetry.exporter',\n"
        "          'phaser.otel')\n"
        "print(sorted(m for m in sys.modules if m.startswith(loaded)))\n"
    )
    done = run_python({**stack.env, "PHASER_TRACING": "off"}, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_tracing_without_the_extra_is_refused_clearly(stack: Stack) -> None:
    """``PHASER_TRACING=otlp`` where the OpenTelemetry SDK cannot be
    imported: the process stops at once, saying what to install."""
    probe = (
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None  # not installed\n"
        "from phaser.cli import main\n"
        "sys.argv = ['phaser', 'worker']\n"
        "sys.exit(main())\n"
    )
    done = run_python({**stack.env, "PHASER_TRACING": "otlp"}, "-c", probe)
    assert done.returncode != 0
    assert "pip install 'phaser[otel]'" in done.stderr, done.stderr
