"""The Python client and the ``phaser jobs`` CLI against a real server
(real Redis, real worker)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Stack, make_stack, run_phaser, wait_until
from phaser.client import (
    APIError,
    AsyncClient,
    Client,
    Job,
    JobAborted,
    JobFailed,
    RetryPolicy,
    WaitTimeout,
)
from phaser.embedded import EmbeddedRedis, find_redis_server


@pytest.fixture
def api(stack: Stack) -> Iterator[Client]:
    with Client(stack.url) as client:
        yield client


def test_submit_wait_result_and_download(api: Client, tmp_path: Path) -> None:
    job = api.submit("sleep", {"seconds": 0.5}, run_id="client")
    assert job.phase.value == "QUEUED"
    done = job.wait(timeout=30)
    assert done.phase.value == "COMPLETED"
    assert done.raise_for_error() is done
    assert done.result() == b"slept 0.5 s"
    assert done.progress.percent == 100
    [path] = done.download(tmp_path / "out")
    assert path.read_bytes() == b"slept 0.5 s"
    assert api.get(job.id).run_id == "client"


def test_failed_and_aborted_jobs_raise_with_the_servers_message(
    api: Client,
) -> None:
    failed = api.submit("fail", {"message": "as asked"}).wait(timeout=30)
    with pytest.raises(JobFailed, match="as asked") as caught:
        failed.raise_for_error()
    assert caught.value.job.phase.value == "ERROR"
    running = api.submit("sleep", {"seconds": 30})
    aborted = api.abort(running.id)
    with pytest.raises(JobAborted):
        aborted.raise_for_error()
    api.delete(running.id)
    with pytest.raises(APIError) as missing:
        api.get(running.id)
    assert missing.value.status == 404


def test_refusals_keep_status_detail_and_field_errors(api: Client) -> None:
    with pytest.raises(APIError) as caught:
        api.submit("sleep", {"secs": 2})
    assert caught.value.status == 422
    assert "secs" in caught.value.detail
    assert caught.value.errors == [
        {"field": "parameters.secs", "message": "unknown parameter"}
    ]


def test_wait_times_out_and_pending_jobs_update(api: Client) -> None:
    job = api.submit("sleep", {"seconds": 5}, start=False)
    with pytest.raises(WaitTimeout) as caught:
        api.wait(job.id, timeout=0.5)
    assert caught.value.job.phase.value == "PENDING"
    changed = api.update(job.id, parameters={"seconds": 0.1})
    assert changed.parameters == {"seconds": 0.1}
    assert api.start(job.id).phase.value == "QUEUED"
    assert api.wait(job.id, timeout=30).phase.value == "COMPLETED"


def test_jobs_iterates_every_page(api: Client) -> None:
    run = f"pages-{os.getpid()}"
    made = [api.submit("echo", {"n": n}, run_id=run).id for n in range(7)]
    listed = [job.id for job in api.jobs(run_id=run, page_size=2)]
    assert listed == list(reversed(made))
    echo = list(api.jobs(task="echo", run_id=run, phase=["QUEUED"]))
    assert {job.id for job in echo} <= set(made)


def test_events_arrive_as_typed_events(api: Client) -> None:
    # Progress at 1 s, a second before the end (a report just before the
    # end may be read together with the final phase, as one change).
    job = api.submit("sleep", {"seconds": 2})
    events = list(job.events())
    assert events[0].kind == "job"
    assert events[-1].kind == "phase"
    assert events[-1].job is not None
    assert events[-1].job.phase.value == "COMPLETED"
    assert any(event.kind == "progress" for event in events)


def test_tasks_with_their_schemas(api: Client) -> None:
    tasks = {task.name: task for task in api.tasks()}
    assert "seconds" in tasks["sleep"].parameters_schema["properties"]


def test_async_client_has_the_same_methods(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.url) as api:
            job = await api.submit("sleep", {"seconds": 0.3})
            done = await job.wait(timeout=30)
            assert done.phase.value == "COMPLETED"
            assert await done.result() == b"slept 0.3 s"
            run = f"async-{os.getpid()}"
            made = [
                (await api.submit("echo", {}, run_id=run, start=False)).id
                for _ in range(3)
            ]
            listed = [j.id async for j in api.jobs(run_id=run, page_size=1)]
            assert listed == list(reversed(made))
            slow = await api.submit("sleep", {"seconds": 0.5})
            kinds = [event.kind async for event in slow.events()]
            assert kinds[0] == "job"
            assert kinds[-1] == "phase"
            assert (await api.start(made[0])).phase.value == "QUEUED"
            failed = await (await api.submit("fail", {})).wait(timeout=30)
            with pytest.raises(JobFailed):
                failed.raise_for_error()
            aborted = await api.abort(made[1])
            assert aborted.phase.value == "ABORTED"
            await api.delete(made[2])
            with pytest.raises(APIError):
                await api.get(made[2])

    asyncio.run(scenario())


def test_503_while_redis_restarts_is_retried(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", find_redis_server())
    redis.start()
    stack = make_stack(redis, tmp_path / "data")
    try:
        with Client(
            stack.url, retry=RetryPolicy(attempts=20, max_delay=1)
        ) as api:
            job = api.submit("echo", {"keep": 1}).wait(timeout=30)
            redis.stop()  # AOF flushed: the job survives
            answers: list[object] = []
            asking = threading.Thread(
                target=lambda: answers.append(api.get(job.id))
            )
            asking.start()  # 503s first, then the job
            wait_until(lambda: _count_503(stack) > 0)
            # Started on this (the main) thread: a child started on a
            # thread that ends gets SIGTERM (die_with_parent).
            redis.start()
            asking.join(60)
            [again] = answers
            assert isinstance(again, Job)
            assert again.id == job.id
    finally:
        stack.stop()
        redis.stop()


def _count_503(stack: Stack) -> float:
    metrics = httpx.get(f"{stack.url}/metrics").text
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("phaser_http_request_duration_seconds_count")
        and 'status="503"' in line
    )


_phaser = run_phaser


def test_cli_exit_codes_follow_the_final_phase(stack: Stack) -> None:
    done = _phaser(stack, "jobs", "submit", "sleep", "seconds=0.2", "--wait")
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout
    failed = _phaser(
        stack, "jobs", "submit", "fail", "message=nope", "--wait", "--json"
    )
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errors"][0]["message"] == "nope"
    pending = _phaser(stack, "jobs", "submit", "sleep", "seconds=30", "--json")
    job = json.loads(pending.stdout)
    assert job["parameters"] == {"seconds": 30.0}
    _phaser(stack, "jobs", "abort", job["id"])
    aborted = _phaser(stack, "jobs", "wait", job["id"])
    assert aborted.returncode == 2
    assert "ABORTED" in aborted.stdout


def test_cli_json_output_parses_and_errors_are_one_line(
    stack: Stack, tmp_path: Path
) -> None:
    made = _phaser(
        stack, "jobs", "submit", "echo", "a=1", "b:=[1, 2]", "--run-id",
        "cli", "--wait", "--json",
    )  # fmt: skip
    job = json.loads(made.stdout)
    assert job["parameters"] == {"a": "1", "b": [1, 2]}
    listed = json.loads(
        _phaser(stack, "jobs", "list", "--run-id", "cli", "--json").stdout
    )
    assert [j["id"] for j in listed] == [job["id"]]
    shown = json.loads(
        _phaser(stack, "jobs", "show", job["id"], "--json").stdout
    )
    assert shown["phase"] == "COMPLETED"
    tasks = json.loads(_phaser(stack, "tasks", "--json").stdout)
    assert {"sleep", "echo"} <= {task["name"] for task in tasks}
    out = tmp_path / "result.json"
    saved = _phaser(stack, "jobs", "results", job["id"], "-o", str(out))
    assert saved.returncode == 0
    assert json.loads(out.read_text()) == {"a": "1", "b": [1, 2]}
    printed = _phaser(stack, "jobs", "results", job["id"])
    assert json.loads(printed.stdout) == {"a": "1", "b": [1, 2]}
    watched = _phaser(stack, "jobs", "watch", job["id"], "--json")
    assert json.loads(watched.stdout.splitlines()[0])["event"] == "job"
    for args in (
        ("jobs", "show", "nope"),
        ("jobs", "submit", "sleep", "secs=2"),
        ("jobs", "submit", "sleep", "seconds=soon"),
        ("jobs", "list", "--url", "http://127.0.0.1:9"),
    ):
        failed = _phaser(stack, *args)
        assert failed.returncode == 1, args
        assert failed.stderr.count("\n") == 1, failed.stderr
        assert failed.stderr.startswith("phaser: ")
        assert "Traceback" not in failed.stderr
    deleted = _phaser(stack, "jobs", "delete", job["id"])
    assert deleted.returncode == 0


def test_client_and_cli_send_files_and_wait_synchronously(
    api: Client, stack: Stack, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"a\nb\nc\nd\n")
    # A file by path, run synchronously: the answer is the finished job.
    job = api.submit(
        "lines", {"label": "got"}, files={"text": text}, sync=True
    )
    assert (job.phase.value, job.sync) == ("COMPLETED", True)
    assert job.result() == b"got 4 ['text']"
    assert [u.name for u in job.uploads] == ["text"]

    async def scenario() -> None:
        async with AsyncClient(stack.url) as aio:
            sent = await aio.submit("lines", {}, files={"text": b"x\ny\n"})
            done = await sent.wait(timeout=30)
            assert await done.result() == b"lines 2 ['text']"

    asyncio.run(scenario())
    # A reference to a host the server does not allow: refused, by name.
    with pytest.raises(APIError, match="PHASER_UPLOAD_HOSTS"):
        api.submit("lines", {}, uploads={"text": "https://example.org/a"})
    # The command line.
    done = _phaser(
        stack, "jobs", "submit", "lines", f"--file=text={text}", "--wait"
    )
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout
    bad = _phaser(stack, "jobs", "submit", "lines", "--file", "text")
    assert bad.returncode != 0
    assert "--file: expected NAME=VALUE" in bad.stderr


def test_priority_through_the_client_and_the_cli(stack: Stack) -> None:
    with Client(stack.url) as client:
        job = client.submit("echo", {}, start=False, priority=7)
        assert job.priority == 7
        assert client.update(job.id, priority=2).priority == 2
        with pytest.raises(APIError) as refused:
            client.update(job.id, priority=12)
        assert refused.value.status == 422
    made = _phaser(
        stack, "jobs", "submit", "echo", "--no-start", "--priority", "8",
        "--json",
    )  # fmt: skip
    created = json.loads(made.stdout)
    assert created["priority"] == 8
    changed = _phaser(stack, "jobs", "priority", created["id"], "1")
    assert changed.returncode == 0, changed.stderr
    assert re.search(r"priority\s+1\b", changed.stdout), changed.stdout
    bad = _phaser(stack, "jobs", "priority", created["id"], "10")
    assert bad.returncode == 1
    assert bad.stderr.startswith("phaser: ")
    assert "priority" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_dependencies_and_children_through_the_client_and_the_cli(
    stack: Stack,
) -> None:
    with Client(stack.url) as client:
        parent = client.submit("echo", {}, start=False)
        first = client.submit("echo", {"n": 1})
        second = client.submit(
            "echo", {"n": 2}, after=[first.id], parent_id=parent.id
        )
        assert (second.after, second.parent_id) == ([first.id], parent.id)
        assert second.wait(timeout=30).phase == "COMPLETED"
        children = list(client.jobs(parent_id=parent.id))
        assert [job.id for job in children] == [second.id]
    made = _phaser(
        stack, "jobs", "submit", "echo", "--after", first.id, "--after-any",
        "--parent", parent.id, "--wait", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert (job["after"], job["after_policy"]) == ([first.id], "any_end")
    listed = _phaser(stack, "jobs", "list", "--parent", parent.id, "--json")
    assert {j["id"] for j in json.loads(listed.stdout)} == {
        second.id,
        job["id"],
    }
    shown = _phaser(stack, "jobs", "show", job["id"])
    assert "after (any_end)" in shown.stdout
    assert parent.id in shown.stdout


def test_suspend_and_resume_through_the_client_and_the_cli(
    stack: Stack, tmp_path: Path
) -> None:
    with Client(stack.url) as client:
        job = client.submit(
            "tick", {"directory": str(tmp_path), "seconds": 30}
        )
        wait_until(lambda: client.get(job.id).phase == "EXECUTING")
        assert client.suspend(job.id).phase == "SUSPENDED"
        shown = _phaser(stack, "jobs", "show", job.id)
        assert "SUSPENDED" in shown.stdout
        resumed = _phaser(stack, "jobs", "resume", job.id, "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["phase"] == "EXECUTING"
        again = _phaser(stack, "jobs", "resume", job.id)
        assert again.returncode == 1
        assert "Cannot resume" in again.stderr
        suspended = _phaser(stack, "jobs", "suspend", job.id, "--json")
        assert json.loads(suspended.stdout)["phase"] == "SUSPENDED"
        assert client.resume(job.id).phase == "EXECUTING"
        client.abort(job.id)
