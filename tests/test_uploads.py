"""Uploads: files a job is given with its request (UWS/DALI ``UPLOAD``,
file parts; JSON multipart) or by reference, fetched by the worker from a
real HTTP server on loopback; their limits; and real clients (pyvo)."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from conftest import Stack, make_stack, valid_uws, wait_for
from phaser.embedded import EmbeddedRedis, free_port

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK = "{http://www.w3.org/1999/xlink}"


def votable(rows: int) -> bytes:
    """A VOTable of ``rows`` rows."""
    pytest.importorskip("astropy", reason="astro extra not installed")
    from astropy.table import Table

    out = BytesIO()
    Table({"x": list(range(rows))}).write(out, format="votable")
    return out.getvalue()


def counted(http: httpx.Client, job: dict[str, Any]) -> int:
    """The row count a finished ``rows`` job answered."""
    from astropy.io.votable import parse_single_table

    [result] = job["results"]
    data = http.get(result["href"]).content
    table = parse_single_table(BytesIO(data)).to_table()
    return int(table["n_rows"][0])


class _FileServer(ThreadingHTTPServer):
    """Serves ``files``: path → (status, headers, body)."""

    files: dict[str, tuple[int, dict[str, str], bytes]]


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _FileServer)
        files = self.server.files
        status, headers, body = files.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def remote() -> Iterator[tuple[str, dict[str, Any]]]:
    """An HTTP server on loopback; its base URL and its files."""
    server = _FileServer(("127.0.0.1", free_port()), _Files)
    files: dict[str, Any] = {}
    server.files = files
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", files
    server.shutdown()


@pytest.fixture(scope="module")
def fetching(
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    remote: tuple[str, dict[str, Any]],
) -> Iterator[Stack]:
    """A stack that may fetch from the loopback server, with small
    limits: 20,000 bytes a file, 60,000 a request, 3 files a job."""
    host = remote[0].removeprefix("http://")
    running = make_stack(
        redis_server,
        tmp_path_factory.mktemp("fetching"),
        upload_hosts=host,
        max_upload_bytes=20_000,
        max_upload_request_bytes=60_000,
        max_uploads=3,
    )
    yield running
    running.stop()


@pytest.fixture
def http(client: httpx.Client) -> httpx.Client:
    """The shared stack's client (conftest's ``client``)."""
    return client


def _job_of(http: httpx.Client, location: str) -> dict[str, Any]:
    job_id = location.rsplit("/", 1)[1]
    return wait_for(http, job_id, {"COMPLETED", "ERROR", "ABORTED"})


def _job_ids(http: httpx.Client) -> list[str]:
    page = http.get("/api/v1/jobs", params={"limit": 1000}).json()
    return [job["id"] for job in page["jobs"]]


def test_dali_upload_of_a_votable_is_counted_by_the_task(
    http: httpx.Client, schema: etree.XMLSchema
) -> None:
    data = votable(17)
    # DALI: UPLOAD=name,param:part names the file part.
    answer = http.post(
        "/rows/async",
        data={"UPLOAD": "table,param:t1", "PHASE": "RUN"},
        files={"t1": ("mine.xml", data, "application/x-votable+xml")},
    )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    job = _job_of(http, location)
    assert job["phase"] == "COMPLETED", job
    assert counted(http, job) == 17
    [upload] = job["uploads"]
    assert upload["name"] == "table"
    assert (upload["size"], upload["by_reference"]) == (len(data), False)
    assert upload["mime_type"] == "application/x-votable+xml"
    # Its owner downloads it again from the URL uws:parameters gives.
    document = valid_uws(schema, http.get(location).content)
    [parameter] = document.iter(f"{UWS}parameter")
    assert parameter.get("id") == "table"
    assert parameter.get("byReference") == "true"
    assert parameter.text == f"{location}/uploads/table"
    assert http.get(parameter.text).content == data
    assert http.get(upload["href"]).content == data
    # A plain file field under the task's name works too.
    answer = http.post(
        "/rows/jobs",
        data={"PHASE": "RUN"},
        files={"TABLE": ("t.vot", votable(3), "text/xml")},
    )
    assert counted(http, _job_of(http, answer.headers["location"])) == 3
    # The files die with the job.
    assert http.delete(location).status_code == 303
    assert http.get(f"{location}/uploads/table").status_code == 404


def test_json_multipart_upload_to_async_and_def_tasks(
    http: httpx.Client,
) -> None:
    answer = http.post(
        "/api/v1/jobs/multipart",
        data={"job": '{"task": "rows", "start": true}'},
        files={"table": ("t.vot", votable(5), "application/octet-stream")},
    )
    assert answer.status_code == 201, answer.text
    job = wait_for(http, answer.json()["id"], {"COMPLETED", "ERROR"})
    assert counted(http, job) == 5
    # A guessed type where the client sent none worth keeping.
    assert job["uploads"][0]["mime_type"] == "application/x-votable+xml"
    # A def task (child process) gets its path and ctx.uploads.
    answer = http.post(
        "/api/v1/jobs/multipart?sync=true",
        data={
            "job": '{"task": "lines", "parameters": {"label": "n"}}',
        },
        files={"text": ("a.txt", b"one\ntwo\nthree\n", "text/plain")},
    )
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["phase"] == "COMPLETED", job
    assert http.get(job["results"][0]["href"]).text == "n 3 ['text']"
    # Refused before any job exists: a file the task does not take, a file
    # given as a value, a missing or broken job part.
    before = _job_ids(http)
    file = {"table": ("t", b"x", "text/plain")}
    for data, files, status in [
        ({"job": '{"task": "rows"}'}, {"other": ("o", b"x", "text/x")}, 422),
        ({"job": '{"task": "rows", "parameters": {"table": "x"}}'}, {}, 422),
        ({}, file, 422),
        ({"job": '{"task": "rows", "start": "soon"}'}, file, 422),
        ({"job": "{not json"}, file, 400),
    ]:
        answer = http.post("/api/v1/jobs/multipart", data=data, files=files)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert _job_ids(http) == before


def test_pyvo_sync_query_with_an_uploaded_table(stack: Stack) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    from astropy.table import Table
    from pyvo.dal import TAPService

    # pyvo sends UPLOAD=table,param:table and the table as that part.
    table = Table({"ra": [1.0, 2.0, 3.0, 4.0], "dec": [0.0] * 4})
    results = TAPService(f"{stack.url}/rows").run_sync(
        "SELECT * FROM TAP_UPLOAD.table", uploads={"table": table}
    )
    assert list(results.to_table()["n_rows"]) == [4]


def test_uploads_by_reference_are_fetched_only_from_allowed_hosts(
    fetching: Stack,
    http: httpx.Client,
    remote: tuple[str, dict[str, Any]],
    schema: etree.XMLSchema,
) -> None:
    base, files = remote
    files["/t.vot"] = (200, {}, votable(9))
    files["/moved"] = (302, {"Location": f"{base}/t.vot"}, b"")
    files["/huge"] = (200, {}, b"x" * 30_000)
    url = f"{base}/t.vot"
    # The default: no host is allowed, nothing is created.
    before = _job_ids(http)
    answer = http.post("/rows/jobs", data={"UPLOAD": f"table,{url}"})
    assert answer.status_code == 400
    assert "PHASER_UPLOAD_HOSTS" in answer.text
    assert _job_ids(http) == before
    with httpx.Client(base_url=fetching.url, timeout=30) as client:
        answer = client.post(
            "/rows/jobs", data={"UPLOAD": f"table,{url}", "PHASE": "RUN"}
        )
        location = answer.headers["location"]
        job = _job_of(client, location)
        assert job["phase"] == "COMPLETED", job
        assert counted(client, job) == 9
        [upload] = job["uploads"]
        assert (upload["href"], upload["by_reference"]) == (url, True)
        document = valid_uws(schema, client.get(location).content)
        [parameter] = document.iter(f"{UWS}parameter")
        assert (parameter.get("byReference"), parameter.text) == ("true", url)
        # The JSON API's references; a redirect is not followed, a file
        # over the limit not kept.
        for path, why in [
            ("/moved", "HTTP 302"),
            ("/huge", "larger than 20000 bytes"),
        ]:
            answer = client.post(
                "/api/v1/jobs",
                json={
                    "task": "rows",
                    "uploads": {"table": f"{base}{path}"},
                    "start": True,
                },
            )
            assert answer.status_code == 201, answer.text
            job = wait_for(client, answer.json()["id"], {"ERROR"})
            [error] = job["errors"]
            assert why in error["message"]
            assert error["code"] == "upload_failed"
        # Another host, or another scheme, is refused at the door.
        for bad in ["http://localhost:1/t.vot", f"file://{Path('/etc')}"]:
            answer = client.post(
                "/api/v1/jobs",
                json={"task": "rows", "uploads": {"table": bad}},
            )
            assert answer.status_code == 422, answer.text


def test_upload_limits_refuse_before_anything_is_stored(
    fetching: Stack, tmp_path: Path
) -> None:
    with httpx.Client(base_url=fetching.url, timeout=30) as client:
        before = _job_ids(client)
        cases = [
            # One file over the per-file limit.
            {"table": ("t", b"x" * 20_001, "text/plain")},
            # Files under it, but a request over the per-request limit.
            {f"f{n}": (f"{n}", b"x" * 19_000, "text/plain") for n in range(4)},
        ]
        for files in cases:
            answer = client.post("/echo/jobs", files=files)
            assert answer.status_code == 413, answer.text
        # Four files, each small: over the count limit.
        small = {f"f{n}": (f"{n}", b"x", "text/plain") for n in range(4)}
        answer = client.post("/echo/jobs", files=small)
        assert answer.status_code in {400, 413}, answer.text

        # The same, chunked (no Content-Length): the body limit holds.
        def chunks() -> Iterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="f";'
            yield b' filename="f"\r\n\r\n'
            for _ in range(70):
                yield b"x" * 1000
            yield b"\r\n--b--\r\n"

        answer = client.post(
            "/echo/jobs",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert answer.status_code == 413, answer.text
        assert _job_ids(client) == before
        # No spooled file of a refused request is left behind.
        assert not list(Path(tempfile.gettempdir()).glob("phaser-upload-*"))
        # Within the limits: accepted, and any task without a parameter
        # model takes any upload.
        answer = client.post(
            "/echo/jobs", files={"f": ("f.txt", b"x" * 19_000, "text/plain")}
        )
        assert answer.status_code == 303, answer.text
