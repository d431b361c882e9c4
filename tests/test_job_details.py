"""What the job APIs phaser learns from expose (issue 20): descriptions,
task messages, retention after the end, children's counts, sections a
task may not be aborted in, totals and counts, field selection and the
operators' view of attempts — through the JSON API, UWS, the Python
client and the command line."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree

from conftest import (
    TERMINAL,
    Stack,
    add_user,
    first_event,
    make_stack,
    run_python,
    valid_uws,
    wait_for,
    wait_for_file,
    wait_until,
)
from phaser.client import APIError, AsyncClient, Client, WaitTimeout
from phaser.embedded import EmbeddedRedis
from phaser.models.api import JobModel

PHASER = "urn:x-phaser:uws-extension:v1"
NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "phaser": PHASER}


@pytest.fixture(scope="module")
def detailed(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, str]]]:
    """A stack with users (``root`` an admin) and quick maintenance."""
    stack = Stack(
        redis_server.url,
        tmp_path_factory.mktemp("detailed"),
        auth="token",
        maintenance_interval=0.2,
    )
    tokens = {
        "ann": add_user(stack, "ann"),
        "bob": add_user(stack, "bob"),
        "root": add_user(stack, "root", admin=True),
        # Whose jobs only the totals test makes.
        "carol": add_user(stack, "carol"),
    }
    stack.start_worker()
    stack.start_frontend()
    yield stack, tokens
    stack.stop()


def _http(stack: Stack, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def ann(detailed: tuple[Stack, dict[str, str]]) -> Iterator[httpx.Client]:
    stack, tokens = detailed
    with _http(stack, tokens["ann"]) as http:
        yield http


def _create(
    http: httpx.Client, task: str, **body: object
) -> dict[str, object]:
    answer = http.post("/api/v1/jobs", json={"task": task, **body})
    assert answer.status_code == 201, answer.text
    job: dict[str, object] = answer.json()
    return job


def _uws_job(
    http: httpx.Client, schema: etree.XMLSchema, task: str, job_id: object
) -> etree._Element:
    answer = http.get(f"/{task}/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    return valid_uws(schema, answer.content)


def test_messages_and_description_in_every_representation(
    detailed: tuple[Stack, dict[str, str]],
    ann: httpx.Client,
    evidence: Path,
    schema: etree.XMLSchema,
) -> None:
    stack, tokens = detailed
    for task in ("chatty", "chatty_process"):
        job = _create(
            ann,
            task,
            parameters={"directory": str(evidence), "info": 60},
            start=True,
            description="Nightly reprocessing of field 7",
        )
        assert job["description"] == "Nightly reprocessing of field 7"
        done = wait_for(ann, str(job["id"]), TERMINAL)
        assert done["phase"] == "COMPLETED", done
        # 60 lines: the newest 50 kept, the first entry says what went.
        info = done["info"]
        assert [m["message"] for m in info] == [
            "[10 earlier messages dropped]",
            *(f"line {n}" for n in range(10, 60)),
        ]
        assert info[0]["at"] == info[1]["at"]
        # The text is made safe as progress messages are (no NUL).
        assert [m["message"] for m in done["warnings"]] == [
            "careful\ufffd now"
        ]
        assert JobModel.model_validate(done).model_dump(mode="json") == done
        # UWS: schema-valid, the same lines in jobInfo.
        document = _uws_job(ann, schema, task, job["id"])
        lines = document.findall("uws:jobInfo/phaser:info", NS)
        assert [e.text for e in lines] == [m["message"] for m in info]
        assert all(e.get("at") for e in lines)
        assert document.find("uws:jobInfo/phaser:warning", NS) is not None
        assert (
            document.findtext("uws:jobInfo/phaser:description", None, NS)
            == "Nightly reprocessing of field 7"
        )
        # The event stream, the list and the client carry them too.
        streamed = first_event(ann, str(job["id"]))
        assert streamed["info"] == info
        assert streamed["description"] == done["description"]
        [listed] = [
            j
            for j in ann.get("/api/v1/jobs", params={"task": task}).json()[
                "jobs"
            ]
            if j["id"] == job["id"]
        ]
        assert listed["description"] == done["description"]
        assert listed["info"] == info
        with Client(stack.url, token=tokens["ann"]) as client:
            read = client.get(str(job["id"]))
            assert read.description == "Nightly reprocessing of field 7"
            assert [m.message for m in read.info] == [
                m["message"] for m in info
            ]

    # UWS creates with a description too (JOBDESCRIPTION).
    made = ann.post(
        "/chatty/jobs",
        data={"directory": str(evidence), "JOBDESCRIPTION": "from pyvo"},
    )
    assert made.status_code == 303
    job_id = made.headers["location"].rsplit("/", 1)[1]
    assert ann.get(f"/api/v1/jobs/{job_id}").json()["description"] == (
        "from pyvo"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"description": "x" * 1001},
        {"description": "bad\x00text"},
        {"description": 7},
        {"retain_after_end": -1},
        {"retain_after_end": 10**10},
        {"retain_after_end": "soon"},
    ],
)
def test_a_bad_description_or_retention_is_refused_and_stores_nothing(
    ann: httpx.Client, evidence: Path, body: dict[str, object]
) -> None:
    before = ann.get("/api/v1/jobs/count").json()["count"]
    answer = ann.post(
        "/api/v1/jobs",
        json={
            "task": "chatty",
            "parameters": {"directory": str(evidence)},
            **body,
        },
    )
    assert answer.status_code in {400, 422}, answer.text
    assert answer.headers["content-type"].startswith("application/problem")
    assert ann.get("/api/v1/jobs/count").json()["count"] == before


def test_bad_uws_description_or_retention_is_a_400(
    ann: httpx.Client, evidence: Path
) -> None:
    before = ann.get("/api/v1/jobs/count").json()["count"]
    for form in (
        {"JOBDESCRIPTION": "x" * 1001},
        {"RETAINAFTEREND": "-5"},
        {"RETAINAFTEREND": "later"},
    ):
        answer = ann.post(
            "/chatty/jobs", data={"directory": str(evidence), **form}
        )
        assert answer.status_code == 400, answer.text
    assert ann.get("/api/v1/jobs/count").json()["count"] == before


def test_retain_after_end_moves_the_destruction_forward(
    ann: httpx.Client, evidence: Path, schema: etree.XMLSchema
) -> None:
    # The task keeps its jobs an hour after they end by default: sooner
    # than the server's default lifetime.
    job = _create(
        ann, "chatty", parameters={"directory": str(evidence)}, start=True
    )
    assert job["retain_after_end"] == 3600
    done = wait_for(ann, str(job["id"]), TERMINAL)
    ended = datetime.fromisoformat(done["ended_at"])
    destroyed = datetime.fromisoformat(done["destruction_time"])
    assert (
        timedelta(seconds=3599) <= destroyed - ended <= timedelta(seconds=3601)
    )
    # UWS, the event stream and the list say the same.
    document = _uws_job(ann, schema, "chatty", job["id"])
    assert (
        document.findtext("uws:jobInfo/phaser:retainAfterEnd", None, NS)
        == "3600"
    )
    assert document.findtext("uws:destruction", None, NS) is not None
    assert first_event(ann, str(job["id"]))["retain_after_end"] == 3600
    listed = ann.get("/api/v1/jobs", params={"task": "chatty"}).json()
    [row] = [j for j in listed["jobs"] if j["id"] == job["id"]]
    assert row["retain_after_end"] == 3600
    assert row["destruction_time"] == done["destruction_time"]
    # A client's retention wins over the task's; the job goes that long
    # after its end, through the same destruction as any other.
    short = _create(
        ann,
        "chatty",
        parameters={"directory": str(evidence)},
        start=True,
        retain_after_end=1,
    )
    done = wait_for(ann, str(short["id"]), TERMINAL)
    assert datetime.fromisoformat(
        done["destruction_time"]
    ) <= datetime.fromisoformat(done["ended_at"]) + timedelta(seconds=1.01)
    wait_until(
        lambda: ann.get(f"/api/v1/jobs/{short['id']}").status_code == 404,
        timeout=10,
    )
    # A retention later than the destruction time changes nothing.
    late = _create(
        ann,
        "chatty",
        parameters={"directory": str(evidence)},
        retain_after_end=10**6,
    )
    kept = late["destruction_time"]
    ann.post(f"/api/v1/jobs/{late['id']}/start").raise_for_status()
    assert wait_for(ann, str(late["id"]), TERMINAL)["destruction_time"] == kept


def test_the_client_and_the_command_line_give_descriptions_and_retention(
    detailed: tuple[Stack, dict[str, str]], evidence: Path
) -> None:
    stack, tokens = detailed
    with Client(stack.url, token=tokens["ann"]) as client:
        job = client.submit(
            "chatty",
            {"directory": str(evidence)},
            description="made by the client",
            retain_after_end=120,
        )
        ended = client.wait(job.id, timeout=30)
        assert ended.description == "made by the client"
        assert ended.retain_after_end == 120
        assert ended.ended_at is not None
        assert ended.destruction_time is not None
        kept = ended.destruction_time - ended.ended_at
        assert timedelta(seconds=119) <= kept <= timedelta(seconds=121)
    env = {
        **os.environ,
        "PHASER_URL": stack.url,
        "PHASER_TOKEN": tokens["ann"],
    }
    made = run_python(
        env,
        "-m",
        "phaser",
        "jobs",
        "submit",
        "chatty",
        f"directory={evidence}",
        "--description",
        "made on the command line",
        "--retain-after-end",
        "60",
        "--wait",
    )
    assert made.returncode == 0, made.stderr
    # The table shows the description and the task's messages.
    assert "made on the command line" in made.stdout
    assert "line 2" in made.stdout
    assert "careful" in made.stdout


def test_retention_in_archive_mode_archives(
    redis_server: EmbeddedRedis, tmp_path: Path, evidence: Path
) -> None:
    stack = make_stack(
        redis_server,
        tmp_path / "data",
        destruction_mode="archive",
        maintenance_interval=0.2,
    )
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            made = http.post(
                "/chatty/jobs",
                data={
                    "directory": str(evidence),
                    "RETAINAFTEREND": "1",
                    "PHASE": "RUN",
                },
            )
            assert made.status_code == 303
            job_id = made.headers["location"].rsplit("/", 1)[1]
            archived = wait_for(http, job_id, {"ARCHIVED"}, timeout=15)
            assert archived["retain_after_end"] == 1
            assert archived["info"]  # metadata kept, results gone
            assert archived["results"] == []
    finally:
        stack.stop()


def test_children_are_counted_by_phase_and_can_be_waited_for(
    detailed: tuple[Stack, dict[str, str]],
    ann: httpx.Client,
    evidence: Path,
    schema: etree.XMLSchema,
) -> None:
    stack, tokens = detailed
    parent = _create(ann, "chatty", parameters={"directory": str(evidence)})
    assert parent["children"] is None
    pid = str(parent["id"])

    def child(delay: float = 0, **body: object) -> str:
        made = _create(
            ann,
            "count",
            parameters={"directory": str(evidence), "delay": delay},
            parent_id=pid,
            **body,
        )
        return str(made["id"])

    waiting = child()  # PENDING
    slow = child(30, start=True)
    done = [child(start=True) for _ in range(3)]
    for job_id in done:
        wait_for(ann, job_id, TERMINAL)
    wait_for(ann, slow, {"EXECUTING"})
    counts = ann.get(f"/api/v1/jobs/{pid}").json()["children"]
    assert counts == {
        "total": 5,
        "pending": 1,
        "running": 1,
        "succeeded": 3,
        "failed": 0,
        "aborted": 0,
    }
    # UWS says the same, schema-valid.
    element = _uws_job(ann, schema, "chatty", pid).find(
        "uws:jobInfo/phaser:children", NS
    )
    assert element is not None
    assert {k: int(v) for k, v in element.attrib.items()} == counts
    # Totals of the parent's children come from its counts.
    listed = ann.get("/api/v1/jobs", params={"parent_id": pid}).json()
    assert listed["total"] == 5 == len(listed["jobs"])
    assert (
        ann.get(
            "/api/v1/jobs/count",
            params={"parent_id": pid, "phase": ["COMPLETED", "PENDING"]},
        ).json()["count"]
        == 4
    )
    # Another owner's parent shows them nothing.
    with _http(stack, tokens["bob"]) as bob:
        count = bob.get("/api/v1/jobs/count", params={"parent_id": pid})
        assert count.json()["count"] == 0

    # A long poll on the parent answers once its children have ended; a
    # deleted child is no longer counted.
    assert ann.delete(f"/api/v1/jobs/{waiting}").status_code == 204
    ann.post(f"/api/v1/jobs/{slow}/abort").raise_for_status()
    polled = ann.get(
        f"/api/v1/jobs/{pid}", params={"wait": 20, "until": "children"}
    ).json()
    assert polled["children"] == {
        "total": 4,
        "pending": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "aborted": 1,
    }
    # The command line waits for them, with an exit code saying how they
    # ended (2: one was aborted); so does the client.
    env = {
        **os.environ,
        "PHASER_URL": stack.url,
        "PHASER_TOKEN": tokens["ann"],
    }
    waited = run_python(
        env, "-m", "phaser", "jobs", "wait", pid, "--children", "--json"
    )
    assert waited.returncode == 2, waited.stderr
    assert json.loads(waited.stdout)["children"]["aborted"] == 1
    with Client(stack.url, token=tokens["ann"]) as client:
        waited_for = client.wait(pid, children=True, timeout=10).children
        assert waited_for is not None
        assert waited_for.model_dump() == polled["children"]
        kids = list(client.jobs(parent_id=pid))
        assert len(kids) == 4
        assert client.count(parent_id=pid) == 4


def test_children_wait_answers_when_the_last_one_ends(
    detailed: tuple[Stack, dict[str, str]], ann: httpx.Client, evidence: Path
) -> None:
    stack, tokens = detailed
    parent = str(
        _create(ann, "chatty", parameters={"directory": str(evidence)})["id"]
    )
    kid = _create(
        ann,
        "mark",
        parameters={"directory": str(evidence), "seconds": 30},
        parent_id=parent,
        start=True,
    )
    wait_for_file(evidence / f"{kid['id']}.started")
    with Client(stack.url, token=tokens["ann"]) as client:
        # Not yet: the child runs.
        with pytest.raises(WaitTimeout):
            client.wait(parent, children=True, timeout=0.5)
        ann.post(f"/api/v1/jobs/{kid['id']}/abort").raise_for_status()
        ended = client.wait(parent, children=True, timeout=10)
        assert ended.children is not None
        assert ended.children.aborted == 1
        assert ended.children.running == 0


@pytest.mark.parametrize("task", ["chatty", "chatty_process"])
def test_a_task_may_refuse_aborts_while_it_says_so(
    task: str,
    detailed: tuple[Stack, dict[str, str]],
    ann: httpx.Client,
    evidence: Path,
    schema: etree.XMLSchema,
) -> None:
    stack, tokens = detailed
    job = _create(
        ann,
        task,
        parameters={"directory": str(evidence), "locked": True},
        start=True,
    )
    job_id = str(job["id"])
    wait_for_file(evidence / f"{job_id}.locked")
    wait_until(
        lambda: (
            ann.get(f"/api/v1/jobs/{job_id}").json()["no_abort_reason"]
            == "migrating step"
        )
    )
    # JSON: 409 with the reason; UWS: 403; DELETE: 409, nothing gone.
    refused = ann.post(f"/api/v1/jobs/{job_id}/abort")
    assert refused.status_code == 409
    assert "migrating step" in refused.json()["detail"]
    uws = ann.post(f"/{task}/jobs/{job_id}/phase", data={"PHASE": "ABORT"})
    assert uws.status_code == 403
    assert "migrating step" in uws.text
    deleted = ann.delete(f"/api/v1/jobs/{job_id}")
    assert deleted.status_code == 409
    assert ann.delete(f"/{task}/jobs/{job_id}").status_code == 403
    posted = ann.post(f"/{task}/jobs/{job_id}", data={"ACTION": "DELETE"})
    assert posted.status_code == 403
    with Client(stack.url, token=tokens["ann"]) as client:
        with pytest.raises(APIError) as raised:
            client.abort(job_id)
        assert raised.value.status == 409
    now = ann.get(f"/api/v1/jobs/{job_id}").json()
    assert now["phase"] == "EXECUTING"
    element = _uws_job(ann, schema, task, job_id).find(
        "uws:jobInfo/phaser:noAbort", NS
    )
    assert element is not None
    assert element.text == "migrating step"
    # Out of the section it may be aborted again.
    (evidence / f"{job_id}.release").write_text("go")
    if task == "chatty":
        wait_for_file(evidence / f"{job_id}.unlocked")
        wait_until(
            lambda: (
                ann.get(f"/api/v1/jobs/{job_id}").json()["no_abort_reason"]
                is None
            )
        )
        aborted = ann.post(f"/api/v1/jobs/{job_id}/abort")
        assert aborted.status_code == 200, aborted.text
        assert aborted.json()["phase"] == "ABORTED"
    else:
        ended = wait_for(ann, job_id, TERMINAL)
        assert ended["phase"] == "COMPLETED"
        assert ended["no_abort_reason"] is None


def test_the_execution_duration_still_stops_a_task_that_refuses_aborts(
    ann: httpx.Client, evidence: Path
) -> None:
    job = _create(
        ann,
        "chatty",
        parameters={"directory": str(evidence), "locked": True},
        start=True,
        execution_duration=1,
    )
    ended = wait_for(ann, str(job["id"]), TERMINAL, timeout=20)
    assert ended["phase"] in {"ABORTED", "ERROR"}
    assert ended["errors"][0]["code"] == "duration_exceeded"
    assert ended["no_abort_reason"] is None


def test_admins_see_each_attempts_queue_entry_and_worker(
    detailed: tuple[Stack, dict[str, str]],
    ann: httpx.Client,
    evidence: Path,
    schema: etree.XMLSchema,
) -> None:
    stack, tokens = detailed
    job = _create(
        ann, "count", parameters={"directory": str(evidence)}, start=True
    )
    job_id = str(job["id"])
    wait_for(ann, job_id, TERMINAL)
    assert ann.get(f"/api/v1/jobs/{job_id}").json()["attempt_runs"] is None
    with _http(stack, tokens["root"]) as root:
        seen = root.get(f"/api/v1/jobs/{job_id}").json()
        [run] = seen["attempt_runs"]
        assert run["attempt"] == 1
        assert run["queue_entry"]
        worker = stack.workers[0].pid
        assert run["worker"].endswith(f"-{worker}")
        document = valid_uws(schema, root.get(f"/count/jobs/{job_id}").content)
        [element] = document.findall("uws:jobInfo/phaser:attempt", NS)
        assert element.get("queueEntry") == run["queue_entry"]
        assert element.get("worker") == run["worker"]
    plain = valid_uws(schema, ann.get(f"/count/jobs/{job_id}").content)
    assert plain.find("uws:jobInfo/phaser:attempt", NS) is None
    # The client reads them as the JSON has them.
    with Client(stack.url, token=tokens["root"]) as client:
        runs = client.get(job_id).attempt_runs
        assert runs is not None
        assert [r.queue_entry for r in runs] == [run["queue_entry"]]
    with Client(stack.url, token=tokens["ann"]) as client:
        assert client.get(job_id).attempt_runs is None


def test_totals_counts_and_top_level_jobs(
    detailed: tuple[Stack, dict[str, str]], evidence: Path
) -> None:
    stack, tokens = detailed
    token = tokens["carol"]
    with _http(stack, token) as carol:
        started = datetime.now(UTC)
        made = [
            _create(carol, "count", parameters={"directory": str(evidence)})
            for _ in range(3)
        ]
        parent = str(made[0]["id"])
        _create(
            carol,
            "chatty",
            parameters={"directory": str(evidence)},
            parent_id=parent,
            start=True,
        )
        wait_until(
            lambda: (
                carol.get(
                    "/api/v1/jobs", params={"phase": "COMPLETED"}
                ).json()["total"]
                == 1
            )
        )

        def total(**params: str) -> object:
            listed = carol.get("/api/v1/jobs", params=params).json()
            count = carol.get("/api/v1/jobs/count", params=params).json()
            assert listed["total"] == count["count"]
            if listed["total"] is not None and listed["next_cursor"] is None:
                assert listed["total"] == len(listed["jobs"])
            return listed["total"]

        assert total() == 4
        assert total(task="count") == 3
        assert total(phase="PENDING") == 3
        assert total(task="chatty", phase="COMPLETED") == 1
        assert total(after=started.isoformat()) == 4
        assert total(after=datetime.now(UTC).isoformat()) == 0
        assert total(task="count", after=started.isoformat()) == 3
        assert total(phase="ARCHIVED") == 0
        # Where it would take reading jobs: null.
        assert total(run_id="x") is None
        assert total(top_level="true") is None
        top = carol.get("/api/v1/jobs", params={"top_level": "true"}).json()
        assert {j["id"] for j in top["jobs"]} == {j["id"] for j in made}
        # A page smaller than the total.
        paged = carol.get("/api/v1/jobs", params={"limit": 2}).json()
        assert len(paged["jobs"]) == 2
        assert paged["total"] == 4
        with Client(stack.url, token=token) as client:
            assert client.count() == 4
            assert client.count(task="count", phase="PENDING") == 3
            assert client.count(run_id="x") is None
            assert len(list(client.jobs(top_level=True))) == 3
        env = {**os.environ, "PHASER_URL": stack.url, "PHASER_TOKEN": token}
        listed = run_python(
            env, "-m", "phaser", "jobs", "list", "--top-level", "--json"
        )
        assert listed.returncode == 0, listed.stderr
        assert {j["id"] for j in json.loads(listed.stdout)} == {
            j["id"] for j in made
        }


def test_fields_select_what_a_job_document_carries(
    detailed: tuple[Stack, dict[str, str]], ann: httpx.Client, evidence: Path
) -> None:
    job = _create(ann, "count", parameters={"directory": str(evidence)})
    one = ann.get(
        f"/api/v1/jobs/{job['id']}", params={"fields": "phase,progress"}
    ).json()
    assert set(one) == {"id", "href", "phase", "progress"}
    page = ann.get(
        "/api/v1/jobs", params={"fields": "id,phase", "limit": 3}
    ).json()
    assert page["jobs"]
    assert all(set(j) == {"id", "href", "phase"} for j in page["jobs"])
    # With a long poll too.
    polled = ann.get(
        f"/api/v1/jobs/{job['id']}",
        params={"fields": "phase", "wait": 0.1},
    ).json()
    assert set(polled) == {"id", "href", "phase"}
    # The clients ask the same.
    stack, tokens = detailed
    with Client(stack.url, token=tokens["ann"]) as client:
        peeked = client.peek(str(job["id"]), "phase", "progress")
        assert peeked == one

    async def peek_async() -> dict[str, object]:
        async with AsyncClient(stack.url, token=tokens["ann"]) as client:
            return await client.peek(str(job["id"]), "phase")

    assert set(asyncio.run(peek_async())) == {"id", "href", "phase"}
    for bad in ("phase,nope", "__class__"):
        answer = ann.get(f"/api/v1/jobs/{job['id']}", params={"fields": bad})
        assert answer.status_code == 422, answer.text
        assert "nope" in answer.text or "__class__" in answer.text
        listed = ann.get("/api/v1/jobs", params={"fields": bad})
        assert listed.status_code == 422


def test_openapi_documents_count_fields_and_totals(ann: httpx.Client) -> None:
    spec = ann.get("/openapi.json").json()
    counted = spec["paths"]["/api/v1/jobs/count"]["get"]
    answer = counted["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/CountModel")
    listing = spec["paths"]["/api/v1/jobs"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"fields", "top_level", "parent_id", "task", "phase"} <= names
    single = spec["paths"]["/api/v1/jobs/{job_id}"]["get"]
    fields = next(p for p in single["parameters"] if p["name"] == "fields")
    assert "progress" in fields["description"]
    # A cut-down answer has a schema of its own (every field optional).
    listed = listing["responses"]["200"]["content"]["application/json"]
    refs = {v["$ref"].rsplit("/", 1)[1] for v in listed["schema"]["anyOf"]}
    assert refs == {"JobListModel", "JobFieldsListModel"}
    cut = spec["components"]["schemas"]["JobFieldsModel"]
    assert cut.get("required", []) == []
    assert set(cut["properties"]) == set(
        spec["components"]["schemas"]["JobModel"]["properties"]
    )
    page = spec["components"]["schemas"]["JobListModel"]["properties"]
    assert "total" in page
    job = spec["components"]["schemas"]["JobModel"]["properties"]
    for name in (
        "description",
        "info",
        "warnings",
        "retain_after_end",
        "children",
        "no_abort_reason",
        "attempt_runs",
    ):
        assert name in job
