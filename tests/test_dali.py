"""DALI: synchronous requests (``/{task}/sync``, ``?sync=true``), driven by
pyvo and plain HTTP against real servers."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from lxml import etree
from vo_models.vosi.capabilities.models import VOSICapabilities

from conftest import Stack, make_stack, wait_for_file, wait_until
from phaser.embedded import EmbeddedRedis
from vosi_schema import load_vosi_schemas

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
PHASER = "{urn:x-phaser:uws-extension:v1}"
VOTABLE = "application/x-votable+xml"


@pytest.fixture
def http(client: httpx.Client) -> httpx.Client:
    """The shared stack's client (conftest's ``client``)."""
    return client


@pytest.fixture(scope="module")
def hasty(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A frontend and worker whose sync requests wait 2 s at most."""
    running = make_stack(
        redis_server, tmp_path_factory.mktemp("hasty"), sync_timeout=2
    )
    yield running
    running.stop()


@functools.cache
def _votable_schema() -> etree.XMLSchema:
    """VOTable 1.4, as astropy ships it."""
    pytest.importorskip("astropy", reason="astro extra not installed")
    import astropy.io.votable

    data = Path(astropy.io.votable.__file__).parent / "data"
    return etree.XMLSchema(etree.parse(str(data / "VOTable.v1.4.xsd")))


def _error_message(answer: httpx.Response) -> str:
    """The message of a DALI error document (a valid VOTable)."""
    assert answer.headers["content-type"].startswith(VOTABLE), answer.text
    document = etree.fromstring(answer.content)
    schema = _votable_schema()
    assert schema.validate(document), schema.error_log
    [info] = document.iter("{*}INFO")
    assert (info.get("name"), info.get("value")) == ("QUERY_STATUS", "ERROR")
    return str(info.text)


def _newest(http: httpx.Client, task: str) -> dict[str, object]:
    [job] = http.get("/api/v1/jobs", params={"task": task, "limit": 1}).json()[
        "jobs"
    ]
    return dict(job)


def test_pyvo_sync_request_answers_the_cone_votable(stack: Stack) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    from pyvo.dal import TAPService
    from pyvo.dal.query import DALQuery

    # pyvo's TAP client POSTs to {base}/sync and parses the VOTable.
    results = TAPService(f"{stack.url}/cone").run_sync(
        "SELECT * FROM cone", maxrec=6, ra=10, dec=20, radius=0.5
    )
    assert len(results) == 6
    assert "dist" in results.fieldnames
    # A plain DAL query: GET with the parameters in the query string.
    table = DALQuery(
        f"{stack.url}/cone/sync", ra=10, dec=20, radius=0.5, maxrec=4
    ).execute_votable()
    assert len(table.get_first_table().to_table()) == 4


def test_sync_answer_is_the_first_result_and_the_job_is_ordinary(
    http: httpx.Client,
) -> None:
    answer = http.get("/echo/sync", params={"greeting": "hi", "n": "2"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"greeting": "hi", "n": "2"}
    posted = http.post("/echo/sync", data={"greeting": "posted"})
    assert posted.json() == {"greeting": "posted"}
    # The job stays, marked sync, with the same bytes as its result.
    job = _newest(http, "echo")
    assert job["sync"] is True
    assert job["phase"] == "COMPLETED"
    assert job["parameters"] == {"greeting": "posted"}
    href = f"/echo/jobs/{job['id']}"
    assert http.get(f"{href}/results/result").content == posted.content
    info = etree.fromstring(http.get(href).content).find(f"{UWS}jobInfo")
    assert info is not None
    assert info.findtext(f"{PHASER}sync") == "true"
    # The dashboard says so too, on the job's page and in the list.
    page = http.get(f"/ui/jobs/{job['id']}").text
    assert "synchronous (its client waited for the end)" in page
    assert (
        'title="Created by a synchronous request">sync<'
        in http.get("/ui/jobs", params={"task": "echo"}).text
    )
    # An asynchronous job is not marked.
    created = http.post("/echo/jobs", data={"x": "1"})
    assert created.status_code == 303
    assert (
        http.get(
            created.headers["location"].replace("/echo/jobs/", "/api/v1/jobs/")
        ).json()["sync"]
        is False
    )
    # A job without results answers 204.
    assert http.post("/noop/sync").status_code == 204


def test_sync_errors_are_dali_error_documents(
    http: httpx.Client, stack: Stack
) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    from pyvo.dal import DALQueryError
    from pyvo.dal.query import DALQuery

    # The task refused (TaskError): 400, its message.
    answer = http.post("/fail/sync", data={"message": "no such object"})
    assert answer.status_code == 400
    assert "no such object" in _error_message(answer)
    job = _newest(http, "fail")
    assert (job["phase"], job["sync"]) == ("ERROR", True)
    # The task broke: 500.
    answer = http.post("/crash/sync")
    assert answer.status_code == 500
    assert "RuntimeError: the task broke" in _error_message(answer)
    # Invalid parameters never make a job: 400; no such task: 404.
    answer = http.get("/cone/sync", params={"ra": "north", "dec": "1"})
    assert answer.status_code == 400
    assert "ra" in _error_message(answer)
    answer = http.get("/nosuchtask/sync")
    assert answer.status_code == 404
    assert "nosuchtask" in _error_message(answer)
    # pyvo reads the document and raises its query error with the message.
    query = DALQuery(f"{stack.url}/fail/sync", message="pyvo reads this")
    with pytest.raises(DALQueryError, match="pyvo reads this"):
        query.execute()


def test_sync_timeout_aborts_and_names_the_async_endpoint(
    hasty: Stack,
) -> None:
    with httpx.Client(base_url=hasty.url, timeout=30) as http:
        answer = http.post("/sleep/sync", data={"seconds": "30"})
        assert answer.status_code == 504
        message = _error_message(answer)
        assert "sync timeout of 2 s" in message
        assert f"{hasty.url}/sleep/async" in message
        job = _newest(http, "sleep")
        assert (job["phase"], job["sync"]) == ("ABORTED", True)
        # The JSON API: the same, as a problem.
        answer = http.post(
            "/api/v1/jobs",
            params={"sync": "true"},
            json={"task": "sleep", "parameters": {"seconds": 30}},
        )
        assert answer.status_code == 504
        problem = answer.json()
        assert problem["type"] == "urn:phaser:problem:sync-timeout"
        assert "/api/v1/jobs" in problem["detail"]
        assert _newest(http, "sleep")["phase"] == "ABORTED"


def test_closing_the_connection_aborts_the_sync_job(
    http: httpx.Client, stack: Stack, evidence: Path
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{stack.url}/mark/sync",
            data={"directory": str(evidence), "seconds": "30"},
            timeout=httpx.Timeout(30, read=1.5),
        )
    # The client closed its connection; the task was stopped as an abort.
    wait_until(lambda: any(evidence.glob("*.started")))
    [started] = evidence.glob("*.started")
    job_id = started.name.split(".")[0]
    cancelled = evidence / f"{job_id}.cancelled"
    assert wait_for_file(cancelled) == "aborted"
    wait_until(
        lambda: http.get(f"/api/v1/jobs/{job_id}").json()["phase"] == "ABORTED"
    )
    # Aborted when the client left (1.5 s), well before the sync timeout
    # (4 s) would have.
    job = http.get(f"/api/v1/jobs/{job_id}").json()
    lived = datetime.fromisoformat(job["ended_at"]) - datetime.fromisoformat(
        job["created_at"]
    )
    assert lived.total_seconds() < 3.5, lived


def test_json_sync_answers_the_finished_job(http: httpx.Client) -> None:
    answer = http.post(
        "/api/v1/jobs",
        params={"sync": "true"},
        json={"task": "echo", "parameters": {"a": 1}},
    )
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert (job["phase"], job["sync"]) == ("COMPLETED", True)
    assert answer.headers["location"] == job["href"]
    assert http.get(job["results"][0]["href"]).json() == {"a": 1}
    failed = http.post(
        "/api/v1/jobs?sync=true",
        json={"task": "fail", "parameters": {"message": "told"}},
    ).json()
    assert failed["phase"] == "ERROR"
    assert failed["errors"][0]["code"] == "task_error"
    # Invalid input is refused before any job exists.
    refused = http.post(
        "/api/v1/jobs?sync=true",
        json={"task": "cone", "parameters": {"ra": "north"}},
    )
    assert refused.status_code == 422


def test_task_capabilities_list_sync_and_async(http: httpx.Client) -> None:
    capabilities = VOSICapabilities.from_xml(
        http.get("/cone/capabilities").content
    )
    urls = [
        str(c.interface[0].access_url[0].value)
        for c in capabilities.capability
        if c.interface
    ]
    assert any(url.endswith("/cone/sync") for url in urls)
    assert any(url.endswith("/cone/async") for url in urls)


def test_vosi_documents_are_valid_against_the_ivoa_schemas(
    http: httpx.Client,
) -> None:
    schemas = load_vosi_schemas()
    documents = ["/capabilities"] + [
        f"/{task}/capabilities" for task in ("echo", "cone", "sleep")
    ]
    for path in documents:
        document = etree.fromstring(http.get(path).content)
        assert schemas.capabilities.validate(document), (
            path,
            schemas.capabilities.error_log,
        )
    for path in ("/availability", "/cone/availability"):
        document = etree.fromstring(http.get(path).content)
        assert schemas.availability.validate(document), (
            path,
            schemas.availability.error_log,
        )
    # The schemas do check: an interface without its access URL is not
    # a capability, and availability needs its one boolean.
    broken = etree.fromstring(
        http.get("/echo/capabilities")
        .content.replace(b"<accessURL", b"<accessUrl")
        .replace(b"</accessURL>", b"</accessUrl>")
    )
    assert not schemas.capabilities.validate(broken)
    assert not schemas.availability.validate(
        etree.fromstring(
            b'<a:availability xmlns:a="http://www.ivoa.net/xml/'
            b'VOSIAvailability/v1.0"><a:note>x</a:note></a:availability>'
        )
    )


def test_only_sync_jobs_carry_the_marker_in_job_info() -> None:
    from phaser.models.job import Job, Progress
    from phaser.models.phase import ExecutionPhase
    from phaser.models.uws import render_job

    job = Job(
        id="01m8mhde5z46j7aq4kw6veb1yt",
        task="sleep",
        owner=None,
        phase=ExecutionPhase.EXECUTING,
        parameters={},
        created_at=datetime.now().astimezone(),
        execution_duration=0,
        destruction_time=None,
        progress=Progress(50, "half"),
    )
    info = etree.fromstring(render_job(job, "http://x/j")).find(
        f"{UWS}jobInfo"
    )
    assert info is not None
    assert info.find(f"{PHASER}sync") is None
    job.sync = True
    info = etree.fromstring(render_job(job, "http://x/j")).find(
        f"{UWS}jobInfo"
    )
    assert info is not None
    assert info.findtext(f"{PHASER}sync") == "true"
