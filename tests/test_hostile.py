"""Hostile input cannot poison a job or its owner's lists.

Whatever a client sends is either refused with a 4xx that changes nothing,
or accepted and then readable in every representation: the JSON job, the
JSON lists, the event stream, the UWS job, its parameters, results, error
and single values, and the UWS job list (well-formed and schema-valid).
Text a task writes (progress and error messages) and records an older
version wrote are made readable on the way out.
"""

from __future__ import annotations

import asyncio
import json
import string
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import httpx
import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from redis.asyncio import Redis

from conftest import TERMINAL, Stack, make_stack, valid_uws, wait_for
from phaser.clock import now
from phaser.embedded import EmbeddedRedis
from phaser.models.api import JobListModel, JobModel
from phaser.models.job import Job
from phaser.models.phase import ExecutionPhase
from phaser.services.ids import new_job_id
from phaser.storage.job_store import Created, JobStore
from phaser.storage.keys import KeyLayout
from support_tasks import NASTY_TEXT

HEADER = "X-Auth-Request-User"


@pytest.fixture(scope="module")
def hostile(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack in header mode: every test (and example) is its own owner,
    so what one stores cannot hide in another's list."""
    stack = make_stack(
        redis_server,
        tmp_path_factory.mktemp("hostile"),
        auth="header",
        max_wait=2,
        # Accepted destruction times may lie in the past: no maintenance
        # pass (after the first) may destroy a job a test is reading.
        maintenance_interval=3600,
    )
    yield stack
    stack.stop()


class Owner:
    """A client acting as one owner, that reads back everything."""

    def __init__(
        self, stack: Stack, schema: etree.XMLSchema, name: str | None = None
    ) -> None:
        self.name = name or f"u{uuid.uuid4().hex[:12]}"
        self.http = httpx.Client(
            base_url=stack.url, timeout=30, headers={HEADER: self.name}
        )
        self.schema = schema

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request whose answer must not be a 5xx."""
        answer = self.http.request(method, url, **kwargs)
        assert answer.status_code < 500, (method, url, answer.text)
        return answer

    def job_ids(self) -> list[str]:
        """Every job of this owner (JSON list, all pages)."""
        ids: list[str] = []
        params: dict[str, Any] = {"limit": 1000}
        while True:
            answer = self.send("GET", "/api/v1/jobs", params=params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            ids += [job["id"] for job in page["jobs"]]
            if not page["next_cursor"]:
                return ids
            params["cursor"] = page["next_cursor"]

    def read_lists(self, task: str) -> None:
        """The owner's lists in both dialects, well-formed and valid."""
        for params in ({}, {"task": task}, {"phase": "PENDING"}):
            answer = self.send("GET", "/api/v1/jobs", params=params)
            assert answer.status_code == 200, answer.text
            page = json.loads(answer.content)
            assert (
                JobListModel.model_validate(page).model_dump(mode="json")
                == page
            )
            # The count agrees with the list's total.
            answer = self.send("GET", "/api/v1/jobs/count", params=params)
            assert answer.status_code == 200, answer.text
            assert json.loads(answer.content)["count"] == page["total"]
        answer = self.send("GET", f"/{task}/jobs")
        assert answer.status_code == 200, answer.text
        valid_uws(self.schema, answer.content)
        for path in ("/ui", "/ui/jobs", f"/ui/jobs?task={task}"):
            answer = self.send("GET", path)
            assert answer.status_code == 200, answer.text
            lxml.html.document_fromstring(answer.content)

    def read_job(self, job_id: str) -> dict[str, Any]:
        """The job in every representation; its JSON form."""
        answer = self.send("GET", f"/api/v1/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = json.loads(answer.content)
        # What the OpenAPI schema says, exactly (the JSON is rendered
        # without the model).
        assert JobModel.model_validate(job).model_dump(mode="json") == job
        task = job["task"]
        for result in job["results"]:
            answer = self.send("GET", result["href"])
            assert answer.status_code == 200, answer.text
            if result["mime_type"] == "application/json":
                # Strict JSON: no NaN or Infinity literals.
                json.loads(answer.content, parse_constant=_no_constant)
        for upload in job["uploads"]:
            if not upload["by_reference"]:
                answer = self.send("GET", upload["href"])
                assert answer.status_code == 200, answer.text
                assert len(answer.content) == upload["size"]
        self.read_events(job_id)
        # The dashboard's page of the job.
        answer = self.send("GET", f"/ui/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        page = lxml.html.document_fromstring(answer.content)
        assert job_id in page.findtext(".//h1/code")
        base = f"/{task}/jobs/{job_id}"
        for path in (base, f"{base}/results"):
            answer = self.send("GET", path)
            assert answer.status_code == 200, answer.text
            valid_uws(self.schema, answer.content)
        answer = self.send("GET", f"{base}/parameters")
        assert answer.status_code == 200, answer.text
        etree.fromstring(answer.content)
        for name in ("phase", "executionduration", "destruction", "owner"):
            answer = self.send("GET", f"{base}/{name}")
            assert answer.status_code == 200, answer.text
            answer.content.decode("utf-8")
        answer = self.send("GET", f"{base}/error")
        assert answer.status_code in {200, 404}, answer.text
        if answer.status_code == 200:
            etree.fromstring(answer.content)
        self.read_lists(task)
        return job

    def read_events(self, job_id: str) -> None:
        """The event stream's first event carries the job as JSON."""
        with self.http.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    job = json.loads(line[6:])
                    assert job["id"] == job_id
                    model = JobModel.model_validate(job)
                    assert model.model_dump(mode="json") == job
                    return
        raise AssertionError("event stream ended without an event")


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


@pytest.fixture
def owner(hostile: Stack, schema: etree.XMLSchema) -> Iterator[Owner]:
    client = Owner(hostile, schema)
    yield client
    client.close()


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """Request arguments sending ``body`` as the JSON a hostile client
    writes: lone surrogates as ``\\ud800`` escapes, ``NaN`` literals."""
    return {
        "content": json.dumps(body).encode(),
        "headers": {"content-type": "application/json"},
    }


def _form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Request arguments posting a form; lone surrogates become the bytes
    UTF-8 would give them (invalid UTF-8 on the wire)."""
    body = urlencode(pairs, encoding="utf-8", errors="surrogatepass")
    return {
        "content": body.encode(),
        "headers": {"content-type": "application/x-www-form-urlencoded"},
    }


def _multipart(
    pairs: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]]
) -> dict[str, Any]:
    """Request arguments posting ``multipart/form-data``: fields, and files
    as (part name, file name, content type, bytes); names escaped as
    browsers do, lone surrogates as the bytes UTF-8 would give them."""

    def text(value: str) -> bytes:
        return value.encode("utf-8", errors="surrogatepass")

    def name(value: str) -> bytes:
        escaped = value.replace('"', "%22").replace("\r", "%0D")
        return text(escaped.replace("\n", "%0A"))

    boundary = b"hostile-7f3a9c"
    body = bytearray()
    for key, value in pairs:
        body += b"--" + boundary + b"\r\n"
        body += b'Content-Disposition: form-data; name="' + name(key)
        body += b'"\r\n\r\n' + text(value) + b"\r\n"
    for key, filename, content_type, data in files:
        body += b"--" + boundary + b"\r\n"
        body += b'Content-Disposition: form-data; name="' + name(key)
        body += b'"; filename="' + name(filename) + b'"\r\n'
        body += b"Content-Type: " + text(content_type) + b"\r\n\r\n"
        body += data + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return {
        "content": bytes(body),
        "headers": {
            "content-type": "multipart/form-data; boundary="
            + boundary.decode()
        },
    }


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


# Regression tests: one per finding, each refused and nothing stored.


@pytest.mark.parametrize(
    "text",
    ["a\x00b", "\x01", "\x1f", "\ufffe", "\uffff", "\ud800", "x\udfffy"],
)
def test_text_xml_cannot_carry_is_refused_everywhere_it_can_be_sent(
    owner: Owner, text: str
) -> None:
    echo = "/api/v1/jobs"
    for body in (
        {"task": "echo", "parameters": {"a": text}},
        {"task": "echo", "parameters": {text: 1}},
        {"task": "echo", "run_id": text},
        {"task": "echo", "parameters": {"a": {"b": [text]}}},
    ):
        answer = owner.send("POST", echo, **_json(body))
        assert 400 <= answer.status_code < 500, (body, answer.text)
    for pairs in ([("A", text)], [(text, "1")], [("RUNID", text)]):
        answer = owner.send("POST", "/echo/jobs", **_form(pairs))
        if answer.status_code == 303:
            # A lone surrogate cannot be sent as UTF-8: its bytes are
            # invalid UTF-8, which the form parser reads as U+FFFD.
            assert (
                text.encode("utf-8", "surrogatepass").decode(
                    "utf-8", "replace"
                )
                != text
            )
            job_id = answer.headers["location"].rsplit("/", 1)[1]
            owner.read_job(job_id)
            owner.send("DELETE", f"/api/v1/jobs/{job_id}")
        else:
            assert 400 <= answer.status_code < 500, (pairs, answer.text)
    assert owner.job_ids() == []
    # And on an existing job: the change is refused, the job unchanged.
    job = owner.send(
        "POST", "/api/v1/jobs", json={"task": "echo", "run_id": "r"}
    ).json()
    url = f"/api/v1/jobs/{job['id']}"
    for patch in ({"parameters": {"a": text}}, {"run_id": text}):
        answer = owner.send("PATCH", url, **_json(patch))
        assert 400 <= answer.status_code < 500, (patch, answer.text)
    if not any("\ud800" <= c <= "\udfff" for c in text):
        for target, name in (("", "RUNID"), ("/parameters", "a")):
            answer = owner.send(
                "POST",
                f"/echo/jobs/{job['id']}{target}",
                **_form([(name, text)]),
            )
            assert 400 <= answer.status_code < 500, (target, answer.text)
    after = owner.read_job(job["id"])
    assert after["parameters"] == {}
    assert after["run_id"] == "r"


def test_problem_answers_quoting_hostile_text_are_valid_json(
    owner: Owner,
) -> None:
    # An unknown field and an unknown task, both named in the answer.
    for body in (
        {"task": "echo", "\ud800": 1},
        {"task": "\ud800\x00"},
        {"task": "echo", "parameters": {"\ud800": "x"}},
    ):
        answer = owner.send("POST", "/api/v1/jobs", **_json(body))
        assert answer.status_code == 422
        problem = json.loads(answer.content)
        assert problem["status"] == 422
        assert problem["detail"]
    answer = owner.send(
        "POST",
        "/\ud800x/jobs".encode("utf-8", "surrogatepass").decode("latin-1"),
    )
    assert answer.status_code in {400, 404}


def test_nesting_deeper_than_the_limit_is_refused(owner: Owner) -> None:
    body: dict[str, Any]
    for depth in (33, 256, 300, 900):
        body = {"task": "echo", "parameters": {"a": _nested(depth)}}
        answer = owner.send("POST", "/api/v1/jobs", **_json(body))
        assert answer.status_code in {400, 422}, answer.text
    assert owner.job_ids() == []
    # Within the limit it is stored, runs, and reads back.
    body = {"task": "echo", "parameters": {"a": _nested(31)}, "start": True}
    answer = owner.send("POST", "/api/v1/jobs", **_json(body))
    assert answer.status_code == 201, answer.text
    wait_for(owner.http, answer.json()["id"], TERMINAL)
    assert owner.read_job(answer.json()["id"])["phase"] == "COMPLETED"


def test_non_finite_numbers_are_refused(owner: Owner) -> None:
    for value in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"task": "echo", "parameters": {{"x": {value}}}}}'
        answer = owner.send(
            "POST",
            "/api/v1/jobs",
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        assert "parameters.x" in answer.json()["detail"]
    # A task model that turns text into a float: "nan" is no number either.
    answer = owner.send("POST", "/sleep/jobs", data={"SECONDS": "nan"})
    assert answer.status_code == 400, answer.text
    assert owner.job_ids() == []


@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ],
)
def test_dates_outside_what_can_be_stored_are_refused(
    owner: Owner, moment: str
) -> None:
    answer = owner.send(
        "POST",
        "/api/v1/jobs",
        json={"task": "echo", "destruction_time": moment},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "destruction_time"
    answer = owner.send("POST", "/echo/jobs", data={"DESTRUCTION": moment})
    assert answer.status_code == 400, answer.text
    assert "DESTRUCTION" in answer.text
    assert owner.job_ids() == []
    answer = owner.send("GET", "/echo/jobs", params={"AFTER": moment})
    assert answer.status_code == 400, answer.text
    answer = owner.send("GET", "/api/v1/jobs", params={"after": moment})
    assert answer.status_code in {400, 422}, answer.text
    job = owner.send("POST", "/api/v1/jobs", json={"task": "echo"}).json()
    answer = owner.send(
        "PATCH", f"/api/v1/jobs/{job['id']}", json={"destruction_time": moment}
    )
    assert answer.status_code == 422, answer.text
    answer = owner.send(
        "POST",
        f"/echo/jobs/{job['id']}/destruction",
        data={"DESTRUCTION": moment},
    )
    assert answer.status_code == 400, answer.text
    assert (
        owner.read_job(job["id"])["destruction_time"]
        == job["destruction_time"]
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": 'evil"><x>'},
        {"X-Forwarded-Host": "a<b>"},
        {"X-Forwarded-Host": "ok.example&amp;"},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Prefix": '/a"><b'},
        {"X-Forwarded-Prefix": "no-slash"},
    ],
)
def test_host_headers_that_are_no_host_are_refused(
    owner: Owner, headers: dict[str, str]
) -> None:
    for path in ("/capabilities", "/api/v1/jobs", "/echo/jobs"):
        answer = owner.send("GET", path, headers=headers)
        assert answer.status_code == 400, (path, answer.text)


def test_forwarded_host_and_prefix_make_the_links(owner: Owner) -> None:
    headers = {
        "X-Forwarded-Host": "phaser.example.org:8443",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Prefix": "/svc",
    }
    answer = owner.send("GET", "/capabilities", headers=headers)
    assert answer.status_code == 200
    urls = [
        element.text
        for element in etree.fromstring(answer.content).iter("accessURL")
    ]
    assert "https://phaser.example.org:8443/svc/echo/jobs" in urls


def test_task_text_xml_cannot_carry_is_replaced_on_the_way_out(
    owner: Owner,
) -> None:
    job = owner.send(
        "POST", "/api/v1/jobs", json={"task": "nasty", "start": True}
    ).json()
    done = wait_for(owner.http, job["id"], TERMINAL)
    assert done["phase"] == "ERROR"
    read = owner.read_job(job["id"])
    message = read["errors"][0]["message"]
    assert message.startswith("bad ")
    assert message.endswith(" end")
    assert "\x00" not in message
    assert "\ufffd" in message
    assert read["progress"]["message"] == message
    error = owner.send("GET", f"/nasty/jobs/{job['id']}/error")
    info = etree.fromstring(error.content).find(
        ".//{http://www.ivoa.net/xml/VOTable/v1.3}INFO"
    )
    assert info is not None
    assert info.text == message
    assert message != NASTY_TEXT


def test_records_an_older_version_wrote_still_list_read_and_delete(
    hostile: Stack, owner: Owner
) -> None:
    """Records with values this version would refuse, or cannot decode at
    all, never break a list and can be deleted."""
    created = now()
    prefix = hostile.env["PHASER_KEY_PREFIX"]
    bad = Job(
        id=new_job_id(int(created.timestamp() * 1000)),
        task="echo",
        owner=owner.name,
        phase=ExecutionPhase.ERROR,
        parameters={"a\x00": "\ud800 \x01", "n": [[["\ufffe"]]]},
        created_at=created,
        execution_duration=10,
        destruction_time=created + timedelta(days=1),
        run_id="r\x02",
    )
    broken = Job(
        id=new_job_id(int(created.timestamp() * 1000) + 1),
        task="echo",
        owner=owner.name,
        phase=ExecutionPhase.COMPLETED,
        parameters={},
        created_at=created,
        execution_duration=10,
        destruction_time=created + timedelta(days=1),
    )

    async def write() -> None:
        redis = Redis.from_url(hostile.redis_url, decode_responses=True)
        try:
            store = JobStore(redis, KeyLayout(prefix))
            await store.load_scripts()
            for job in (bad, broken):
                assert isinstance(await store.create(job), Created)
            # What no version of phaser writes, but a damaged record holds.
            record = KeyLayout(prefix).record(broken.id)
            await redis.hset(
                record,
                mapping={
                    "params": "{not json",
                    "destroy": "99999999999999999",
                    "started": "x",
                    "errors": "[1, 2]",
                    "duration": "",
                },
            )
        finally:
            await redis.aclose()

    asyncio.run(write())
    assert set(owner.job_ids()) == {bad.id, broken.id}
    first = owner.read_job(bad.id)
    assert first["run_id"] == "r\ufffd"
    assert first["parameters"]["a\ufffd"] == "\ufffd \ufffd"
    second = owner.read_job(broken.id)
    assert second["parameters"] == {}
    assert second["destruction_time"] is None
    assert owner.send("DELETE", f"/api/v1/jobs/{bad.id}").status_code == 204
    answer = owner.send(
        "POST", f"/echo/jobs/{broken.id}", data={"ACTION": "DELETE"}
    )
    assert answer.status_code == 303
    assert owner.job_ids() == []


# The property test: generated hostile values in every field.

_NASTY = st.sampled_from(
    [
        "\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x85",
        "\ufffe", "\uffff", "\ud800", "\udfff", "\t", "\n", "\r", "<",
        ">", "&", '"', "'", "]]>", "%00", "\U0001f600", "é", "\u2028",
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(_NASTY, st.text(max_size=3)), max_size=5).map("".join),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)
_PARAMETERS = st.dictionaries(
    _TEXT,
    st.one_of(_VALUES, st.integers(30, 400).map(_nested)),
    max_size=4,
)
_OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_DATES = st.one_of(
    st.builds(
        lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
        st.datetimes(),
        _OFFSETS,
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59.999-05:00",
            "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "tomorrow",
            "",
        ]
    ),
    _TEXT,
)
_DURATIONS = st.one_of(
    st.integers(-5, 10**10), _TEXT, st.sampled_from(["1e3", "10.5", " 7 "])
)
#: Job ids no job has (well formed, and not).
_IDS = st.sampled_from(["0" * 26, "01m8nnx5qhe4fg3tfaekmzv18s", "0" * 25])
_PRIORITIES = st.one_of(
    st.integers(-3, 12), _TEXT, st.sampled_from([None, 2.5, True, "7"])
)
_HEADER_TEXT = st.text(
    alphabet=st.sampled_from(
        string.printable.replace("\r", "")
        .replace("\n", "")
        .replace("\x0b", "")
        .replace("\x0c", "")
    ),
    max_size=30,
)


def _json_body() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"task": st.sampled_from(["echo", "echo", "sleep", "nope"])},
        optional={
            "parameters": _PARAMETERS,
            "run_id": _TEXT,
            "start": st.booleans(),
            "execution_duration": _DURATIONS,
            "destruction_time": _DATES,
            "run_after": _DATES,
            "priority": _PRIORITIES,
            # Mostly values a creation can pass with (a generated id
            # names no job: 404), so that enough are accepted.
            "concurrency_key": st.one_of(_TEXT, st.none(), st.integers()),
            "after": st.one_of(
                st.just([]), st.lists(st.one_of(_TEXT, _IDS), max_size=3)
            ),
            "after_policy": st.sampled_from(["all_completed", "any_end", ""]),
            "parent_id": st.one_of(st.none(), _IDS),
            "description": st.one_of(
                st.none(), _TEXT, st.integers(), st.just("d" * 1001)
            ),
            "retain_after_end": _DURATIONS,
            "notify": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"url": st.one_of(_TEXT, st.just("https://127.0.0.1/x"))},
                    optional={"events": st.lists(_TEXT, max_size=2)},
                ),
            ),
        },
    )


def _form_pairs() -> st.SearchStrategy[list[tuple[str, str]]]:
    control = st.tuples(
        st.sampled_from(
            [
                "RUNID",
                "DESTRUCTION",
                "EXECUTIONDURATION",
                "PHASE",
                "runId",
                "PRIORITY",
                "CONCURRENCYKEY",
                "AFTERJOBS",
                "AFTERPOLICY",
                "PARENTJOB",
                "JOBDESCRIPTION",
                "RETAINAFTEREND",
            ]
        ),
        st.one_of(
            _TEXT, _DATES, st.sampled_from(["RUN", "ABORT", "5", "9", "10"])
        ),
    )
    # A name that repeats (in any case) makes a list of values.
    repeated = st.tuples(st.sampled_from(["pos", "POS", "Pos"]), _TEXT)
    return st.lists(
        st.one_of(st.tuples(_TEXT, _TEXT), control, repeated), max_size=6
    )


_HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _run(
    check: Callable[[], None], client: Owner, outcomes: dict[str, int]
) -> None:
    """Run a property test; both kinds of outcome must have happened."""
    try:
        check()
    finally:
        client.close()
    assert outcomes["accepted"] >= 10, outcomes
    assert outcomes["refused"] >= 10, outcomes


def _readback_everything(client: Owner, job_ids: list[str]) -> None:
    for job_id in job_ids:
        client.read_job(job_id)
    client.read_lists("echo")


def test_generated_hostile_creations_are_refused_or_readable_everywhere(
    hostile: Stack, schema: etree.XMLSchema
) -> None:
    client = Owner(hostile, schema)
    outcomes = {"accepted": 0, "refused": 0}

    @_HYPOTHESIS
    @given(
        body=_json_body(),
        pairs=_form_pairs(),
        task=st.sampled_from(["echo", "sleep"]),
        # Reused keys meet other bodies: 409, nothing made.
        key=st.one_of(
            st.none(),
            st.sampled_from(["k1", "k2", '"k1"']),
            _HEADER_TEXT.map(str.strip),
        ),
    )
    def check(
        body: dict[str, Any],
        pairs: list[tuple[str, str]],
        task: str,
        key: str | None,
    ) -> None:
        before = client.job_ids()
        request = _json(body)
        if key is not None:
            request["headers"]["Idempotency-Key"] = key
        answer = client.send("POST", "/api/v1/jobs", **request)
        if answer.status_code == 201:
            outcomes["accepted"] += 1
            client.read_job(answer.json()["id"])
        else:
            outcomes["refused"] += 1
            assert client.job_ids() == before
        before = client.job_ids()
        answer = client.send("POST", f"/{task}/jobs", **_form(pairs))
        if answer.status_code == 303:
            outcomes["accepted"] += 1
            client.read_job(answer.headers["location"].rsplit("/", 1)[1])
        else:
            outcomes["refused"] += 1
            assert client.job_ids() == before
        _readback_everything(client, client.job_ids()[:3])

    _run(check, client, outcomes)


def test_generated_hostile_changes_are_refused_or_readable_everywhere(
    hostile: Stack, schema: etree.XMLSchema
) -> None:
    client = Owner(hostile, schema)
    job = client.send("POST", "/api/v1/jobs", json={"task": "echo"}).json()
    job_id = job["id"]
    outcomes = {"accepted": 0, "refused": 0}

    @_HYPOTHESIS
    @given(
        patch=st.fixed_dictionaries(
            {},
            optional={
                "parameters": _PARAMETERS,
                "run_id": _TEXT,
                "execution_duration": _DURATIONS,
                "destruction_time": _DATES,
                "priority": _PRIORITIES,
            },
        ),
        pairs=_form_pairs(),
        target=st.sampled_from(
            ["", "/parameters", "/destruction", "/executionduration", "/phase"]
        ),
    )
    def check(
        patch: dict[str, Any], pairs: list[tuple[str, str]], target: str
    ) -> None:
        pairs = [
            (name, value)
            for name, value in pairs
            if name.upper() != "PHASE"  # keep the job PENDING
        ]
        answer = client.send("PATCH", f"/api/v1/jobs/{job_id}", **_json(patch))
        outcomes["accepted" if answer.status_code == 200 else "refused"] += 1
        answer = client.send(
            "POST", f"/echo/jobs/{job_id}{target}", **_form(pairs)
        )
        outcomes["accepted" if answer.status_code == 303 else "refused"] += 1
        assert client.read_job(job_id)["phase"] == "PENDING"

    _run(check, client, outcomes)


def test_generated_hostile_queries_and_headers_never_break_a_read(
    hostile: Stack, schema: etree.XMLSchema
) -> None:
    client = Owner(hostile, schema)
    job = client.send(
        "POST", "/api/v1/jobs", json={"task": "echo", "run_id": "r"}
    ).json()

    @_HYPOTHESIS
    @given(
        query=st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "task",
                        "phase",
                        "run_id",
                        "after",
                        "limit",
                        "cursor",
                        "owner",
                        "wait",
                        "until",
                        "PHASE",
                        "AFTER",
                        "LAST",
                        "WAIT",
                    ]
                ),
                st.one_of(_TEXT, _DATES, st.sampled_from(["QUEUED", "5"])),
            ),
            max_size=4,
        ),
        headers=st.dictionaries(
            st.sampled_from(
                [
                    "Host",
                    "X-Forwarded-Host",
                    "X-Forwarded-Proto",
                    "X-Forwarded-Prefix",
                ]
            ),
            _HEADER_TEXT,
            max_size=2,
        ),
    )
    def check(query: list[tuple[str, str]], headers: dict[str, str]) -> None:
        params = urlencode(query, errors="surrogatepass")
        for path in (
            "/api/v1/jobs",
            f"/api/v1/jobs/{job['id']}",
            "/echo/jobs",
            f"/echo/jobs/{job['id']}",
            "/capabilities",
        ):
            try:
                answer = client.send(
                    "GET", f"{path}?{params}", headers=headers
                )
            except httpx.LocalProtocolError:
                return  # httpx itself would not send these headers
            if answer.status_code == 200 and "xml" in answer.headers.get(
                "content-type", ""
            ):
                etree.fromstring(answer.content)
            elif answer.status_code == 200:
                json.loads(answer.content)

    try:
        check()
        client.read_job(job["id"])
    finally:
        client.close()


def test_cursor_of_any_length_the_schema_allows_is_accepted(
    owner: Owner,
) -> None:
    for _ in range(3):
        owner.send("POST", "/api/v1/jobs", json={"task": "echo"})
    first = owner.send("GET", "/api/v1/jobs", params={"limit": 2}).json()
    answer = owner.send(
        "GET",
        "/api/v1/jobs",
        params={"limit": 2, "cursor": first["next_cursor"]},
    )
    assert answer.status_code == 200
    assert len(answer.json()["jobs"]) == 1
    # What the schema refuses is refused, with the pattern in the answer.
    schema = owner.send("GET", "/openapi.json").json()
    [cursor] = [
        p
        for p in schema["paths"]["/api/v1/jobs"]["get"]["parameters"]
        if p["name"] == "cursor"
    ]
    assert "pattern" in str(cursor["schema"])
    answer = owner.send("GET", "/api/v1/jobs", params={"cursor": "a" * 64})
    assert answer.status_code == 422


def _files() -> st.SearchStrategy[list[tuple[str, str, str, bytes]]]:
    names = st.sampled_from(["table", "t1", "Table", "x", "f_2"])
    part = st.one_of(names, names, _TEXT)
    content_type = st.one_of(
        _HEADER_TEXT,
        st.sampled_from(
            ["application/x-votable+xml", "text/plain; charset=utf-8", ""]
        ),
    )
    return st.lists(
        st.tuples(part, _TEXT, content_type, st.binary(max_size=64)),
        max_size=3,
    )


def test_generated_hostile_uploads_are_refused_or_readable_everywhere(
    hostile: Stack, schema: etree.XMLSchema
) -> None:
    client = Owner(hostile, schema)
    outcomes = {"accepted": 0, "refused": 0}
    upload = st.one_of(
        _TEXT,
        st.sampled_from(["table,param:t1", "t,param:x;u,param:table", ","]),
        st.builds("{},{}".format, _TEXT, _TEXT),
    )

    @_HYPOTHESIS
    @given(
        files=_files(),
        uploads=st.lists(st.tuples(st.just("UPLOAD"), upload), max_size=2),
        pairs=_form_pairs(),
        job=st.one_of(
            _json_body().map(json.dumps),
            st.just('{"task": "echo", "start": true}'),
            _TEXT,
        ),
    )
    def check(
        files: list[tuple[str, str, str, bytes]],
        uploads: list[tuple[str, str]],
        pairs: list[tuple[str, str]],
        job: str,
    ) -> None:
        for url, fields, created in [
            ("/echo/jobs", uploads + pairs, 303),
            ("/api/v1/jobs/multipart", [("job", job)], 201),
        ]:
            before = client.job_ids()
            answer = client.send("POST", url, **_multipart(fields, files))
            if answer.status_code == created:
                outcomes["accepted"] += 1
                location = answer.headers["location"]
                client.read_job(location.rsplit("/", 1)[1])
            else:
                outcomes["refused"] += 1
                assert client.job_ids() == before
        _readback_everything(client, client.job_ids()[:3])

    _run(check, client, outcomes)
