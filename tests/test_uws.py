"""The UWS 1.1 dialect: protocol behaviour, schema validity, real clients."""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import BaseModel
from redis.asyncio import Redis
from vo_models.uws import Jobs, ShortJobDescription
from vo_models.uws.types import ExecutionPhase as UwsPhase
from vo_models.vosi.availability.models import Availability
from vo_models.vosi.capabilities.models import VOSICapabilities

from conftest import (
    Stack,
    make_stack,
    require_tool,
    valid_uws,
    wait_for_file,
)
from phaser.clock import to_ms
from phaser.embedded import EmbeddedRedis
from phaser.models.errors import InvalidParametersError
from phaser.models.job import Job
from phaser.models.phase import Action, ExecutionPhase
from phaser.models.uws import render_job_list
from phaser.services.ids import new_job_id
from phaser.storage.job_store import JobStore
from phaser.storage.keys import KeyLayout
from phaser.storage.transitions import Changed, Transition
from phaser.tasks.registry import Task

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


@pytest.fixture
def uws(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def _create(client: httpx.Client, task: str, **params: str) -> str:
    answer = client.post(f"/{task}/jobs", data=params)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("http://")
    return location


def _phase(client: httpx.Client, job_url: str) -> str:
    return client.get(f"{job_url}/phase").text


def _wait_phase(
    client: httpx.Client, job_url: str, phases: set[str], timeout: float = 30
) -> str:
    deadline = time.monotonic() + timeout
    phase = _phase(client, job_url)
    while phase not in phases:
        assert time.monotonic() < deadline, f"stuck in {phase}"
        root = etree.fromstring(
            client.get(job_url, params={"WAIT": 5, "PHASE": phase}).content
        )
        phase = root.findtext(f"{UWS}phase")
    return phase


# Protocol behaviour ------------------------------------------------------


def test_create_run_answers_303_and_is_queued_or_later(
    uws: httpx.Client,
) -> None:
    location = _create(uws, "sleep", seconds="0.2", PHASE="RUN")
    assert location.rsplit("/", 1)[0].endswith("/sleep/jobs")
    assert _phase(uws, location) in {"QUEUED", "EXECUTING", "COMPLETED"}


def test_single_values_are_plain_text(uws: httpx.Client) -> None:
    location = _create(uws, "echo", RUNID="r-7", EXECUTIONDURATION="30")
    answer = uws.get(f"{location}/phase")
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "PENDING"
    assert uws.get(f"{location}/executionduration").text == "30"
    destruction = uws.get(f"{location}/destruction").text
    assert destruction.endswith("Z")
    assert not destruction.endswith("\n")
    assert uws.get(f"{location}/quote").text == ""
    assert uws.get(f"{location}/owner").text == ""
    root = etree.fromstring(uws.get(location).content)
    assert root.findtext(f"{UWS}runId") == "r-7"
    assert root.findtext(f"{UWS}destruction") == destruction


def test_parameter_names_are_case_insensitive_everywhere(
    uws: httpx.Client,
) -> None:
    # Query string, urlencoded and multipart bodies, any case.
    location = uws.post(
        "/sleep/jobs?Seconds=1", data={"runId": "mixed"}
    ).headers["location"]
    root = etree.fromstring(uws.get(location).content)
    assert root.findtext(f"{UWS}runId") == "mixed"
    [parameter] = root.iter(f"{UWS}parameter")
    assert parameter.get("id") == "seconds"
    assert parameter.text == "1.0"
    answer = uws.post(f"{location}/parameters", files={"SECONDS": (None, "2")})
    assert answer.status_code == 303
    assert uws.post(
        location, data={"executionDuration": "40"}
    ).status_code == (303)
    assert uws.get(f"{location}/executionduration").text == "40"
    uws.post(f"{location}/phase", data={"phase": "RUN"})
    assert _wait_phase(uws, location, {"COMPLETED"}) == "COMPLETED"
    assert uws.get(f"{location}/results/result").text == "slept 2 s"


def test_phase_rules_answer_403_with_a_message(uws: httpx.Client) -> None:
    location = _create(uws, "echo", PHASE="RUN")
    _wait_phase(uws, location, {"COMPLETED"})
    for url, data in [
        (f"{location}/phase", {"PHASE": "RUN"}),
        (f"{location}/parameters", {"x": "1"}),
        (f"{location}/executionduration", {"EXECUTIONDURATION": "5"}),
    ]:
        answer = uws.post(url, data=data)
        assert answer.status_code == 403, url
        assert "COMPLETED" in answer.text
    # ABORT of a finished job is a no-op, still 303.
    assert uws.post(
        f"{location}/phase", data={"PHASE": "ABORT"}
    ).status_code == (303)
    assert _phase(uws, location) == "COMPLETED"
    # The destruction time may change in any phase.
    answer = uws.post(
        f"{location}/destruction", data={"DESTRUCTION": "2030-01-01T00:00:00"}
    )
    assert answer.status_code == 303


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("", {"PHASE": "PAUSE"}),
        ("/phase", {"PHASE": "run"}),
        ("/executionduration", {"EXECUTIONDURATION": "-1"}),
        ("/executionduration", {"EXECUTIONDURATION": "soon"}),
        ("/destruction", {"DESTRUCTION": "tomorrow"}),
        ("/destruction", {"DESTRUCTION": "0000-01-01T00:00:00"}),
        ("/destruction", {"DESTRUCTION": "99999-01-01T00:00:00"}),
        ("", {"ACTION": "EXPLODE"}),
    ],
)
def test_bad_values_are_400_and_change_nothing(
    uws: httpx.Client, path: str, data: dict[str, str]
) -> None:
    location = _create(uws, "sleep", seconds="1")
    before = uws.get(location).content
    answer = uws.post(f"{location}{path}", data=data)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text
    assert uws.get(location).content == before


@pytest.mark.parametrize(
    "query",
    [
        {"PHASE": "RUNNING"},
        {"LAST": "0"},
        {"LAST": "-3"},
        {"LAST": "many"},
        {"AFTER": "yesterday"},
    ],
)
def test_bad_list_filters_are_400(
    uws: httpx.Client, query: dict[str, str]
) -> None:
    answer = uws.get("/echo/jobs", params=query)
    assert answer.status_code == 400
    assert answer.text


def test_bad_wait_values_are_400(uws: httpx.Client) -> None:
    location = _create(uws, "echo")
    for value in ("-2", "soon", "1.5.3"):
        assert uws.get(location, params={"WAIT": value}).status_code == 400
    assert uws.get(
        location, params={"WAIT": 1, "PHASE": "NOPE"}
    ).status_code == (400)


def test_invalid_task_parameters_are_400_naming_the_parameter(
    uws: httpx.Client,
) -> None:
    answer = uws.post("/sleep/jobs", data={"SECONDS": "a while"})
    assert answer.status_code == 400
    assert "seconds" in answer.text


def test_unknown_jobs_and_lists_are_404(uws: httpx.Client) -> None:
    assert uws.get("/nothing/jobs").status_code == 404
    assert uws.post("/nothing/jobs", data={"x": "1"}).status_code == 404
    for suffix in (
        "",
        "/phase",
        "/results",
        "/parameters",
        "/owner",
        "/error",
    ):
        answer = uws.get(f"/echo/jobs/01m80c4v26amk3szxabtvbm5k5{suffix}")
        assert answer.status_code == 404
        assert answer.text
    # A job is only found in its own task's list.
    location = _create(uws, "echo")
    job_id = location.rsplit("/", 1)[1]
    assert uws.get(f"/sleep/jobs/{job_id}").status_code == 404


def test_delete_answers_303_to_the_list(uws: httpx.Client) -> None:
    for how in ("DELETE", "ACTION"):
        location = _create(uws, "echo")
        if how == "DELETE":
            answer = uws.delete(location)
        else:
            answer = uws.post(location, data={"ACTION": "DELETE"})
        assert answer.status_code == 303
        assert answer.headers["location"] == location.rsplit("/", 1)[0]
        assert uws.get(location).status_code == 404


def test_job_list_filters(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    stack = make_stack(redis_server, tmp_path / "data")
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            first = _create(client, "echo")
            time.sleep(0.01)
            second = _create(client, "echo")
            time.sleep(0.01)
            third = _create(client, "echo", PHASE="RUN")
            _wait_phase(client, third, {"COMPLETED"})
            _create(client, "sleep", seconds="1")  # another list

            def listed(**params: str | list[str]) -> list[str]:
                root = etree.fromstring(
                    client.get("/echo/jobs", params=params).content
                )
                return [
                    ref.get("{http://www.w3.org/1999/xlink}href")
                    for ref in root.iter(f"{UWS}jobref")
                ]

            assert listed() == [third, second, first]
            assert listed(LAST="2") == [third, second]
            assert listed(PHASE="PENDING") == [second, first]
            assert listed(PHASE=["PENDING", "COMPLETED"], LAST="1") == [third]
            created = etree.fromstring(client.get(first).content).findtext(
                f"{UWS}creationTime"
            )
            # AFTER with Z and fractions, without zone or fractions.
            assert listed(AFTER=created) == [third, second]
            no_zone = created.removesuffix("Z")
            assert listed(AFTER=no_zone) == [third, second]
            whole = (
                datetime.fromisoformat(created) - timedelta(seconds=1)
            ).strftime("%Y-%m-%dT%H:%M:%S")
            assert listed(AFTER=whole) == [third, second, first]
            assert listed(PHASE="ARCHIVED") == []
    finally:
        stack.stop()


def test_wait_returns_on_phase_change_and_honours_the_guard(
    uws: httpx.Client,
) -> None:
    location = _create(uws, "sleep", seconds="1", PHASE="RUN")
    _wait_phase(uws, location, {"EXECUTING"})
    started = time.monotonic()
    root = etree.fromstring(uws.get(location, params={"WAIT": "30"}).content)
    assert root.findtext(f"{UWS}phase") == "COMPLETED"
    assert time.monotonic() - started < 3
    # Finished: answers at once; guard mismatch: answers at once.
    started = time.monotonic()
    uws.get(location, params={"WAIT": "-1"})
    pending = _create(uws, "sleep", seconds="1")
    uws.get(pending, params={"WAIT": "30", "PHASE": "EXECUTING"})
    assert time.monotonic() - started < 2
    # -1 waits for the server's maximum (5 s on the test stack).
    started = time.monotonic()
    uws.get(pending, params={"WAIT": "-1"})
    assert 4.9 <= time.monotonic() - started < 10


def test_links_honour_forwarded_headers(uws: httpx.Client) -> None:
    answer = uws.post(
        "/echo/jobs",
        data={"x": "1"},
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "vo.example.org",
            "X-Forwarded-Prefix": "/phaser",
        },
    )
    assert answer.headers["location"].startswith(
        "https://vo.example.org/phaser/echo/jobs/"
    )


def test_vosi_availability_and_capabilities(uws: httpx.Client) -> None:
    root = etree.fromstring(uws.get("/availability").content)
    assert (
        root.findtext(
            "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available"
        )
        == "true"
    )
    capabilities = uws.get("/capabilities").text
    assert "/echo/jobs" in capabilities
    assert "ivo://ivoa.net/std/UWS" in capabilities


# Schema validity in every phase -----------------------------------------


def _documents(client: httpx.Client, location: str) -> list[bytes]:
    return [
        client.get(location).content,
        client.get(f"{location}/results").content,
        client.get(f"{location}/parameters").content,
    ]


@dataclass(frozen=True)
class _Force(Transition):
    """Any phase to ``phase``: what no action of the phase table does."""

    phase: ExecutionPhase = ExecutionPhase.UNKNOWN

    @property
    def allowed(self) -> frozenset[ExecutionPhase]:
        return frozenset(ExecutionPhase)

    @property
    def target(self) -> ExecutionPhase | None:
        return self.phase


async def _force_phase(
    stack: Stack, redis_url: str, job_id: str, phase: ExecutionPhase
) -> None:
    """Put a job in a phase the API cannot reach yet (HELD, SUSPENDED,
    UNKNOWN, ARCHIVED) through the job store's own compare-and-set."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(redis, KeyLayout(stack.env["PHASER_KEY_PREFIX"]))
    job = await store.get(job_id)
    assert job is not None
    result = await store.transitions.apply(
        job, _Force(Action.EDIT, phase=phase)
    )
    assert isinstance(result, Changed)
    await redis.aclose()


def test_every_document_is_schema_valid_in_every_phase(
    schema: etree.XMLSchema,
    uws: httpx.Client,
    stack: Stack,
    redis_server: EmbeddedRedis,
    evidence: Path,
    tmp_path: Path,
) -> None:
    seen: dict[str, bytes] = {}

    def check(location: str, expected: str) -> None:
        assert _phase(uws, location) == expected
        for document in _documents(uws, location):
            valid_uws(schema, document)
        seen[expected] = uws.get(location).content

    check(_create(uws, "echo", q="1"), "PENDING")

    # QUEUED: a stack without workers keeps the job queued.
    idle = make_stack(redis_server, tmp_path / "idle", workers=0)
    try:
        with httpx.Client(base_url=idle.url, timeout=30) as client:
            queued = _create(client, "echo", PHASE="RUN")
            assert _phase(client, queued) == "QUEUED"
            for document in _documents(client, queued):
                valid_uws(schema, document)
            seen["QUEUED"] = client.get(queued).content
    finally:
        idle.stop()

    running = _create(
        uws, "mark", directory=str(evidence), seconds="30", PHASE="RUN"
    )
    job_id = running.rsplit("/", 1)[1]
    wait_for_file(evidence / f"{job_id}.started")
    check(running, "EXECUTING")
    uws.post(f"{running}/phase", data={"PHASE": "ABORT"})
    check(running, "ABORTED")

    limited = _create(
        uws,
        "mark",
        directory=str(evidence),
        seconds="30",
        EXECUTIONDURATION="1",
        PHASE="RUN",
    )
    _wait_phase(uws, limited, {"ABORTED"})
    check(limited, "ABORTED")
    root = etree.fromstring(uws.get(limited).content)
    summary = root.find(f"{UWS}errorSummary")
    assert summary is not None
    assert "exceeded" in summary.findtext(f"{UWS}message")

    done = _create(uws, "sleep", seconds="1.2", PHASE="RUN")
    _wait_phase(uws, done, {"COMPLETED"})
    check(done, "COMPLETED")
    root = etree.fromstring(seen["COMPLETED"])
    info = root.find(f"{UWS}jobInfo")
    assert info is not None
    progress = info.find("{urn:x-phaser:uws-extension:v1}progress")
    assert progress is not None
    assert progress.get("percent") == "100.0"

    failed = _create(uws, "fail", message="no stars", PHASE="RUN")
    _wait_phase(uws, failed, {"ERROR"})
    check(failed, "ERROR")
    root = etree.fromstring(seen["ERROR"])
    summary = root.find(f"{UWS}errorSummary")
    assert summary is not None
    assert summary.get("type") == "fatal"
    assert summary.findtext(f"{UWS}message") == "no stars"
    error = uws.get(f"{failed}/error")
    assert error.status_code == 200
    assert b"no stars" in error.content
    assert uws.get(f"{done}/error").status_code == 404

    for phase in ("HELD", "SUSPENDED", "UNKNOWN", "ARCHIVED"):
        location = _create(uws, "echo", q=phase)
        asyncio.run(
            _force_phase(
                stack,
                redis_server.url,
                location.rsplit("/", 1)[1],
                ExecutionPhase(phase),
            )
        )
        check(location, phase)

    for document in seen.values():
        root = etree.fromstring(document)
        assert root.get("version") == "1.1"
        assert root.prefix == "uws"
        for name in ("creationTime", "startTime", "endTime", "destruction"):
            text = root.findtext(f"{UWS}{name}")
            assert not text or text.endswith("Z")
    assert set(seen) == {
        "PENDING",
        "QUEUED",
        "EXECUTING",
        "COMPLETED",
        "ERROR",
        "ABORTED",
        "HELD",
        "SUSPENDED",
        "UNKNOWN",
        "ARCHIVED",
    }

    for params in ({}, {"PHASE": "COMPLETED"}, {"LAST": "3"}):
        valid_uws(schema, uws.get("/echo/jobs", params=params).content)


# Real clients -------------------------------------------------------------


def test_pyvo_drives_a_job_through_its_life(uws: httpx.Client) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    from pyvo.dal import DALQueryError
    from pyvo.dal.tap import AsyncTAPJob

    location = _create(
        uws, "cone", ra="10", dec="20", radius="0.5", maxrec="7"
    )
    job = AsyncTAPJob(location)
    assert job.job_id == location.rsplit("/", 1)[1]
    assert job.phase == "PENDING"
    job.execution_duration = 100
    assert job.execution_duration.to_value("s") == 100
    destruction = datetime.now(tz=UTC) + timedelta(hours=2)
    job.destruction = destruction
    assert abs(job.destruction.to_datetime(timezone=UTC) - destruction) < (
        timedelta(seconds=1)
    )
    job.run()
    assert job.phase in {"QUEUED", "EXECUTING", "COMPLETED"}
    job.wait()
    assert job.phase == "COMPLETED"
    assert job.result_uri.endswith("/results/result")
    table = job.fetch_result().to_table()
    assert len(table) == 7
    assert "dist" in table.colnames
    job.raise_if_error()

    long = AsyncTAPJob(_create(uws, "sleep", seconds="30"))
    long.run()
    long.abort()
    assert long.phase == "ABORTED"

    failed = AsyncTAPJob(_create(uws, "fail", message="pyvo sees this"))
    failed.run()
    failed.wait()
    assert failed.phase == "ERROR"
    with pytest.raises(DALQueryError, match="pyvo sees this"):
        failed.raise_if_error()

    job.delete()
    assert uws.get(location).status_code == 404


def test_stilts_taplint_uws_stage_is_clean(stack: Stack) -> None:
    stilts = require_tool("stilts", "Debian package")
    process = subprocess.run(
        [
            stilts,
            "taplint",
            "interface=tap1.0",
            f"tapurl={stack.url}/tap",
            f"asyncurl={stack.url}/echo/jobs",
            "stages=UWS",
            "report=EWIF",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = process.stdout
    assert "Section UWS" in output, output + process.stderr
    assert "Totals: Errors: 0; Warnings: 0;" in output, output
    assert "I-UWS-CJOB-1" in output  # it really created jobs


def _vo_models_job_list(jobs: list[Job], list_url: str) -> bytes:
    """``uws:jobs`` as vo-models renders it (what phaser rendered before
    it wrote the list directly)."""
    document = Jobs(
        jobref=[
            ShortJobDescription(
                job_id=job.id,
                href=f"{list_url}/{job.id}",
                phase=UwsPhase(job.phase.value),
                run_id=job.run_id,
                owner_id=job.owner,
                creation_time=job.created_at,
            )
            for job in jobs
        ]
    )
    data: bytes = document.to_xml(  # type: ignore[assignment]
        encoding="UTF-8", xml_declaration=True
    )
    return data.replace(b"<uws:runId></uws:runId>", b"")


def test_job_list_is_written_exactly_as_vo_models_writes_it(
    schema: etree.XMLSchema,
) -> None:
    moments = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, 0, 1000, tzinfo=UTC),
    ]
    odd = ["a&b <c> \"d\" 'e'", "tab\tnew\nline\rcr", "ünïcødé ☃", ""]
    jobs = [
        Job(
            id=new_job_id(to_ms(moment) + n),
            task="echo",
            owner=owner,
            phase=phase,
            parameters={},
            created_at=moment,
            execution_duration=0,
            destruction_time=None,
            run_id=run_id,
        )
        for n, (moment, owner, run_id, phase) in enumerate(
            itertools.product(
                moments,
                [None, "ann", *odd],
                [None, *odd],
                [ExecutionPhase.PENDING, ExecutionPhase.ARCHIVED],
            )
        )
    ]
    for url in ("http://h/echo/jobs", 'https://h/p&q"/echo/jobs'):
        for chosen in (jobs, jobs[:1], []):
            ours = render_job_list(chosen, url)
            assert ours == _vo_models_job_list(chosen, url)
            valid_uws(schema, ours)


def test_documents_name_a_stylesheet_browsers_render_them_with(
    uws: httpx.Client, schema: etree.XMLSchema
) -> None:
    created = uws.post("/echo/jobs", data={"greeting": "hello"})
    url = created.headers["location"]
    job_id = url.rsplit("/", 1)[1]
    for document_url in (url, "/echo/jobs"):
        content = uws.get(document_url).content
        valid_uws(schema, content)  # the instruction changes nothing
        [declaration, instruction] = content.split(b"\n")[:2]
        assert declaration.startswith(b"<?xml ")
        href = re.fullmatch(
            rb'<\?xml-stylesheet type="text/xsl" href="([^"]+)"\?>',
            instruction,
        )
        assert href is not None
        stylesheet = uws.get(href.group(1).decode())
        assert stylesheet.status_code == 200
        assert stylesheet.headers["content-type"].startswith("text/xsl")
        transform = etree.XSLT(etree.fromstring(stylesheet.content))
        page = str(transform(etree.fromstring(content)))
        assert job_id in page
        assert "PENDING" in page
    job_page = str(
        transform(etree.fromstring(uws.get(url).content))
    )  # the last transform is the job list's stylesheet, the same file
    assert f"UWS job {job_id}" in job_page
    assert "greeting" in job_page
    assert "hello" in job_page


def _destruction(client: httpx.Client, location: str) -> datetime:
    return datetime.fromisoformat(client.get(f"{location}/destruction").text)


def test_one_post_changes_all_or_nothing(uws: httpx.Client) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    # A start that cannot happen takes the destruction change with it.
    done = _create(uws, "echo", PHASE="RUN")
    _wait_phase(uws, done, {"COMPLETED"})
    before = _destruction(uws, done)
    answer = uws.post(
        done, data={"PHASE": "RUN", "DESTRUCTION": soon.isoformat()}
    )
    assert answer.status_code == 403, answer.text
    assert "COMPLETED" in answer.text
    assert _destruction(uws, done) == before
    # An abort of an ended job is a no-op; the other changes still apply.
    answer = uws.post(
        done, data={"PHASE": "ABORT", "DESTRUCTION": soon.isoformat()}
    )
    assert answer.status_code == 303
    assert _destruction(uws, done) == soon
    assert _phase(uws, done) == "COMPLETED"
    # Parameters, duration, destruction and the start: one step.
    pending = _create(uws, "sleep", seconds="0")
    answer = uws.post(
        pending,
        data={
            "PHASE": "RUN",
            "EXECUTIONDURATION": "30",
            "DESTRUCTION": soon.isoformat(),
            "seconds": "0.1",
        },
    )
    assert answer.status_code == 303
    assert _wait_phase(uws, pending, {"COMPLETED"}) == "COMPLETED"
    assert uws.get(f"{pending}/executionduration").text == "30"
    assert _destruction(uws, pending) == soon
    assert uws.get(f"{pending}/results/result").text == "slept 0.1 s"


def test_repeated_parameters_keep_every_value(uws: httpx.Client) -> None:
    answer = uws.post(
        "/echo/jobs?POS=3",
        content=b"pos=1&y=a&POS=2",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 303
    location = answer.headers["location"]
    root = etree.fromstring(uws.get(f"{location}/parameters").content)
    assert [(p.get("id"), p.text) for p in root.iter(f"{UWS}parameter")] == [
        ("pos", "3"),
        ("pos", "1"),
        ("pos", "2"),
        ("y", "a"),
    ]
    job_id = location.rsplit("/", 1)[1]
    parameters = uws.get(f"/api/v1/jobs/{job_id}").json()["parameters"]
    assert parameters == {"pos": ["3", "1", "2"], "y": "a"}


def test_a_list_field_takes_one_or_many_form_values() -> None:
    class Cone(BaseModel):
        pos: list[float]
        band: str = "r"

    task = Task(
        name="t",
        function=lambda params, ctx: None,
        parameters=Cone,
        description="",
    )
    assert task.validate({"POS": "1.5"}, from_form=True) == {
        "pos": [1.5],
        "band": "r",
    }
    assert task.validate({"pos": ["1", "2"]}, from_form=True)["pos"] == [
        1.0,
        2.0,
    ]
    # JSON clients send lists as lists; a string is refused there.
    with pytest.raises(InvalidParametersError):
        task.validate({"pos": "1.5"})
    with pytest.raises(InvalidParametersError):
        task.validate({"pos": "1.5", "band": ["r", "g"]}, from_form=True)


def test_query_names_of_every_case_are_one_declared_parameter(
    uws: httpx.Client,
) -> None:
    location = _create(uws, "echo", PHASE="RUN")
    _wait_phase(uws, location, {"COMPLETED"})
    listed = uws.get("/echo/jobs?pHaSe=COMPLETED&Last=1")
    assert listed.status_code == 200
    assert location.rsplit("/", 1)[1] in listed.text
    started = time.monotonic()
    answer = uws.get(f"{location}?Wait=5&PHASE=PENDING")
    assert answer.status_code == 200
    assert time.monotonic() - started < 4  # not PENDING: no wait
    assert uws.get(f"{location}?wAiT=soon").status_code == 400
    # The declared parameters are in the OpenAPI document.
    operation = uws.get("/openapi.json").json()["paths"]["/{task}/jobs"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {
        "phase",
        "after",
        "last",
    }


async def _archive(stack: Stack, redis_url: str, job_id: str) -> None:
    await _force_phase(stack, redis_url, job_id, ExecutionPhase.ARCHIVED)


def test_json_and_uws_lists_agree_on_archived_jobs(
    uws: httpx.Client, stack: Stack, redis_server: EmbeddedRedis
) -> None:
    location = _create(uws, "echo", PHASE="RUN", RUNID="archived-agree")
    _wait_phase(uws, location, {"COMPLETED"})
    job_id = location.rsplit("/", 1)[1]
    asyncio.run(_archive(stack, redis_server.url, job_id))

    def uws_ids(query: str) -> set[str]:
        root = etree.fromstring(uws.get(f"/echo/jobs{query}").content)
        return {ref.get("id") for ref in root.iter(f"{UWS}jobref")}

    def json_ids(query: str) -> set[str]:
        page = uws.get(f"/api/v1/jobs?task=echo&limit=200{query}").json()
        return {job["id"] for job in page["jobs"]}

    assert job_id not in uws_ids("")
    assert job_id not in json_ids("")
    assert job_id in uws_ids("?PHASE=ARCHIVED")
    assert job_id in json_ids("&phase=ARCHIVED")


@given(
    phase=st.sampled_from([None, "RUN", "ABORT"]),
    destruction=st.booleans(),
    duration=st.none() | st.integers(min_value=1, max_value=100),
    parameter=st.none() | st.text("abc", min_size=1, max_size=5),
    run_id=st.none() | st.text("xyz", min_size=1, max_size=5),
    ended=st.booleans(),
)
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_a_post_applies_every_change_or_none(
    uws: httpx.Client,
    phase: str | None,
    destruction: bool,
    duration: int | None,
    parameter: str | None,
    run_id: str | None,
    ended: bool,
) -> None:
    location = _create(uws, "echo", **({"PHASE": "RUN"} if ended else {}))
    if ended:
        _wait_phase(uws, location, {"COMPLETED"})
    job_url = "/api/v1/jobs/" + location.rsplit("/", 1)[1]
    before = uws.get(job_url).json()
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    data = {
        name: value
        for name, value in {
            "PHASE": phase,
            "DESTRUCTION": soon.isoformat() if destruction else None,
            "EXECUTIONDURATION": None if duration is None else str(duration),
            "x": parameter,
            "RUNID": run_id,
        }.items()
        if value is not None
    }
    answer = uws.post(location, data=data)
    after = uws.get(job_url).json()
    # Only what may change after the job has started is allowed on an
    # ended job; then all of it applies, or (403) none of it.
    refused = ended and (
        phase == "RUN" or duration is not None or parameter is not None
    )
    if refused:
        assert answer.status_code == 403, answer.text
        assert after == before
        return
    assert answer.status_code == 303, answer.text
    if destruction:
        assert datetime.fromisoformat(after["destruction_time"]) == soon
    if run_id is not None:
        assert after["run_id"] == run_id
    if duration is not None:
        assert after["execution_duration"] == duration
    if parameter is not None:
        assert after["parameters"]["x"] == parameter
    if phase == "RUN":
        assert after["phase"] != "PENDING"
    elif phase == "ABORT" and not ended:
        assert after["phase"] == "ABORTED"
    else:
        assert after["phase"] == before["phase"]


def test_wait_on_the_phase_resource_blocks_like_on_the_job(
    uws: httpx.Client,
) -> None:
    # cadctap polls /phase with WAIT: each answer should be a change,
    # not a busy loop (it made 1,841 requests against a 3 s job).
    location = _create(uws, "sleep", seconds="1.5", PHASE="RUN")
    requests = 0
    seen = []
    started = time.monotonic()
    while time.monotonic() - started < 30:
        requests += 1
        phase = uws.get(f"{location}/phase", params={"WAIT": "10"}).text
        seen.append(phase)
        if phase in {"COMPLETED", "ERROR", "ABORTED"}:
            break
    assert seen[-1] == "COMPLETED"
    assert requests <= 4, seen  # QUEUED/EXECUTING, then COMPLETED
    # The PHASE guard works there too, and an ended job answers at once.
    started = time.monotonic()
    answer = uws.get(
        f"{location}/phase", params={"wait": "10", "phase": "EXECUTING"}
    )
    assert answer.text == "COMPLETED"
    assert time.monotonic() - started < 5
    assert uws.get(f"{location}/phase?WAIT=soon").status_code == 400


def test_the_error_document_follows_accept(uws: httpx.Client) -> None:
    failed = _create(uws, "fail", message="no stars <here>", PHASE="RUN")
    _wait_phase(uws, failed, {"ERROR"})
    default = uws.get(f"{failed}/error")
    assert default.headers["content-type"] == "application/x-votable+xml"
    info = etree.fromstring(default.content).find(
        ".//{http://www.ivoa.net/xml/VOTable/v1.3}INFO"
    )
    assert info is not None
    assert info.get("value") == "ERROR"
    assert info.text == "no stars <here>"
    for accept in ("application/x-votable+xml", "text/xml, text/plain"):
        answer = uws.get(f"{failed}/error", headers={"Accept": accept})
        assert answer.headers["content-type"].startswith(
            "application/x-votable+xml"
        )
    text = uws.get(f"{failed}/error", headers={"Accept": "text/plain"})
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "no stars <here>"


def test_each_task_is_a_dali_service_with_async_vosi(
    uws: httpx.Client,
) -> None:
    # /T/async is /T/jobs under its DALI name; links stay under /async.
    answer = uws.post("/echo/async", data={"PHASE": "RUN", "x": "1"})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert "/echo/async/" in location
    assert _wait_phase(uws, location, {"COMPLETED"}) == "COMPLETED"
    job_id = location.rsplit("/", 1)[1]
    listed = etree.fromstring(uws.get("/echo/async?LAST=5").content)
    hrefs = {
        ref.get("{http://www.w3.org/1999/xlink}href")
        for ref in listed.iter(f"{UWS}jobref")
    }
    assert location in hrefs
    results = etree.fromstring(uws.get(f"{location}/results").content)
    [result] = results.iter(f"{UWS}result")
    href = result.get("{http://www.w3.org/1999/xlink}href")
    assert href == f"{location}/results/result"
    assert uws.get(href).status_code == 200
    # The same job, through either name.
    assert uws.get(f"/echo/jobs/{job_id}/phase").text == "COMPLETED"
    assert uws.get(f"/echo/async/{job_id}/phase").text == "COMPLETED"
    assert uws.get("/nosuchtask/async").status_code == 404
    # Per-task VOSI: parsed by vo-models.
    capabilities = VOSICapabilities.from_xml(
        uws.get("/echo/capabilities").content
    )
    urls = {
        str(c.standard_id): str(c.interface[0].access_url[0].value)
        for c in capabilities.capability
        if c.interface
    }
    assert urls["ivo://ivoa.net/std/UWS"].endswith("/echo/async")
    assert urls["ivo://ivoa.net/std/VOSI#availability"].endswith(
        "/echo/availability"
    )
    available = Availability.from_xml(uws.get("/echo/availability").content)
    assert isinstance(available.available, bool)
    assert uws.get("/nosuchtask/capabilities").status_code == 404
    # The root document still lists every task's job list.
    assert "/echo/jobs" in uws.get("/capabilities").text


def test_pyvo_drives_a_job_through_the_dali_async_endpoint(
    uws: httpx.Client, stack: Stack
) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    from pyvo.dal.tap import AsyncTAPJob

    # pyvo posts to {base}/async, as to a TAP service; the cone task
    # ignores (and lists) QUERY, LANG and REQUEST and takes MAXREC.
    job = AsyncTAPJob.create(
        f"{stack.url}/cone",
        "SELECT * FROM cone",
        maxrec=5,
        ra="10",
        dec="20",
        radius="0.5",
    )
    assert "/cone/async/" in job.url
    assert job.phase == "PENDING"
    job.run()
    job.wait()
    assert job.phase == "COMPLETED"
    assert job.result_uri.startswith(f"{job.url}/results/")
    assert len(job.fetch_result().to_table()) == 5
    url = job.url
    job.delete()
    assert uws.get(url).status_code == 404
