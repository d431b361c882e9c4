"""Prometheus metrics of the frontend and of a worker, after real jobs."""

from __future__ import annotations

import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    TERMINAL,
    Stack,
    create_job,
    wait_for,
    wait_until,
)


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = httpx.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float],
    name: str,
    **labels: str,
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_and_time_jobs(
    metered_stack: tuple[Stack, str],
) -> None:
    stack, worker_url = metered_stack
    queue = stack.env["PHASER_QUEUE_NAME"]
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        done = [
            create_job(client, "echo", {"n": n}, start=True)["id"]
            for n in range(3)
        ]
        failed = create_job(client, "fail", {"message": "no"}, start=True)[
            "id"
        ]
        pending = create_job(client, "sleep", {"seconds": 1})["id"]
        assert client.post(f"/api/v1/jobs/{pending}/abort").status_code == 200
        for job_id in done:
            assert wait_for(client, job_id, TERMINAL)["phase"] == "COMPLETED"
        assert wait_for(client, failed, TERMINAL)["phase"] == "ERROR"

        # A long poll in progress is counted while it lasts.
        sleeper = create_job(client, "sleep", {"seconds": 30})["id"]
        waiting = threading.Thread(
            target=lambda: client.get(
                f"/api/v1/jobs/{sleeper}", params={"wait": 3}
            )
        )
        waiting.start()
        wait_until(
            lambda: (
                _value(_scrape(stack.url), "phaser_open_waits", kind="wait")
                == 1
            )
        )
        waiting.join()

    frontend = _scrape(stack.url)
    assert _value(frontend, "phaser_jobs_created_total", task="echo") == 3
    assert _value(frontend, "phaser_jobs_created_total", task="fail") == 1
    assert _value(frontend, "phaser_jobs_created_total", task="sleep") == 2
    assert (
        _value(
            frontend,
            "phaser_jobs_finished_total",
            task="sleep",
            phase="ABORTED",
        )
        == 1
    )
    assert _value(frontend, "phaser_open_waits", kind="wait") == 0
    assert _value(frontend, "phaser_queue_depth", queue=queue) == 0
    created = _value(
        frontend,
        "phaser_http_request_duration_seconds_count",
        method="POST",
        route="/api/v1/jobs",
        status="201",
    )
    assert created == 6
    # Route templates, not paths: job ids do not become label values.
    routes = {
        dict(labels)["route"]
        for name, labels in frontend
        if name == "phaser_http_request_duration_seconds_count"
    }
    assert "/api/v1/jobs/{job_id}" in routes
    assert not any(job_id in route for route in routes for job_id in done)

    worker = _scrape(worker_url)
    assert _value(worker, "phaser_jobs_started_total", task="echo") == 3
    assert (
        _value(
            worker,
            "phaser_jobs_finished_total",
            task="echo",
            phase="COMPLETED",
        )
        == 3
    )
    assert (
        _value(
            worker, "phaser_jobs_finished_total", task="fail", phase="ERROR"
        )
        == 1
    )
    for histogram in (
        "phaser_job_duration_seconds",
        "phaser_job_queue_wait_seconds",
    ):
        assert _value(worker, f"{histogram}_count", task="echo") == 3
        # Times are kept in milliseconds: a no-op can take 0.
        total = _value(worker, f"{histogram}_sum", task="echo")
        assert 0 <= total < 30
        assert (
            _value(worker, f"{histogram}_bucket", task="echo", le="+Inf") == 3
        )
    assert httpx.get(f"{worker_url}/health", timeout=5).text == "ok\n"
    assert httpx.get(f"{worker_url}/other", timeout=5).status_code == 404
