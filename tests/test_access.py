"""Identity and ownership: two users and an admin, both dialects, every
endpoint; quotas; request limits; hostile input."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    TERMINAL,
    Stack,
    add_user,
    make_stack,
    wait_for,
    wait_for_file,
)
from phaser.embedded import EmbeddedRedis


@pytest.fixture(scope="module")
def secured(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, str]]]:
    data = tmp_path_factory.mktemp("secured")
    stack = Stack(
        redis_server.url,
        data,
        auth="token",
        max_active_jobs=3,
        max_wait=2,
    )
    tokens = {
        "ann": add_user(stack, "ann"),
        "bob": add_user(stack, "bob"),
        "root": add_user(stack, "root", admin=True),
    }
    stack.start_worker()
    stack.start_frontend()
    yield stack, tokens
    stack.stop()


def _client(stack: Stack, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.url, timeout=30, headers=headers)


def test_user_add_prints_a_token_once_and_stores_only_its_hash(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    stored = (stack.data_dir / "users.json").read_text()
    assert "ann" in stored
    for token in tokens.values():
        assert len(token) >= 40
        assert token not in stored
    assert oct((stack.data_dir / "users.json").stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic !!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()},
        {"Authorization": "Token abc"},
    ],
)
def test_missing_or_wrong_credentials_are_401(
    secured: tuple[Stack, dict[str, str]], headers: dict[str, str]
) -> None:
    stack, _ = secured
    with httpx.Client(base_url=stack.url, headers=headers) as client:
        for answer in (
            client.get("/api/v1/jobs"),
            client.post("/api/v1/jobs", json={"task": "echo"}),
            client.get("/echo/jobs"),
            client.post("/echo/jobs", data={"x": "1"}),
        ):
            assert answer.status_code == 401
            assert "Bearer" in answer.headers["www-authenticate"]
        # Health endpoints stay open for probes.
        assert client.get("/health").status_code == 200


def test_basic_auth_with_token_as_password_works(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with httpx.Client(
        base_url=stack.url, auth=("anything", tokens["ann"])
    ) as client:
        answer = client.post("/echo/jobs", data={"x": "1"})
        assert answer.status_code == 303
        owner = client.get(answer.headers["location"] + "/owner").text
        assert owner == "ann"
        client.delete(answer.headers["location"])


def _requests(job: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request that reads or touches one job, in both dialects."""
    api = f"/api/v1/jobs/{job['id']}"
    uws = f"/echo/jobs/{job['id']}"
    return [
        ("GET", api, {}),
        ("GET", api, {"params": {"wait": 1}}),
        ("GET", f"{api}/events", {}),
        ("GET", f"{api}/results/result", {}),
        ("POST", f"{api}/start", {}),
        ("POST", f"{api}/abort", {}),
        ("PATCH", api, {"json": {"parameters": {"x": "2"}}}),
        ("DELETE", api, {}),
        ("GET", uws, {}),
        ("GET", uws, {"params": {"WAIT": 1}}),
        ("POST", uws, {"data": {"x": "3"}}),
        ("POST", uws, {"data": {"ACTION": "DELETE"}}),
        ("DELETE", uws, {}),
        ("GET", f"{uws}/phase", {}),
        ("POST", f"{uws}/phase", {"data": {"PHASE": "RUN"}}),
        ("GET", f"{uws}/executionduration", {}),
        (
            "POST",
            f"{uws}/executionduration",
            {"data": {"EXECUTIONDURATION": "5"}},
        ),
        ("GET", f"{uws}/destruction", {}),
        (
            "POST",
            f"{uws}/destruction",
            {"data": {"DESTRUCTION": "2030-01-01"}},
        ),
        ("GET", f"{uws}/quote", {}),
        ("GET", f"{uws}/owner", {}),
        ("GET", f"{uws}/error", {}),
        ("GET", f"{uws}/results", {}),
        ("GET", f"{uws}/results/result", {}),
        ("GET", f"{uws}/parameters", {}),
        ("POST", f"{uws}/parameters", {"data": {"x": "4"}}),
    ]


def test_other_users_jobs_are_404_on_every_endpoint(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, tokens["bob"]) as bob,
    ):
        job = ann.post(
            "/api/v1/jobs", json={"task": "echo", "parameters": {"x": "1"}}
        ).json()
        assert job["owner"] == "ann"
        before = ann.get(job["href"]).json()
        for method, url, options in _requests(job):
            answer = bob.request(method, url, **options)
            assert answer.status_code == 404, (method, url, answer.text)
        # Nothing bob sent changed ann's job.
        assert ann.get(job["href"]).json() == before
        # Bob's lists do not show it, in either dialect, with any filter.
        assert job["id"] not in bob.get("/api/v1/jobs").text
        assert (
            job["id"]
            not in bob.get(
                "/api/v1/jobs", params={"phase": "PENDING", "task": "echo"}
            ).text
        )
        assert job["id"] not in bob.get("/echo/jobs").text
        # A bob-only job is indistinguishable: same 404 as a missing one.
        missing = bob.get("/api/v1/jobs/01m80c4v26amk3szxabtvbm5k5").json()
        theirs = bob.get(job["href"]).json()
        assert missing["title"] == theirs["title"]
        # Ann still reaches her job (its event stream would stay open
        # while it is PENDING, so it is not read here).
        assert ann.get(job["href"]).status_code == 200
        assert ann.get(f"/echo/jobs/{job['id']}/owner").text == "ann"
        ann.delete(job["href"])


def test_long_polls_answer_alike_ahead_of_routing_and_through_it(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    # Plain long polls are answered ahead of FastAPI's routing
    # (`WaitFastPath`); with a parameter it does not take (``via=``, which
    # the route ignores) the same request goes through FastAPI. Both
    # answer alike: the job, the owner check, the credentials check.
    stack, tokens = secured
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, tokens["bob"]) as bob,
        _client(stack, None) as nobody,
    ):
        job = ann.post(
            "/api/v1/jobs", json={"task": "echo", "parameters": {"x": "1"}}
        ).json()
        href = job["href"]
        missing = "/api/v1/jobs/01m80c4v26amk3szxabtvbm5k5"
        cases = [
            # Not in the phase waited on: answered at once.
            (ann, href, {"wait": "1", "phase": "QUEUED"}, 200),
            (ann, href, {"wait": "0.2", "phase": "PENDING"}, 200),
            (bob, href, {"wait": "1"}, 404),
            (ann, missing, {"wait": "1"}, 404),
            (nobody, href, {"wait": "1"}, 401),
        ]
        for client, url, params, status in cases:
            fast = client.get(url, params=params)
            routed = client.get(url, params={**params, "via": "routing"})
            assert fast.status_code == routed.status_code == status
            assert fast.content == routed.content, (params, fast.text)
            for header in ("content-type", "www-authenticate"):
                assert fast.headers.get(header) == routed.headers.get(header)
        # Until the end, both ways, once the job has run.
        ann.post(f"{href}/start")
        final = {"wait": "5", "until": "final"}
        fast = ann.get(href, params=final)
        assert fast.json()["phase"] == "COMPLETED"
        assert (
            fast.content == ann.get(href, params={**final, "via": "r"}).content
        )
        # What the fast path leaves to FastAPI's validation.
        # (The job has ended: a valid wait answers at once.)
        assert ann.get(href, params={"wait": "1e1"}).content == fast.content
        assert ann.get(href, params={"wait": "x"}).status_code == 422
        assert ann.get(href, params={"wait": "-1"}).status_code == 422
        assert (
            ann.get(href, params={"wait": "1", "phase": "NOPE"}).status_code
            == 422
        )
        ann.delete(href)


def _alike(answer: httpx.Response) -> object:
    """An answer with what differs between two creations (the job's id,
    times) taken out."""
    if answer.status_code != 201:
        return answer.content
    job_id = answer.json()["id"]
    text = answer.text.replace(job_id, "ID")
    text = re.sub(r'"[0-9-]{10}T[0-9:.]{8,12}Z"', '"T"', text)
    location = answer.headers["location"].replace(job_id, "ID")
    return text, location


def test_creations_answer_alike_ahead_of_routing_and_through_it(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    # Plain JSON creations are answered ahead of FastAPI's routing
    # (`CreateFastPath`); with a query it does not take (``sync=false``,
    # the route's default) the same request goes through FastAPI. Both
    # answer alike: the job, the task's checks, the credentials check;
    # what the model refuses goes to FastAPI's validation either way.
    stack, tokens = secured
    plain = {"task": "echo", "parameters": {"x": "1"}}
    full = {
        **plain,
        "start": True,
        "run_id": "r-1",
        "priority": 7,
        "description": "both ways",
        "execution_duration": 30,
        "retain_after_end": 60,
    }
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, None) as nobody,
    ):
        cases: list[tuple[httpx.Client, object, int]] = [
            (ann, plain, 201),
            (ann, full, 201),
            (ann, {"task": "nope"}, 422),
            (ann, {"task": "sleep", "parameters": {"seconds": "x"}}, 422),
            (ann, {**plain, "priority": 99}, 422),
            (ann, {**plain, "surplus": 1}, 422),
            (ann, [plain], 422),
            (ann, "{not json", 400),
            (nobody, plain, 401),
        ]
        for client, body, status in cases:
            answers = []
            for params in ({}, {"sync": "false"}):
                answer = (
                    client.post(
                        "/api/v1/jobs",
                        params=params,
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                    if isinstance(body, str)
                    else client.post("/api/v1/jobs", params=params, json=body)
                )
                assert answer.status_code == status, (body, answer.text)
                answers.append(answer)
                if status == 201:
                    assert ann.delete(answer.json()["href"]).is_success
            fast, routed = answers
            assert _alike(fast) == _alike(routed), body
            for header in ("content-type", "www-authenticate"):
                assert fast.headers.get(header) == routed.headers.get(header)


def test_uws_creations_answer_alike_ahead_of_routing_and_through_it(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    # The same for UWS forms: with a query (``via``, which the echo task
    # takes as one more parameter) they go through FastAPI's routing.
    stack, tokens = secured
    form = {"content-type": "application/x-www-form-urlencoded"}
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, None) as nobody,
    ):
        cases: list[tuple[httpx.Client, str, str, int]] = [
            (ann, "echo", "X=1", 303),
            (ann, "echo", "x=1&PHASE=RUN&RUNID=r-2&JOBDESCRIPTION=d", 303),
            (ann, "echo", "EXECUTIONDURATION=abc", 400),
            (ann, "sleep", "SECONDS=x", 400),
            (ann, "echo", "PRIORITY=99", 400),
            (ann, "nope", "X=1", 404),
            (nobody, "echo", "X=1", 401),
        ]
        for client, task, body, status in cases:
            answers = []
            for params in ({}, {"via": "routing"}):
                answer = client.post(
                    f"/{task}/jobs", params=params, content=body, headers=form
                )
                assert answer.status_code == status, (body, answer.text)
                answers.append(answer)
            fast, routed = answers
            if status == 303:
                fast_id = fast.headers["location"].rsplit("/", 1)[1]
                routed_id = routed.headers["location"].rsplit("/", 1)[1]
                assert fast.headers["location"].replace(
                    fast_id, "ID"
                ) == routed.headers["location"].replace(routed_id, "ID")
                for job_id in (fast_id, routed_id):
                    job = ann.get(f"/api/v1/jobs/{job_id}").json()
                    assert job["parameters"]["x"] == "1"
                    if "RUNID" in body:
                        assert job["run_id"] == "r-2"
                        assert job["description"] == "d"
                    ann.delete(job["href"])
            else:
                assert fast.content == routed.content, body
            for header in ("content-type", "www-authenticate"):
                assert fast.headers.get(header) == routed.headers.get(header)


def test_admin_reads_and_manages_every_owners_jobs(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, tokens["root"]) as root,
    ):
        job = ann.post(
            "/api/v1/jobs", json={"task": "echo", "parameters": {"y": 1}}
        ).json()
        assert root.get(job["href"]).json()["owner"] == "ann"
        listed = root.get("/api/v1/jobs", params={"owner": "ann"}).json()
        assert job["id"] in [j["id"] for j in listed["jobs"]]
        # Without owner=, an admin lists their own jobs.
        assert job["id"] not in root.get("/api/v1/jobs").text
        assert root.post(f"{job['href']}/start").status_code == 200
        wait_for(root, job["id"], TERMINAL)
        assert root.delete(job["href"]).status_code == 204
        assert ann.get(job["href"]).status_code == 404
    with _client(stack, tokens["bob"]) as bob:
        # owner= is ignored for non-admins: bob sees only his own.
        mine = bob.get("/api/v1/jobs", params={"owner": "ann"}).json()
        assert all(j["owner"] == "bob" for j in mine["jobs"])


def test_active_jobs_quota_refuses_the_next_and_frees_on_finish(
    secured: tuple[Stack, dict[str, str]], tmp_path: Path
) -> None:
    stack, tokens = secured
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    with _client(stack, tokens["bob"]) as bob:
        running = [
            bob.post(
                "/api/v1/jobs",
                json={
                    "task": "mark",
                    "parameters": {"directory": str(evidence), "seconds": 30},
                    "start": True,
                },
            ).json()
            for _ in range(3)
        ]
        refused = bob.post("/api/v1/jobs", json={"task": "echo"})
        assert refused.status_code == 429
        assert "Active jobs limit reached" in refused.json()["detail"]
        uws = bob.post("/echo/jobs", data={"x": "1"})
        assert uws.status_code == 403
        assert "Active jobs limit reached" in uws.text
        # Other users are not affected.
        with _client(stack, tokens["ann"]) as ann:
            other = ann.post("/api/v1/jobs", json={"task": "echo"})
            assert other.status_code == 201
            ann.delete(other.json()["href"])
        for job in running:
            wait_for_file(evidence / f"{job['id']}.started")
        bob.post(f"{running[0]['href']}/abort")
        admitted = bob.post("/api/v1/jobs", json={"task": "echo"})
        assert admitted.status_code == 201
        for job in [*running, admitted.json()]:
            bob.delete(job["href"])


def test_oversized_requests_and_parameters_are_refused(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with _client(stack, tokens["ann"]) as ann:
        before = ann.get("/api/v1/jobs").json()
        huge = ann.post(
            "/api/v1/jobs",
            json={"task": "echo", "parameters": {"x": "a" * 2_000_000}},
        )
        assert huge.status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(300):
                yield b"x=" + b"a" * 4096 + b"&"

        chunked = ann.post(
            "/echo/jobs",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert chunked.status_code == 413
        many = ann.post(
            "/api/v1/jobs",
            json={
                "task": "echo",
                "parameters": {f"p{n}": n for n in range(101)},
            },
        )
        assert many.status_code == 422
        assert "Too many parameters" in many.json()["detail"]
        big = ann.post("/echo/jobs", data={"x": "b" * (70 * 1024)})
        assert big.status_code == 400
        assert "too large" in big.text
        assert ann.get("/api/v1/jobs").json() == before


def test_auth_none_refuses_a_public_bind(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PHASER_")
    }
    env["PHASER_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "phaser", "serve", "--host", "0.0.0.0"],  # noqa: S104
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "PHASER_AUTH=none" in done.stderr


def test_header_mode_trusts_the_proxy_header(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = make_stack(
        redis_server,
        tmp_path / "data",
        workers=0,
        auth="header",
        admin_users="boss",
        max_stored_jobs=2,
    )
    try:
        with httpx.Client(base_url=stack.url) as client:
            assert client.get("/api/v1/jobs").status_code == 401
            as_ann = {"X-Auth-Request-User": "ann"}
            job = client.post(
                "/api/v1/jobs", json={"task": "echo"}, headers=as_ann
            ).json()
            assert job["owner"] == "ann"
            as_bob = {"X-Auth-Request-User": "bob"}
            assert client.get(job["href"], headers=as_bob).status_code == 404
            as_boss = {"X-Auth-Request-User": "boss"}
            assert client.get(job["href"], headers=as_boss).status_code == 200
            bad = {"X-Auth-Request-User": "a b\tc"}
            assert client.get("/api/v1/jobs", headers=bad).status_code == 401
            # Stored-jobs quota: ann may keep two jobs in any phase.
            second = client.post(
                "/api/v1/jobs", json={"task": "echo"}, headers=as_ann
            )
            assert second.status_code == 201
            third = client.post(
                "/api/v1/jobs", json={"task": "echo"}, headers=as_ann
            )
            assert third.status_code == 429
            assert "Stored jobs limit reached" in third.json()["detail"]
            client.delete(second.json()["href"], headers=as_ann)
            assert (
                client.post(
                    "/api/v1/jobs", json={"task": "echo"}, headers=as_ann
                ).status_code
                == 201
            )
    finally:
        stack.stop()


def test_results_download_safely_with_head_and_ranges(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with _client(stack, tokens["ann"]) as ann:
        job = ann.post(
            "/api/v1/jobs",
            json={
                "task": "echo",
                "parameters": {"k": "v" * 100},
                "start": True,
            },
        ).json()
        done = wait_for(ann, job["id"], TERMINAL)
        for url in (
            done["results"][0]["href"],
            f"/echo/jobs/{job['id']}/results/result",
        ):
            full = ann.get(url)
            assert full.status_code == 200
            assert full.headers["x-content-type-options"] == "nosniff"
            assert full.headers["content-disposition"] == (
                f'attachment; filename="{job["id"]}-result.json"'
            )
            head = ann.head(url)
            assert head.status_code == 200
            assert head.content == b""
            assert head.headers["content-length"] == str(len(full.content))
            part = ann.get(url, headers={"Range": "bytes=2-9"})
            assert part.status_code == 206
            assert part.content == full.content[2:10]
        for result_id in ("..%2f..%2fusers.json", "%2e%2e", "1-result", ".x"):
            answer = ann.get(f"/api/v1/jobs/{job['id']}/results/{result_id}")
            assert answer.status_code == 404
        ann.delete(job["href"])


#: Hostile form bodies for the UWS creation and change endpoints.
NASTY_FORMS: list[tuple[str, bytes, str]] = [
    ("invalid utf-8", b"x=\xff\xfe\xfd", "application/x-www-form-urlencoded"),
    ("bad escapes", b"x=%zz%&&=&%%%", "application/x-www-form-urlencoded"),
    ("null bytes", b"x=a%00b&RUNID=%00", "application/x-www-form-urlencoded"),
    (
        "negative duration",
        b"EXECUTIONDURATION=-5",
        "application/x-www-form-urlencoded",
    ),
    (
        "enormous duration",
        b"EXECUTIONDURATION=" + b"9" * 400,
        "application/x-www-form-urlencoded",
    ),
    (
        "year 0",
        b"DESTRUCTION=0000-01-01T00:00:00Z",
        "application/x-www-form-urlencoded",
    ),
    (
        "year 99999",
        b"DESTRUCTION=99999-01-01T00:00:00Z",
        "application/x-www-form-urlencoded",
    ),
    (
        "conflicting phases",
        b"PHASE=RUN&PHASE=ABORT",
        "application/x-www-form-urlencoded",
    ),
    ("bad phase", b"PHASE=%F0%9F%92%A5", "application/x-www-form-urlencoded"),
    (
        "broken multipart",
        b"--xx\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xx--",
        "multipart/form-data; boundary=xx",
    ),
    ("multipart no boundary", b"garbage", "multipart/form-data"),
    (
        "binary multipart value",
        b"--b\r\nContent-Disposition: form-data;"
        b' name="x"; filename="f"\r\n\r\n\xff\xfe\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(body, kind) for _, body, kind in NASTY_FORMS],
    ids=[name for name, _, _ in NASTY_FORMS],
)
def test_nasty_forms_get_a_4xx_or_a_clean_success_and_never_a_5xx(
    secured: tuple[Stack, dict[str, str]], body: bytes, content_type: str
) -> None:
    stack, tokens = secured
    with _client(stack, tokens["bob"]) as bob:
        pending = bob.post("/sleep/jobs", data={"seconds": "1"})
        job_url = pending.headers["location"]
        before = bob.get(job_url).content
        for url in ("/echo/jobs", job_url, f"{job_url}/parameters"):
            answer = bob.post(
                url, content=body, headers={"content-type": content_type}
            )
            assert answer.status_code < 500, (url, answer.text)
            assert answer.status_code in (303, 400, 403), (url, answer.text)
            if answer.status_code == 303 and url == "/echo/jobs":
                bob.delete(answer.headers["location"])
            elif url != "/echo/jobs" and answer.status_code != 303:
                assert answer.text  # a message, and the job unchanged
                assert bob.get(job_url).content == before
        bob.delete(job_url)


def test_result_store_never_leaves_its_directory(tmp_path: Path) -> None:
    from phaser.storage.results import LocalResultStore

    store = LocalResultStore(tmp_path / "results")
    stored = store.put_bytes("job1", "1-result", b"data")
    assert store.path(stored.key) == tmp_path / "results" / "job1" / "1-result"
    secret = tmp_path / "secret"
    secret.write_text("secret")
    (tmp_path / "results" / "job1" / "1-link").symlink_to(secret)
    assert store.path("job1/1-link") is None
    for key in ("../secret", "job1/../../secret", "job1/", "/etc/passwd", ""):
        assert store.path(key) is None
    for job_id, result_id in (("..", "x"), ("job1", "../x"), ("job1", "")):
        with pytest.raises(ValueError, match="invalid"):
            store.put_bytes(job_id, result_id, b"x")


def test_stats_are_the_callers_own_and_admins_may_ask_for_anyones(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, tokens["bob"]) as bob,
        _client(stack, tokens["root"]) as root,
    ):
        job = ann.post(
            "/api/v1/jobs", json={"task": "echo", "run_id": "stats"}
        ).json()
        try:
            mine = ann.get("/api/v1/stats").json()
            assert mine["owner"] == "ann"
            assert mine["counts"]["echo"]["PENDING"] >= 1
            # Another user asking for ann's counts gets their own.
            theirs = bob.get("/api/v1/stats", params={"owner": "ann"}).json()
            assert theirs["owner"] == "bob"
            assert (
                theirs["counts"] == bob.get("/api/v1/stats").json()["counts"]
            )
            admin = root.get("/api/v1/stats", params={"owner": "ann"}).json()
            assert admin["owner"] == "ann"
            assert admin["counts"] == mine["counts"]
            assert httpx.get(f"{stack.url}/api/v1/stats").status_code == 401
        finally:
            ann.delete(job["href"])


def test_dependencies_and_parents_are_the_callers_own(
    secured: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = secured
    with (
        _client(stack, tokens["ann"]) as ann,
        _client(stack, tokens["bob"]) as bob,
    ):
        mine = ann.post(
            "/api/v1/jobs", json={"task": "echo", "parameters": {}}
        ).json()
        for field in ({"after": [mine["id"]]}, {"parent_id": mine["id"]}):
            refused = bob.post("/api/v1/jobs", json={"task": "echo", **field})
            assert refused.status_code == 404, refused.text
            # Indistinguishable from a job that does not exist.
            assert "no job" in refused.json()["detail"]
        # Neither job changed: nothing waits for ann's, nothing is its child.
        listed = ann.get(
            "/api/v1/jobs", params={"parent_id": mine["id"]}
        ).json()["jobs"]
        assert listed == []
        ann.delete(f"/api/v1/jobs/{mine['id']}")
