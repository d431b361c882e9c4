"""Listing, changing and describing jobs through the JSON API."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import TERMINAL, Stack, create_job, make_stack, wait_for
from phaser.embedded import EmbeddedRedis
from phaser.handlers.fast_wait import _Wait, _wait_asked
from phaser.models.api import JobListModel, JobModel
from phaser.models.job import (
    MAX_MESSAGES,
    AttemptRun,
    ErrorType,
    Job,
    JobError,
    JobMessage,
    JobResult,
    JobUpload,
    MessageLog,
    Notify,
    PhaseChange,
    Progress,
)
from phaser.models.job_json import dumps, job_document, job_json, page_json
from phaser.models.phase import ExecutionPhase
from phaser.tasks.registry import Task


@pytest.fixture
def own_stack(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own, so listings see only this test's jobs."""
    stack = make_stack(
        redis_server,
        tmp_path / "data",
        max_execution_duration=100,
        default_execution_duration=50,
        max_lifetime="P2D",
        default_lifetime="P1D",
    )
    yield stack
    stack.stop()


@pytest.fixture
def own_client(own_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_stack.url, timeout=30) as client:
        yield client


def test_list_pages_newest_first_without_gaps(
    own_client: httpx.Client,
) -> None:
    ids = [create_job(own_client, "echo", {"n": n})["id"] for n in range(25)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = own_client.get("/api/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


def test_list_filters_combine(own_client: httpx.Client) -> None:
    first = create_job(own_client, "echo", {}, run_id="a")
    middle = create_job(own_client, "sleep", {"seconds": 0}, run_id="b")
    last = create_job(own_client, "echo", {}, run_id="b", start=True)
    wait_for(own_client, last["id"], TERMINAL)

    def listed(**params: str | list[str]) -> list[str]:
        page = own_client.get("/api/v1/jobs", params=params).json()
        return [job["id"] for job in page["jobs"]]

    assert listed(task="echo") == [last["id"], first["id"]]
    assert listed(phase="PENDING") == [middle["id"], first["id"]]
    assert listed(phase=["PENDING", "COMPLETED"]) == [
        last["id"],
        middle["id"],
        first["id"],
    ]
    assert listed(task="echo", phase="PENDING") == [first["id"]]
    assert listed(run_id="b") == [last["id"], middle["id"]]
    assert listed(run_id="b", task="sleep") == [middle["id"]]
    assert listed(after=first["created_at"]) == [last["id"], middle["id"]]
    assert listed(after=last["created_at"]) == []
    assert listed(task="nothing-here") == []


def test_patch_changes_and_clamps(own_client: httpx.Client) -> None:
    job = create_job(own_client, "sleep", {"seconds": 1})
    assert job["execution_duration"] == 50
    created = datetime.fromisoformat(job["created_at"])
    destruction = datetime.fromisoformat(job["destruction_time"])
    assert timedelta(hours=23) < destruction - created <= timedelta(days=1)

    far = (datetime.now(tz=UTC) + timedelta(days=365)).isoformat()
    changed = own_client.patch(
        f"/api/v1/jobs/{job['id']}",
        json={
            "parameters": {"seconds": 2},
            "execution_duration": 1000,
            "destruction_time": far,
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["parameters"] == {"seconds": 2.0}
    assert body["execution_duration"] == 100  # clamped to the maximum
    destruction = datetime.fromisoformat(body["destruction_time"])
    assert destruction - datetime.now(tz=UTC) <= timedelta(days=2)

    unlimited = own_client.patch(
        f"/api/v1/jobs/{job['id']}", json={"execution_duration": 0}
    ).json()
    assert unlimited["execution_duration"] == 100

    bad = own_client.patch(
        f"/api/v1/jobs/{job['id']}", json={"parameters": {"seconds": -1}}
    )
    assert bad.status_code == 422
    assert own_client.get(f"/api/v1/jobs/{job['id']}").json() == unlimited


def test_destruction_time_can_change_after_the_end(
    own_client: httpx.Client,
) -> None:
    job = create_job(own_client, "echo", {}, start=True)
    wait_for(own_client, job["id"], TERMINAL)
    soon = (datetime.now(tz=UTC) + timedelta(hours=1)).replace(microsecond=0)
    answer = own_client.patch(
        f"/api/v1/jobs/{job['id']}",
        json={"destruction_time": soon.isoformat()},
    )
    assert answer.status_code == 200
    assert datetime.fromisoformat(answer.json()["destruction_time"]) == soon


def test_tasks_list_their_parameter_schemas(client: httpx.Client) -> None:
    tasks = {t["name"]: t for t in client.get("/api/v1/tasks").json()}
    assert {"sleep", "echo", "fail", "count", "burn"} <= set(tasks)
    sleep = tasks["sleep"]["parameters_schema"]
    assert sleep["properties"]["seconds"]["type"] == "number"
    assert tasks["echo"]["parameters_schema"]["additionalProperties"] is True
    assert tasks["burn"]["runs_in_child_process"] is True
    assert tasks["sleep"]["runs_in_child_process"] is False


def test_openapi_documents_the_api(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/api/v1/jobs" in paths
    assert "/api/v1/jobs/{job_id}/events" in paths
    assert paths["/api/v1/jobs"]["post"]["summary"] == "Create a job"


def test_links_follow_forwarded_headers(client: httpx.Client) -> None:
    answer = client.post(
        "/api/v1/jobs",
        json={"task": "echo"},
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "jobs.example.org",
            "X-Forwarded-Prefix": "/phaser",
        },
    )
    job = answer.json()
    expected = f"https://jobs.example.org/phaser/api/v1/jobs/{job['id']}"
    assert job["href"] == expected
    assert answer.headers["location"] == expected


def test_task_limits_clamp_execution_duration(client: httpx.Client) -> None:
    # The "mark" test task allows at most 40 s; the stack allows 120 s.
    params = {"directory": "/nonexistent"}
    assert create_job(client, "mark", params)["execution_duration"] == 40
    job = create_job(client, "mark", params, execution_duration=100)
    assert job["execution_duration"] == 40
    job = create_job(client, "mark", params, execution_duration=5)
    assert job["execution_duration"] == 5
    job = create_job(client, "echo", {}, execution_duration=100)
    assert job["execution_duration"] == 100


def test_jobs_carry_their_phase_history(own_client: httpx.Client) -> None:
    pending = create_job(own_client, "echo", {})
    assert [c["phase"] for c in pending["history"]] == ["PENDING"]
    assert pending["history"][0]["at"] == pending["created_at"]
    started = own_client.post(f"/api/v1/jobs/{pending['id']}/start").json()
    assert [c["phase"] for c in started["history"]] == ["PENDING", "QUEUED"]
    done = wait_for(own_client, pending["id"], TERMINAL)
    assert [c["phase"] for c in done["history"]] == [
        "PENDING",
        "QUEUED",
        "EXECUTING",
        "COMPLETED",
    ]
    times = [datetime.fromisoformat(c["at"]) for c in done["history"]]
    assert times == sorted(times)
    # The list shows the same.
    [listed] = own_client.get("/api/v1/jobs", params={"limit": 1}).json()[
        "jobs"
    ]
    assert listed["history"] == done["history"]


def test_quote_is_the_start_plus_the_tasks_expected_duration(
    own_client: httpx.Client,
) -> None:
    job = create_job(own_client, "sleep", {"seconds": 1.5}, start=True)
    assert job["quote"] is None  # not started yet
    done = wait_for(own_client, job["id"], TERMINAL)
    started = datetime.fromisoformat(done["started_at"])
    assert datetime.fromisoformat(done["quote"]) == started + timedelta(
        seconds=1.5
    )
    uws = own_client.get(f"/sleep/jobs/{job['id']}/quote")
    assert datetime.fromisoformat(uws.text.replace("Z", "+00:00")) == (
        datetime.fromisoformat(done["quote"])
    )
    # A task that gives no estimate has no quote.
    echo = create_job(own_client, "echo", {}, start=True)
    assert wait_for(own_client, echo["id"], TERMINAL)["quote"] is None
    assert own_client.get(f"/echo/jobs/{echo['id']}/quote").text == ""


def test_an_estimate_that_fails_gives_no_quote() -> None:
    def broken(params: object) -> float:
        raise ValueError("no idea")

    for estimate in (broken, float("nan"), -1.0, lambda p: float("inf")):
        task = Task(
            name="t",
            function=lambda params, ctx: None,
            parameters=None,
            description="",
            expected_duration=estimate,
        )
        assert task.expected_seconds({}) is None
    assert (
        Task(
            name="t",
            function=lambda params, ctx: None,
            parameters=None,
            description="",
            expected_duration=2,
        ).expected_seconds({})
        == 2.0
    )


def test_a_job_with_every_field_renders_as_its_schema_says() -> None:
    # The JSON API renders jobs without building `JobModel` (the schema):
    # a job with every field set renders to a document that validates as
    # the model and serializes back to the same JSON, without pydantic's
    # type warnings.
    at = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)
    failed = ExecutionPhase.ERROR
    info = MessageLog()
    for number in range(MAX_MESSAGES + 2):
        info = info.add(JobMessage(at, f"line {number}"))
    job = Job(
        id="01m8pa1ewfd8t5zxc4b8y40eke",
        task="echo",
        owner="ann",
        phase=failed,
        parameters={"a": [1, 2.5, "x"], "b": {"c": None}},
        created_at=at,
        execution_duration=600,
        destruction_time=at + timedelta(days=7),
        run_id="nightly-42",
        started_at=at + timedelta(seconds=1),
        ended_at=at + timedelta(seconds=2),
        quote=at + timedelta(seconds=3),
        results=[JobResult("r1", 10, "text/plain", "1-r1")],
        errors=[JobError(ErrorType.FATAL, "boom", "TASK_FAILED", "trace")],
        progress=Progress(50.0, "half"),
        attempts=2,
        ignored=["EXTRA"],
        uploads=[
            JobUpload("table", 5, "text/csv", key="u-table"),
            JobUpload("link", -1, "", url="https://example.org/t.vot"),
        ],
        run_after=at,
        priority=7,
        concurrency_key="k",
        after=["01m8pa1ewfd8t5zxc4b8y40ekf"],
        after_policy="any_end",
        parent_id="01m8pa1ewfd8t5zxc4b8y40ekg",
        notify=Notify("https://example.org/hook", ("final", "phase")),
        history=[
            PhaseChange(ExecutionPhase.QUEUED, at),
            PhaseChange(failed, at),
        ],
        description="field 7",
        info=info,
        warnings=MessageLog().add(JobMessage(at, "careful")),
        retain_after_end=300,
        has_children=True,
        children={ExecutionPhase.QUEUED: 2, ExecutionPhase.ARCHIVED: 1},
        no_abort="migrating",
        runs=[AttemptRun(1, "e1", "host-12", at)],
    )
    base = "http://127.0.0.1:1"
    document = job_document(job, base, secret="s3cret", admin=True)
    assert document["info"][0]["message"] == "[2 earlier messages dropped]"
    assert len(document["info"]) == MAX_MESSAGES + 1
    assert document["children"] == {
        "total": 3,
        "pending": 2,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "aborted": 0,
    }
    checked = JobModel.model_validate(document)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = checked.model_dump_json()
    assert checked.model_dump(mode="json") == document
    assert json.loads(text) == json.loads(job_json(job, base, admin=True)) | {
        "notify": document["notify"]
    }
    assert json.loads(job_json(job, base))["attempt_runs"] is None
    assert json.loads(job_json(job, base))["notify"]["secret"] is None
    assert text.encode() == dumps(document)
    # Every field of the schema is rendered, in the schema's order.
    assert list(document) == list(JobModel.model_fields)
    page = json.loads(page_json([job, job], "next", base, total=2))
    assert JobListModel.model_validate(page).model_dump(mode="json") == page


def test_the_long_polls_answered_ahead_of_routing() -> None:
    # Which requests `WaitFastPath` answers itself; the rest go through
    # FastAPI (test_access checks that both answer alike).
    job = "/api/v1/jobs/01m8pa1ewfd8t5zxc4b8y40eke"

    def asked(path: str, query: str, method: str = "GET") -> _Wait | None:
        return _wait_asked(
            {"method": method, "path": path, "query_string": query.encode()}
        )

    taken = asked(job, "wait=2.5&phase=QUEUED&until=final")
    assert taken is not None
    assert (taken.seconds, taken.phase, taken.final) == (
        2.5,
        ExecutionPhase.QUEUED,
        True,
    )
    assert asked(job, "wait=86400") is not None
    for query in (
        "",
        "wait=0",
        "wait=86401",
        "wait=1e3",
        "wait=inf",
        "wait=1&wait=2",
        "wait=1&phase=NOPE",
        "wait=1&until=never",
        "wait=1&via=routing",
    ):
        assert asked(job, query) is None, query
    assert asked(job, "wait=1", method="POST") is None
    assert asked(job + "/events", "wait=1") is None
    assert asked("/api/v1/jobs/NOT-AN-ID", "wait=1") is None
