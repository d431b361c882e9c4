"""Bad input gets a clear 4xx and changes nothing."""

from __future__ import annotations

import httpx

from conftest import TERMINAL, create_job, wait_for


def _problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict = answer.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def _snapshot(client: httpx.Client) -> list[dict]:
    jobs: list[dict] = client.get(
        "/api/v1/jobs", params={"limit": 1000}
    ).json()["jobs"]
    return jobs


def test_unknown_task_is_422_naming_the_field(client: httpx.Client) -> None:
    before = _snapshot(client)
    body = _problem(
        client.post("/api/v1/jobs", json={"task": "nope", "parameters": {}}),
        422,
    )
    assert "nope" in body["detail"]
    assert body["errors"][0]["field"] == "task"
    assert _snapshot(client) == before


def test_invalid_parameters_are_422_naming_the_field(
    client: httpx.Client,
) -> None:
    before = _snapshot(client)
    body = _problem(
        client.post(
            "/api/v1/jobs",
            json={"task": "sleep", "parameters": {"seconds": "soon"}},
        ),
        422,
    )
    assert body["errors"][0]["field"] == "parameters.seconds"
    assert "parameters.seconds" in body["detail"]
    body = _problem(
        client.post(
            "/api/v1/jobs",
            json={"task": "cone", "parameters": {"ra": 10}},
        ),
        422,
    )
    fields = {e["field"] for e in body["errors"]}
    assert {"parameters.dec", "parameters.radius"} <= fields
    assert _snapshot(client) == before


def test_malformed_and_mistyped_bodies_are_4xx(client: httpx.Client) -> None:
    before = _snapshot(client)
    _problem(
        client.post(
            "/api/v1/jobs",
            content=b'{"task": "echo",',
            headers={"content-type": "application/json"},
        ),
        400,
    )
    _problem(
        client.post(
            "/api/v1/jobs",
            content=b"\xff\xfe not utf-8",
            headers={"content-type": "application/json"},
        ),
        400,
    )
    body = _problem(
        client.post("/api/v1/jobs", json={"task": "echo", "bogus": 1}), 422
    )
    assert body["errors"][0]["field"] == "bogus"
    body = _problem(
        client.post(
            "/api/v1/jobs", json={"task": "echo", "execution_duration": -5}
        ),
        422,
    )
    assert body["errors"][0]["field"] == "execution_duration"
    _problem(client.post("/api/v1/jobs", json=["task", "echo"]), 422)
    _problem(
        client.post(
            "/api/v1/jobs",
            json={"task": "echo", "destruction_time": "tomorrow"},
        ),
        422,
    )
    assert _snapshot(client) == before


def test_unknown_job_is_404(client: httpx.Client) -> None:
    for job_id in ("01m80c4v26amk3szxabtvbm5k5", "no-such-job", "x" * 300):
        _problem(client.get(f"/api/v1/jobs/{job_id}"), 404)
        _problem(client.post(f"/api/v1/jobs/{job_id}/start"), 404)
        _problem(client.post(f"/api/v1/jobs/{job_id}/abort"), 404)
        _problem(client.delete(f"/api/v1/jobs/{job_id}"), 404)
        _problem(client.get(f"/api/v1/jobs/{job_id}/events"), 404)
        _problem(client.get(f"/api/v1/jobs/{job_id}/results/result"), 404)
        _problem(
            client.patch(f"/api/v1/jobs/{job_id}", json={"parameters": {}}),
            404,
        )


def test_illegal_transitions_are_409_and_change_nothing(
    client: httpx.Client,
) -> None:
    job = create_job(client, "echo", {"a": 1}, start=True)
    done = wait_for(client, job["id"], TERMINAL)
    assert done["phase"] == "COMPLETED"
    body = _problem(client.post(f"/api/v1/jobs/{job['id']}/start"), 409)
    assert "COMPLETED" in body["detail"]
    _problem(client.post(f"/api/v1/jobs/{job['id']}/abort"), 409)
    _problem(
        client.patch(
            f"/api/v1/jobs/{job['id']}", json={"parameters": {"a": 2}}
        ),
        409,
    )
    _problem(
        client.patch(
            f"/api/v1/jobs/{job['id']}", json={"execution_duration": 5}
        ),
        409,
    )
    assert client.get(f"/api/v1/jobs/{job['id']}").json() == done


def test_unknown_result_is_404(client: httpx.Client) -> None:
    job = create_job(client, "echo", {}, start=True)
    wait_for(client, job["id"], TERMINAL)
    # (A literal ".." would be resolved by the client before sending.)
    for result_id in ("other", "%2e%2e", "..%2f..%2fpasswd", ".result"):
        answer = client.get(f"/api/v1/jobs/{job['id']}/results/{result_id}")
        assert answer.status_code == 404


def test_bad_list_queries_are_4xx(client: httpx.Client) -> None:
    _problem(client.get("/api/v1/jobs", params={"phase": "RUNNING"}), 422)
    _problem(client.get("/api/v1/jobs", params={"limit": 0}), 422)
    _problem(client.get("/api/v1/jobs", params={"limit": "ten"}), 422)
    _problem(client.get("/api/v1/jobs", params={"after": "yesterday"}), 422)
    # The schema gives the cursor's pattern: a violation is a 422 like any.
    _problem(client.get("/api/v1/jobs", params={"cursor": "../../x"}), 422)
    _problem(client.get("/api/v1/jobs/whatever", params={"wait": -1}), 422)
