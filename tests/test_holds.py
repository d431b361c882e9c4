"""Held and scheduled jobs (issue 16, parts 3 and 6 in part): ``run_after``
keeps a job HELD until its time, when maintenance queues it; clients hold
and release jobs in both dialects. Real server, worker and Redis."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree

from conftest import Stack, first_event, make_stack, valid_uws, wait_for
from phaser.embedded import EmbeddedRedis

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
PHASER = "{urn:x-phaser:uws-extension:v1}"


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_scheduled_job_waits_held_and_starts_on_time_once(
    client: httpx.Client, schema: etree.XMLSchema, evidence: Path
) -> None:
    created = client.post(
        "/api/v1/jobs",
        json={
            "task": "count",
            "parameters": {"directory": str(evidence)},
            "run_after": _at(2),
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["phase"] == "HELD"
    assert job["run_after"] is not None
    # UWS shows it HELD, says when it will run, and is schema-valid.
    document = valid_uws(
        schema, client.get(f"/count/jobs/{job['id']}").content
    )
    assert document.findtext(f"{UWS}phase") == "HELD"
    run_after = document.find(f".//{PHASER}runAfter")
    assert run_after is not None
    assert "queued by the server" in str(run_after.get("note"))
    done = wait_for(client, job["id"], {"COMPLETED"}, timeout=30)
    late = _time(done["started_at"]) - _time(job["run_after"])
    assert timedelta(0) <= late < timedelta(seconds=1), late
    assert [c["phase"] for c in done["history"]] == [
        "HELD",
        "QUEUED",
        "EXECUTING",
        "COMPLETED",
    ]
    assert (evidence / "executions").read_text().split() == [job["id"]]
    # A time that has passed starts the job at once; one after the
    # destruction time is refused.
    now = client.post(
        "/api/v1/jobs",
        json={"task": "echo", "parameters": {}, "run_after": _at(-60)},
    ).json()
    assert now["phase"] in {"QUEUED", "EXECUTING", "COMPLETED"}
    refused = client.post(
        "/api/v1/jobs",
        json={
            "task": "echo",
            "run_after": _at(7200),
            "destruction_time": _at(3600),
        },
    )
    assert refused.status_code == 409
    assert "run_after" in refused.text
    # Without a destruction time, a job scheduled past the default
    # lifetime lives its default lifetime from its start.
    far = client.post(
        "/api/v1/jobs",
        json={"task": "echo", "run_after": _at(8 * 86400)},
    ).json()
    assert _time(far["destruction_time"]) > _time(far["run_after"])


def test_hold_and_release_in_both_dialects(
    client: httpx.Client, stack: Stack
) -> None:
    job = client.post(
        "/api/v1/jobs",
        json={"task": "echo", "parameters": {}, "run_after": _at(3600)},
    ).json()
    # Released before its time: queued now, run once.
    released = client.post(f"/api/v1/jobs/{job['id']}/release")
    assert released.status_code == 200, released.text
    assert wait_for(client, job["id"], {"COMPLETED"})["attempts"] == 1
    assert client.post(f"/api/v1/jobs/{job['id']}/release").status_code == 409
    # A pending job held, then started.
    pending = client.post(
        "/api/v1/jobs", json={"task": "echo", "parameters": {}}
    ).json()
    held = client.post(f"/api/v1/jobs/{pending['id']}/hold").json()
    assert (held["phase"], held["run_after"]) == ("HELD", None)
    assert client.post(f"/api/v1/jobs/{pending['id']}/hold").status_code == (
        409
    )
    client.post(f"/api/v1/jobs/{pending['id']}/release")
    assert wait_for(client, pending["id"], {"COMPLETED"})["phase"] == (
        "COMPLETED"
    )
    # UWS: PHASE=HOLD holds, PHASE=RUN releases.
    location = client.post("/sleep/jobs", data={"seconds": "0.1"}).headers[
        "location"
    ]
    assert (
        client.post(f"{location}/phase", data={"PHASE": "HOLD"}).status_code
        == 303
    )
    assert client.get(f"{location}/phase").text == "HELD"
    assert (
        client.post(f"{location}/phase", data={"PHASE": "RUN"}).status_code
        == 303
    )
    job_id = location.rsplit("/", 1)[1]
    assert wait_for(client, job_id, {"COMPLETED"})["phase"] == "COMPLETED"
    bad = client.post(f"{location}/phase", data={"PHASE": "HOLD"})
    assert bad.status_code == 403
    # UWS creation with a start time: HELD until then.
    scheduled = client.post(
        "/echo/jobs", data={"RUNAFTER": _at(3600), "x": "1"}
    ).headers["location"]
    assert client.get(f"{scheduled}/phase").text == "HELD"
    scheduled_id = scheduled.rsplit("/", 1)[1]
    assert client.get(f"/api/v1/jobs/{scheduled_id}").json()["parameters"] == {
        "x": "1"
    }
    # RUNAFTER on a job that has ended: 403, like any change of a waiting
    # job's schedule outside its phases.
    later = client.post(location, data={"RUNAFTER": _at(60)})
    assert later.status_code == 403
    assert "reschedule" in later.text


def test_a_waiting_job_gets_a_new_start_time_in_both_dialects(
    client: httpx.Client, schema: etree.XMLSchema
) -> None:
    pending = client.post("/api/v1/jobs", json={"task": "echo"}).json()
    # PENDING -> HELD until the time; then the time moves.
    held = client.patch(
        f"/api/v1/jobs/{pending['id']}", json={"run_after": _at(3600)}
    )
    assert held.status_code == 200, held.text
    assert held.json()["phase"] == "HELD"
    first = _time(held.json()["run_after"])
    moved = client.patch(
        f"/api/v1/jobs/{pending['id']}", json={"run_after": _at(7200)}
    ).json()
    assert _time(moved["run_after"]) > first
    # UWS: RUNAFTER on the job, shown in jobInfo.
    location = f"/echo/jobs/{pending['id']}"
    soon = client.post(location, data={"RUNAFTER": _at(1)})
    assert soon.status_code == 303
    document = valid_uws(schema, client.get(location).content)
    assert document.find(f".//{PHASER}runAfter") is not None
    # It starts at its new time, once; the time is cleared once started.
    done = wait_for(client, pending["id"], {"COMPLETED"}, timeout=30)
    assert done["run_after"] is None
    assert done["attempts"] == 1
    # A time that has passed starts a waiting job now; a time past the
    # destruction time is refused and changes nothing.
    other = client.post("/api/v1/jobs", json={"task": "echo"}).json()
    refused = client.patch(
        f"/api/v1/jobs/{other['id']}", json={"run_after": _at(10**8)}
    )
    assert refused.status_code == 409
    assert client.get(f"/api/v1/jobs/{other['id']}").json()["phase"] == (
        "PENDING"
    )
    now = client.patch(
        f"/api/v1/jobs/{other['id']}", json={"run_after": _at(-5)}
    )
    assert now.json()["phase"] in {"QUEUED", "EXECUTING", "COMPLETED"}
    assert wait_for(client, other["id"], {"COMPLETED"})["phase"] == (
        "COMPLETED"
    )
    # With a phase change in the same request: refused.
    both = client.post(
        f"/echo/jobs/{other['id']}", data={"RUNAFTER": _at(60), "PHASE": "RUN"}
    )
    assert both.status_code == 400


def test_a_queued_job_held_is_not_run_until_released(
    client: httpx.Client, stack: Stack, evidence: Path
) -> None:
    # Occupy the worker so the next job stays QUEUED, then hold it.
    blockers = [
        client.post(
            "/api/v1/jobs",
            json={
                "task": "sleep",
                "parameters": {"seconds": 2},
                "start": True,
            },
        ).json()
        for _ in range(10)
    ]
    job = client.post(
        "/api/v1/jobs",
        json={
            "task": "count",
            "parameters": {"directory": str(evidence)},
            "start": True,
        },
    ).json()
    held = client.post(f"/api/v1/jobs/{job['id']}/hold")
    if held.status_code == 409:  # the worker was quicker: nothing to show
        raise AssertionError(f"job was not QUEUED: {held.text}")
    assert held.json()["phase"] == "HELD"
    for blocker in blockers:
        wait_for(client, blocker["id"], {"COMPLETED"})
    # Its queue entry was taken and found not claimable: still HELD.
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == "HELD"
    assert not (evidence / "executions").exists()
    client.post(f"/api/v1/jobs/{job['id']}/release")
    done = wait_for(client, job["id"], {"COMPLETED"})
    # Sent again as a new attempt: the old entry's leftovers cannot block it.
    assert done["attempts"] == 2
    assert (evidence / "executions").read_text().split() == [job["id"]]


def test_client_and_cli_hold_release_and_schedule(stack: Stack) -> None:
    import os
    import subprocess
    import sys

    from phaser.client import Client

    with Client(stack.url) as api:
        later = datetime.now(UTC) + timedelta(hours=1)
        job = api.submit("echo", {"a": 1}, run_after=later)
        assert job.phase.value == "HELD"
        assert job.run_after is not None
        assert abs(job.run_after - later) < timedelta(milliseconds=2)
        assert api.release(job.id).phase.value == "QUEUED"
        pending = api.submit("echo", {}, start=False)
        assert api.hold(pending.id).phase.value == "HELD"
    env = {**os.environ, "PHASER_URL": stack.url}
    command = [sys.executable, "-m", "phaser", "jobs"]
    released = subprocess.run(
        [*command, "release", pending.id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert released.returncode == 0, released.stderr
    assert json.loads(released.stdout)["phase"] == "QUEUED"


def test_scheduled_starts_survive_a_killed_worker(
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    evidence: Path,
) -> None:
    """Three workers, one SIGKILLed before the start time (the maintenance
    lease holder, if it was that one): the job still starts within 1 s of
    its time, once."""
    stack = make_stack(redis_server, tmp_path_factory.mktemp("three"), 3)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            jobs = [
                http.post(
                    "/api/v1/jobs",
                    json={
                        "task": "count",
                        "parameters": {"directory": str(evidence)},
                        "run_after": _at(2 + n * 0.3),
                    },
                ).json()
                for n in range(3)
            ]
            victim = stack.workers[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            for job in jobs:
                done = wait_for(http, job["id"], {"COMPLETED"}, timeout=30)
                late = _time(done["started_at"]) - _time(job["run_after"])
                assert timedelta(0) <= late < timedelta(seconds=1), late
        executions = (evidence / "executions").read_text().split()
        assert sorted(executions) == sorted(job["id"] for job in jobs)
    finally:
        stack.stop()


def test_new_fields_read_back_alike_in_every_representation(
    client: httpx.Client, schema: etree.XMLSchema
) -> None:
    """What issues 15 and 16 let a client send (files, a start time, a
    sync request) reads back the same through the JSON job, the JSON
    list, the event stream and UWS."""
    run_after = _at(3600)
    made = client.post(
        "/api/v1/jobs/multipart",
        data={
            "job": json.dumps(
                {
                    "task": "lines",
                    "run_id": "readback-new-fields",
                    "run_after": run_after,
                }
            )
        },
        files={"text": ("t.txt", b"a\nb\n", "text/plain")},
    ).json()
    synced = client.post(
        "/api/v1/jobs?sync=true",
        json={"task": "echo", "run_id": "readback-new-fields"},
    ).json()
    listed = {
        job["id"]: job
        for job in client.get(
            "/api/v1/jobs", params={"run_id": "readback-new-fields"}
        ).json()["jobs"]
    }
    for job in (made, synced):
        current = client.get(f"/api/v1/jobs/{job['id']}").json()
        event = first_event(client, job["id"])
        for field in ("uploads", "run_after", "sync"):
            assert (
                listed[job["id"]][field] == current[field] == event[field]
            ), field
    assert made["uploads"][0]["name"] == "text"
    stored = _time(made["run_after"]) - _time(run_after)
    assert abs(stored) < timedelta(milliseconds=1)  # kept to the ms
    assert synced["sync"] is True
    # UWS: the upload as a by-reference parameter, the start time and the
    # sync marker in jobInfo.
    document = valid_uws(
        schema, client.get(f"/lines/jobs/{made['id']}").content
    )
    [parameter] = [
        p for p in document.iter(f"{UWS}parameter") if p.get("id") == "text"
    ]
    assert parameter.get("byReference") == "true"
    # Each dialect links its own route; both serve the same bytes.
    assert parameter.text is not None
    assert client.get(parameter.text).content == b"a\nb\n"
    assert client.get(made["uploads"][0]["href"]).content == b"a\nb\n"
    assert document.findtext(f".//{PHASER}runAfter") == made["run_after"]
    document = valid_uws(
        schema, client.get(f"/echo/jobs/{synced['id']}").content
    )
    assert document.findtext(f".//{PHASER}sync") == "true"


def test_flow_control_fields_read_back_alike_in_every_representation(
    client: httpx.Client, schema: etree.XMLSchema
) -> None:
    """What flow control lets a client send (issue 16: priority,
    concurrency key, dependencies and policy, parent) reads back the same
    through the JSON job, the JSON list, the event stream and UWS
    ``jobInfo``."""
    parent = client.post(
        "/api/v1/jobs", json={"task": "echo", "run_id": "readback-flow"}
    ).json()
    made = client.post(
        "/api/v1/jobs",
        json={
            "task": "echo",
            "run_id": "readback-flow",
            "priority": 8,
            "concurrency_key": "k-readback",
            "after": [parent["id"]],
            "after_policy": "any_end",
            "parent_id": parent["id"],
        },
    ).json()
    listed = {
        job["id"]: job
        for job in client.get(
            "/api/v1/jobs", params={"run_id": "readback-flow"}
        ).json()["jobs"]
    }
    current = client.get(f"/api/v1/jobs/{made['id']}").json()
    event = first_event(client, made["id"])
    fields = ("priority", "concurrency_key", "after", "after_policy")
    for field in (*fields, "parent_id"):
        assert made[field] == listed[made["id"]][field] == current[field], (
            field
        )
        assert event[field] == current[field], field
    assert (current["priority"], current["after"]) == (8, [parent["id"]])
    document = valid_uws(
        schema, client.get(f"/echo/jobs/{made['id']}").content
    )
    info = document.find(f"{UWS}jobInfo")
    assert info is not None
    assert info.findtext(f"{PHASER}priority") == "8"
    assert info.findtext(f"{PHASER}concurrencyKey") == "k-readback"
    after = info.find(f"{PHASER}after")
    assert after is not None
    assert after.get("policy") == "any_end"
    assert [e.text for e in after] == [parent["id"]]
    assert info.findtext(f"{PHASER}parent") == parent["id"]
    for job in (made, parent):
        client.delete(f"/api/v1/jobs/{job['id']}")
