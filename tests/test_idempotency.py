"""Idempotency keys on creation: the same key gets the same job, also when
requests race; the same key with another request is refused; keys are per
owner and expire. Real server, real Redis."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Stack, make_stack, wait_until
from phaser.client import Client
from phaser.embedded import EmbeddedRedis

HEADER = "X-Auth-Request-User"


@pytest.fixture(scope="module")
def keyed(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Header auth (owners by name), keys kept 2 s."""
    running = make_stack(
        redis_server,
        tmp_path_factory.mktemp("keyed"),
        auth="header",
        idempotency_window=2,
    )
    yield running
    running.stop()


def _owner(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url,
        timeout=30,
        headers={HEADER: f"u{uuid.uuid4().hex[:10]}"},
    )


def _ids(http: httpx.Client) -> list[str]:
    page = http.get("/api/v1/jobs", params={"limit": 1000}).json()
    return [job["id"] for job in page["jobs"]]


def _body(**parameters: Any) -> dict[str, Any]:
    return {"task": "echo", "parameters": parameters}


def test_a_repeated_creation_answers_the_first_job(
    client: httpx.Client,
) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = client.post("/api/v1/jobs", json=_body(n=1), headers=key)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = client.post("/api/v1/jobs", json=_body(n=1), headers=key)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    # The key as an RFC 8941 string, and as a body field: the same key.
    quoted = {"Idempotency-Key": f'"{key["Idempotency-Key"]}"'}
    assert (
        client.post("/api/v1/jobs", json=_body(n=1), headers=quoted).json()[
            "id"
        ]
        == first.json()["id"]
    )
    field = {**_body(n=1), "idempotency_key": key["Idempotency-Key"]}
    assert (
        client.post("/api/v1/jobs", json=field).json()["id"]
        == (first.json()["id"])
    )
    # Another request with the key: refused, naming the job; nothing made.
    before = _ids(client)
    other = client.post("/api/v1/jobs", json=_body(n=2), headers=key)
    assert other.status_code == 409
    problem = other.json()
    assert problem["type"] == "urn:phaser:problem:idempotency-key-reused"
    assert first.json()["id"] in problem["detail"]
    # Header and field disagreeing: the header wins.
    mixed = {**_body(n=1), "idempotency_key": "another"}
    mixed_answer = client.post("/api/v1/jobs", json=mixed, headers=key)
    assert mixed_answer.json()["id"] == first.json()["id"]
    # Keys that are no keys.
    for bad in ["", "x" * 256, "tab\there", "é"]:
        answer = client.post(
            "/api/v1/jobs",
            json=_body(),
            headers={b"Idempotency-Key": bad.encode()},
        )
        assert answer.status_code == 422, (bad, answer.text)
    assert _ids(client) == before


def test_two_hundred_racing_creations_make_one_job(
    client: httpx.Client,
) -> None:
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    run_id = f"race-{uuid.uuid4().hex[:8]}"
    body = {**_body(n=7), "run_id": run_id, "start": True}

    def create(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=client.base_url, timeout=60) as http:
            answer = http.post("/api/v1/jobs", json=body, headers=key)
            return answer.status_code, answer.json()["id"]

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(create, range(200)))
    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: 1, 200: 199}, statuses
    assert len({job_id for _, job_id in answers}) == 1
    listed = client.get("/api/v1/jobs", params={"run_id": run_id}).json()
    assert [job["id"] for job in listed["jobs"]] == [answers[0][1]]


def test_uws_and_dali_honour_the_key(client: httpx.Client) -> None:
    key = {"Idempotency-Key": f"uws-{uuid.uuid4()}"}
    first = client.post("/echo/jobs", data={"x": "1"}, headers=key)
    assert first.status_code == 303
    again = client.post("/echo/async", data={"x": "1"}, headers=key)
    assert again.status_code == 303
    job_id = first.headers["location"].rsplit("/", 1)[1]
    assert again.headers["location"].rsplit("/", 1)[1] == job_id
    other = client.post("/echo/jobs", data={"x": "2"}, headers=key)
    assert other.status_code == 400
    assert "used for a different request" in other.text
    long = {"Idempotency-Key": "k" * 256}
    bad = client.post("/echo/jobs", data={}, headers=long)
    assert bad.status_code == 400


def test_keys_are_per_owner_expire_and_die_with_their_job(
    keyed: Stack,
) -> None:
    key = {"Idempotency-Key": "the-same-key"}
    with _owner(keyed) as alice, _owner(keyed) as bob:
        mine = alice.post("/api/v1/jobs", json=_body(), headers=key).json()
        theirs = bob.post("/api/v1/jobs", json=_body(), headers=key).json()
        assert mine["id"] != theirs["id"]
        # Deleting the job frees its key.
        assert alice.delete(f"/api/v1/jobs/{mine['id']}").status_code == 204
        fresh = alice.post("/api/v1/jobs", json=_body(), headers=key)
        assert fresh.status_code == 201
        # After the window (2 s here) the key makes a new job.
        wait_until(
            lambda: (
                bob.post("/api/v1/jobs", json=_body(), headers=key).status_code
                == 201
            ),
            timeout=10,
        )
        assert len(_ids(bob)) == 2


def test_a_repeated_upload_keeps_one_copy_and_the_client_retries_safely(
    stack: Stack, client: httpx.Client
) -> None:
    results = stack.data_dir / "results"
    before = {p.name for p in results.iterdir()} if results.exists() else set()
    key = {"Idempotency-Key": f"file-{uuid.uuid4()}"}
    made = [
        client.post(
            "/api/v1/jobs/multipart",
            data={"job": '{"task": "lines"}'},
            files={"text": ("t.txt", b"a\nb\n", "text/plain")},
            headers=key,
        )
        for _ in range(3)
    ]
    assert [m.status_code for m in made] == [201, 200, 200]
    job_id = made[0].json()["id"]
    assert {m.json()["id"] for m in made} == {job_id}
    # The repeats' files were not kept beside the first job's.
    after = {p.name for p in results.iterdir()} - before
    assert after - {".scratch"} == {job_id}
    # The client sends a key with every creation; the same key twice is
    # the same job.
    with Client(stack.url) as api:
        one = api.submit(
            "echo", {"a": 1}, idempotency_key="client-key-" + job_id
        )
        two = api.submit(
            "echo", {"a": 1}, idempotency_key="client-key-" + job_id
        )
        assert one.id == two.id
        assert api.submit("echo", {"a": 1}).id != one.id
    assert Path(results / job_id).is_dir()
