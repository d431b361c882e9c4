"""Smaller protocol findings: the run-id index, OPTIONS and 405 ``Allow``,
and the error statuses the OpenAPI document gives the UWS routes."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree
from redis.asyncio import Redis

from conftest import (
    TERMINAL,
    Stack,
    create_job,
    make_stack,
    valid_uws,
    wait_for,
)
from phaser.embedded import EmbeddedRedis
from phaser.storage.keys import KeyLayout


@pytest.fixture
def own(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Stack]:
    stack = make_stack(redis_server, tmp_path / "data")
    yield stack
    stack.stop()


def _run_index(stack: Stack, run_id: str) -> list[str]:
    async def read() -> list[str]:
        redis = Redis.from_url(stack.redis_url, decode_responses=True)
        try:
            key = KeyLayout(stack.env["PHASER_KEY_PREFIX"]).by_run(
                None, run_id
            )
            members: list[str] = await redis.zrange(key, 0, -1)
            return members
        finally:
            await redis.aclose()

    return asyncio.run(read())


def test_run_id_filter_reads_its_own_index(own: Stack) -> None:
    with httpx.Client(base_url=own.url, timeout=30) as client:

        def listed(**params: str) -> list[str]:
            page = client.get("/api/v1/jobs", params=params).json()
            return [job["id"] for job in page["jobs"]]

        tagged = [
            create_job(client, "echo", {"n": n}, run_id="night")["id"]
            for n in range(3)
        ]
        for n in range(50):  # jobs the filter must not have to skip
            create_job(client, "echo", {"n": n}, run_id=f"other-{n}")
        started = create_job(client, "echo", {}, run_id="night", start=True)[
            "id"
        ]
        wait_for(client, started, TERMINAL)
        assert listed(run_id="night") == [started, *reversed(tagged)]
        assert sorted(_run_index(own, "night")) == sorted([*tagged, started])
        assert listed(run_id="night", phase="COMPLETED") == [started]
        assert listed(run_id="night", task="echo", limit="2") == [
            started,
            tagged[2],
        ]
        page = client.get(
            "/api/v1/jobs", params={"run_id": "night", "limit": 2}
        ).json()
        rest = client.get(
            "/api/v1/jobs",
            params={"run_id": "night", "cursor": page["next_cursor"]},
        ).json()
        assert [j["id"] for j in rest["jobs"]] == [tagged[1], tagged[0]]
        # A new run id moves the job; UWS RUNID too; deletion removes it.
        client.patch(f"/api/v1/jobs/{tagged[0]}", json={"run_id": "day"})
        client.post(f"/echo/jobs/{tagged[1]}", data={"RUNID": "day"})
        assert listed(run_id="day") == [tagged[1], tagged[0]]
        client.delete(f"/api/v1/jobs/{tagged[2]}")
        assert listed(run_id="night") == [started]
        assert _run_index(own, "night") == [started]
        assert listed(run_id="nothing") == []


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/jobs", "GET, OPTIONS, POST"),
        ("/api/v1/jobs/x", "DELETE, GET, OPTIONS, PATCH"),
        ("/api/v1/jobs/x/start", "OPTIONS, POST"),
        ("/api/v1/jobs/x/results/r", "GET, HEAD, OPTIONS"),
        ("/echo/jobs", "GET, OPTIONS, POST"),
        ("/echo/jobs/x", "DELETE, GET, OPTIONS, POST"),
        ("/echo/jobs/x/phase", "GET, OPTIONS, POST"),
        ("/echo/jobs/x/owner", "GET, OPTIONS"),
    ],
)
def test_options_and_405_name_every_method_of_the_path(
    client: httpx.Client, path: str, allowed: str
) -> None:
    answer = client.options(path)
    assert answer.status_code == 204
    assert answer.headers["allow"] == allowed
    answer = client.put(path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.headers["content-type"] == "application/problem+json"


def test_options_of_a_path_nothing_serves_is_404(
    client: httpx.Client,
) -> None:
    assert client.options("/no/such/path/here").status_code == 404


def test_uws_operations_document_the_statuses_they_answer(
    client: httpx.Client,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    uws = {p: ops for p, ops in paths.items() if p.startswith("/{task}/")}
    assert len(uws) >= 10
    for path, operations in uws.items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"400", "401", "403", "404"} <= documented, (path, method)
    # And they really answer them.
    assert client.get("/nope/jobs").status_code == 404
    assert client.get("/echo/jobs", params={"LAST": "x"}).status_code == 400
    job = client.post("/api/v1/jobs", json={"task": "echo"}).json()
    client.post(f"/api/v1/jobs/{job['id']}/abort")
    answer = client.post(f"/echo/jobs/{job['id']}/parameters", data={"a": "1"})
    assert answer.status_code == 403


def test_api_docs_load_nothing_from_another_host(
    client: httpx.Client,
) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), (page, source)
            assert client.get(source).status_code == 200, source
        assert "cdn" not in html.lower()
        assert "fonts.googleapis" not in html


def test_uws_operations_do_not_document_a_422(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if path.startswith("/{task}/"):
            for operation in operations.values():
                assert "422" not in operation["responses"], path


def test_every_operation_has_a_summary_and_a_description(
    client: httpx.Client,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    count = 0
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("description"), (method, path)
            count += 1
    assert count >= 30


def test_uws_lists_the_parameters_it_ignored(
    client: httpx.Client, schema: etree.XMLSchema
) -> None:
    created = client.post(
        "/sleep/jobs", data={"SECONDS": "1", "secs": "2", "Colour": "red"}
    )
    assert created.status_code == 303
    url = created.headers["location"]
    root = valid_uws(schema, client.get(url).content)
    ignored = [
        element.text
        for element in root.iter(
            "{urn:x-phaser:uws-extension:v1}ignoredParameter"
        )
    ]
    assert ignored == ["secs", "colour"]
    job_id = url.rsplit("/", 1)[1]
    client.post(f"{url}/parameters", data={"other": "x"})
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["parameters"] == {"seconds": 1.0}
    assert job["ignored_parameters"] == ["secs", "colour", "other"]
    # The JSON API refuses them instead.
    refused = client.post(
        "/api/v1/jobs", json={"task": "sleep", "parameters": {"secs": 2}}
    )
    assert refused.status_code == 422


def test_openapi_has_examples_that_the_server_accepts(
    client: httpx.Client,
) -> None:
    document = client.get("/openapi.json").json()
    create = document["paths"]["/api/v1/jobs"]["post"]
    examples = create["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 2
    for example in examples.values():
        answer = client.post("/api/v1/jobs", json=example["value"])
        assert answer.status_code == 201, answer.text
        client.delete(answer.json()["href"])
    job = document["components"]["schemas"]["JobModel"]["examples"][0]
    assert job["phase"] == "COMPLETED"


def test_stats_count_by_task_and_phase_without_reading_jobs(
    own: Stack,
) -> None:
    with httpx.Client(base_url=own.url, timeout=30) as client:
        empty = client.get("/api/v1/stats").json()
        assert empty["counts"] == {}
        assert empty["oldest_queued_age"] is None
        pending = [create_job(client, "echo", {})["id"] for _ in range(3)]
        done = create_job(client, "echo", {}, start=True)
        wait_for(client, done["id"], TERMINAL)
        client.post(f"/api/v1/jobs/{pending[0]}/abort")
        stats = client.get("/api/v1/stats").json()
        assert stats["counts"] == {
            "echo": {"PENDING": 2, "COMPLETED": 1, "ABORTED": 1}
        }
        assert stats["totals"] == {"PENDING": 2, "COMPLETED": 1, "ABORTED": 1}
        assert stats["started"]["last_1m"] == 1
        assert stats["finished"]["last_1m"] == 2  # completed and aborted
        assert stats["finished"]["last_60m"] == 2
        assert stats["worker_silence"] is not None
        assert list(stats["queues"]) == [own.env["PHASER_QUEUE_NAME"]]
        # Per minute over the hour, oldest first: the same jobs.
        for kind in ("started", "finished"):
            series = stats[f"{kind}_per_minute"]
            assert len(series) == 60
            assert sum(series) == stats[kind]["last_60m"]
            assert sum(series[-2:]) == stats[kind]["last_60m"]  # just now
        # The worker, seen just now, running nothing.
        [worker] = stats["workers"]
        assert worker["id"].endswith(f"-{own.workers[0].pid}")
        assert worker["running"] == []
        assert worker["silence"] == stats["worker_silence"]
        # ... and then running a job.
        running = create_job(client, "sleep", {"seconds": 30}, start=True)
        wait_for(client, running["id"], {"EXECUTING"})
        [worker] = client.get("/api/v1/stats").json()["workers"]
        assert worker["running"] == [running["id"]]
        client.post(f"/api/v1/jobs/{running['id']}/abort")
        wait_for(client, running["id"], TERMINAL)
        # A queued job no worker takes has an age.
        own.workers[0].send_signal(signal.SIGSTOP)
        try:
            queued = create_job(client, "echo", {}, start=True)
            stats = client.get("/api/v1/stats").json()
            assert stats["counts"]["echo"]["QUEUED"] == 1
            assert 0 <= stats["oldest_queued_age"] < 30
        finally:
            own.workers[0].send_signal(signal.SIGCONT)
        wait_for(client, queued["id"], TERMINAL)
