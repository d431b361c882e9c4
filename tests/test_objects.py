"""Results in an S3-compatible object store (issue 18, part 1), against
a real S3 server on loopback (moto in server mode, its own process):
every size class streamed in and out with bounded memory, downloads in
both dialects with the owner check, presigned redirects, deletion with
the job, archive mode, uploads in the same store, and the sweep of files
a crash left without their job."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
from obstore.store import S3Store
from redis import Redis

from conftest import Stack, wait_for, wait_until
from phaser.client import Client
from phaser.embedded import EmbeddedRedis, die_with_parent, free_port
from phaser.storage.keys import KeyLayout

BUCKET = "phaser-results"

_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


class S3Server:
    """moto's S3 server as a process on a loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Gone with the test run, however it ends.
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        # moto takes an unsigned request to make a bucket.
        made = httpx.put(f"{self.url}/{BUCKET}")
        assert made.status_code == 200, made.text
        self.store = S3Store(
            BUCKET,
            endpoint=self.url,
            access_key_id="testing",
            secret_access_key="testing",
            region="us-east-1",
            client_options={"allow_http": True},
        )

    def keys(self, prefix: str) -> list[str]:
        """The keys in the bucket under a prefix, as the bucket lists them
        (not as phaser says)."""
        return sorted(
            meta["path"]
            for batch in obstore.list(self.store, prefix=prefix)
            for meta in batch
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


def _stack(
    redis_server: EmbeddedRedis, s3: S3Server, path: Path, **settings: Any
) -> tuple[Stack, str]:
    """A frontend and a worker with results under a prefix of their own;
    the prefix."""
    prefix = f"run-{uuid.uuid4().hex[:8]}"
    stack = Stack(
        redis_server.url,
        path,
        results_url=f"s3://{BUCKET}/{prefix}",
        auth="header",
        heartbeat_interval=0.2,
        stall_timeout=1.5,
        maintenance_interval=0.2,
        **settings,
    )
    stack.env.update(_CREDENTIALS)
    stack.env["AWS_ENDPOINT_URL"] = s3.url
    stack.start_worker()
    stack.start_frontend()
    return stack, prefix


@pytest.fixture(scope="module")
def stored(
    redis_server: EmbeddedRedis,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, str]]:
    stack, prefix = _stack(
        redis_server, s3, tmp_path_factory.mktemp("objects")
    )
    yield stack, prefix
    stack.stop()


def _client(stack: Stack, user: str = "alice") -> httpx.Client:
    return httpx.Client(
        base_url=stack.url,
        timeout=60,
        headers={"X-Auth-Request-User": user},
    )


def _peak_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    [line] = [x for x in status.splitlines() if x.startswith("VmHWM")]
    return int(line.split()[1])


def _blob(http: httpx.Client, evidence: Path, size: int) -> dict[str, Any]:
    answer = http.post(
        "/api/v1/jobs",
        json={
            "task": "blob",
            "parameters": {"directory": str(evidence), "size": size},
            "start": True,
        },
    )
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = wait_for(http, answer.json()["id"], {"COMPLETED"})
    return job


@pytest.mark.parametrize("size", [0, 1024, 50 * 1024 * 1024])
def test_every_size_streams_in_and_out_with_bounded_memory(
    stored: tuple[Stack, str], s3: S3Server, evidence: Path, size: int
) -> None:
    stack, prefix = stored
    assert stack.frontend is not None
    [worker] = stack.workers
    worker_before = _peak_kb(worker.pid)
    with _client(stack) as http:
        job = _blob(http, evidence, size)
        [result] = job["results"]
        assert result["size"] == size
        # The object is in the bucket, under the job.
        keys = s3.keys(f"{prefix}/{job['id']}/")
        assert keys == [f"{prefix}/{job['id']}/1-result"]
        before = _peak_kb(stack.frontend.pid)
        received = 0
        digest = bytearray(256)
        with http.stream("GET", result["href"]) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-length"] == str(size)
            for chunk in answer.iter_bytes():
                if received == 0 and chunk:
                    digest[: min(256, len(chunk))] = chunk[:256]
                received += len(chunk)
        assert received == size
        if size:
            assert bytes(digest[: min(size, 256)]) == bytes(
                range(min(size, 256))
            )
        # Neither the task's process (which stored it) nor the frontend
        # (which streamed it) held the file in memory.
        peak = int((evidence / f"{job['id']}.peak").read_text())
        assert peak < 120 * 1024, f"task process peaked at {peak} kB"
        grown = _peak_kb(stack.frontend.pid) - before
        assert grown < 30 * 1024, f"frontend grew {grown} kB"
        # The worker only relayed the result's key.
        worker_grown = _peak_kb(worker.pid) - worker_before
        assert worker_grown < 30 * 1024, f"worker grew {worker_grown} kB"
        print(
            f"{size} B: task process peak {peak} kB, frontend +{grown} kB,"
            f" worker +{worker_grown} kB"
        )
        # UWS serves the same bytes.
        uws = http.get(f"/blob/jobs/{job['id']}/results/result")
        assert uws.status_code == 200
        assert len(uws.content) == size


def test_downloads_check_the_owner_in_both_dialects(
    stored: tuple[Stack, str], evidence: Path
) -> None:
    stack, _ = stored
    with _client(stack) as alice, _client(stack, "bob") as bob:
        job = _blob(alice, evidence, 100)
        for path in (
            f"/api/v1/jobs/{job['id']}/results/result",
            f"/blob/jobs/{job['id']}/results/result",
        ):
            assert alice.get(path).status_code == 200
            assert bob.get(path).status_code == 404


def test_uploads_live_in_the_same_store(
    stored: tuple[Stack, str], s3: S3Server
) -> None:
    stack, prefix = stored
    with _client(stack) as http:
        answer = http.post(
            "/lines/jobs",
            data={"PHASE": "RUN"},
            files={"TEXT": ("t.txt", b"a\nb\nc\n", "text/plain")},
        )
        assert answer.status_code == 303, answer.text
        job_id = answer.headers["location"].rsplit("/", 1)[1]
        job = wait_for(http, job_id, {"COMPLETED", "ERROR"})
        assert job["phase"] == "COMPLETED", job
        # The worker fetched the upload from the bucket for the task.
        result = http.get(job["results"][0]["href"]).text
        assert result.startswith("lines 3 ")
        keys = s3.keys(f"{prefix}/{job_id}/")
        assert any("upload" in key for key in keys), keys
        assert http.get(job["uploads"][0]["href"]).content == b"a\nb\nc\n"


def test_deleting_a_job_deletes_its_objects(
    stored: tuple[Stack, str], s3: S3Server, evidence: Path
) -> None:
    stack, prefix = stored
    with _client(stack) as http:
        job = _blob(http, evidence, 10)
        assert s3.keys(f"{prefix}/{job['id']}/")
        assert http.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
        assert s3.keys(f"{prefix}/{job['id']}/") == []


def test_presigned_redirects_after_the_owner_check(
    redis_server: EmbeddedRedis, s3: S3Server, tmp_path: Path, evidence: Path
) -> None:
    stack, _ = _stack(redis_server, s3, tmp_path / "data", results_redirect=1)
    try:
        with _client(stack) as alice, _client(stack, "bob") as bob:
            job = _blob(alice, evidence, 2048)
            for path in (
                f"/api/v1/jobs/{job['id']}/results/result",
                f"/blob/jobs/{job['id']}/results/result",
            ):
                answer = alice.get(path)
                assert answer.status_code == 307
                location = answer.headers["location"]
                assert location.startswith(s3.url)
                assert "X-Amz-Signature=" in location
                assert "X-Amz-Expires=300" in location
                fetched = httpx.get(location)
                assert fetched.status_code == 200
                assert len(fetched.content) == 2048
                # Another user gets no URL at all.
                assert bob.get(path).status_code == 404
        # The Python client follows the redirect.
        with Client(stack.url, user="alice") as client:
            assert len(client.result(job["id"])) == 2048
    finally:
        stack.stop()


def test_archive_mode_keeps_the_record_and_deletes_the_objects(
    redis_server: EmbeddedRedis, s3: S3Server, tmp_path: Path, evidence: Path
) -> None:
    stack, prefix = _stack(
        redis_server, s3, tmp_path / "data", destruction_mode="archive"
    )
    try:
        with _client(stack) as http:
            soon = datetime.now(tz=UTC) + timedelta(seconds=3)
            answer = http.post(
                "/api/v1/jobs",
                json={
                    "task": "blob",
                    "parameters": {"directory": str(evidence), "size": 5},
                    "start": True,
                    "destruction_time": soon.isoformat(),
                },
            )
            job_id = answer.json()["id"]
            wait_for(http, job_id, {"COMPLETED"})
            assert s3.keys(f"{prefix}/{job_id}/")
            archived = wait_for(http, job_id, {"ARCHIVED"}, timeout=15)
            assert archived["results"] == []
            assert s3.keys(f"{prefix}/{job_id}/") == []
    finally:
        stack.stop()


def test_files_a_crash_left_without_their_job_are_swept(
    redis_server: EmbeddedRedis, s3: S3Server, tmp_path: Path, evidence: Path
) -> None:
    stack, prefix = _stack(
        redis_server, s3, tmp_path / "data", orphan_sweep_interval=1
    )
    try:
        with _client(stack) as http:
            kept = _blob(http, evidence, 10)
            orphan = _blob(http, evidence, 10)
        # A crash between deleting the record and deleting the files:
        # the record is gone, the objects are not.
        redis = Redis.from_url(redis_server.url)
        layout = KeyLayout(stack.env["PHASER_KEY_PREFIX"])
        assert redis.delete(layout.record(orphan["id"])) == 1
        redis.close()
        assert s3.keys(f"{prefix}/{orphan['id']}/")
        wait_until(lambda: s3.keys(f"{prefix}/{orphan['id']}/") == [], 15)
        # The job that exists keeps its files.
        assert s3.keys(f"{prefix}/{kept['id']}/")
    finally:
        stack.stop()
