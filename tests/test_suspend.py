"""Suspend and resume (issue 16, part 6): a running ``def`` task's process
is stopped and continued, its execution duration pauses, and the worker,
maintenance and shutdown understand SUSPENDED. Real server, workers,
processes and Redis; the task's own ticks show when it ran."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from conftest import (
    Stack,
    make_stack,
    valid_uws,
    wait_for,
    wait_for_file,
    wait_until,
)
from phaser.embedded import EmbeddedRedis

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
FINAL = {"COMPLETED", "ERROR", "ABORTED"}

#: Fast heartbeats and maintenance, so a lost worker is noticed quickly.
FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "stall_timeout": 1.5,
    "maintenance_interval": 0.2,
}


@pytest.fixture
def fast(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Stack]:
    stack = make_stack(redis_server, tmp_path / "data", workers=1, **FAST)
    yield stack
    stack.stop()


def _state(pid: int) -> str:
    """A process's state letter (``T``: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _gone(pid: int) -> bool:
    """Whether a process has exited (or is a zombie nobody reaped)."""
    try:
        return _state(pid) == "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Reaped before the open, or between the open and the read
        # (ESRCH: a CI run met that).
        return True


def _ticks(evidence: Path, job_id: str) -> int:
    path = evidence / f"{job_id}.ticks"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _tick(http: httpx.Client, evidence: Path, **fields: Any) -> dict[str, Any]:
    created = http.post(
        "/api/v1/jobs",
        json={
            "task": "tick",
            "parameters": {"directory": str(evidence), "seconds": 30},
            "start": True,
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    job = dict(created.json())
    wait_for(http, job["id"], {"EXECUTING"})
    return job


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_suspend_stops_the_process_and_resume_continues_it(
    fast: Stack, evidence: Path, schema: etree.XMLSchema
) -> None:
    with httpx.Client(base_url=fast.url, timeout=30) as http:
        job = _tick(http, evidence)
        pid = int(wait_for_file(evidence / f"{job['id']}.1.pid"))
        wait_until(lambda: _ticks(evidence, job["id"]) > 0)
        suspended = http.post(f"/api/v1/jobs/{job['id']}/suspend")
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["phase"] == "SUSPENDED"
        wait_until(lambda: _state(pid) == "T")
        document = valid_uws(
            schema, http.get(f"/tick/jobs/{job['id']}").content
        )
        assert document.findtext(f"{UWS}phase") == "SUSPENDED"
        # Stopped: no tick while suspended (the worker still beats for it).
        before = _ticks(evidence, job["id"])
        time.sleep(0.5)  # absence of ticks is what is tested
        assert _ticks(evidence, job["id"]) == before
        assert http.post(f"/api/v1/jobs/{job['id']}/suspend").status_code == (
            409
        )
        # UWS resumes it (PHASE=RESUME); it ticks again.
        resumed = http.post(f"/tick/jobs/{job['id']}/phase", data={
            "PHASE": "RESUME"
        })  # fmt: skip
        assert resumed.status_code == 303
        wait_until(lambda: _state(pid) != "T")
        wait_until(lambda: _ticks(evidence, job["id"]) > before)
        current = http.get(f"/api/v1/jobs/{job['id']}").json()
        assert current["phase"] == "EXECUTING"
        assert [c["phase"] for c in current["history"]][-3:] == [
            "EXECUTING",
            "SUSPENDED",
            "EXECUTING",
        ]
        # UWS suspends too; aborting a suspended job kills its process.
        assert http.post(
            f"/tick/jobs/{job['id']}/phase", data={"PHASE": "SUSPEND"}
        ).status_code == (303)
        wait_until(lambda: _state(pid) == "T")
        http.post(f"/api/v1/jobs/{job['id']}/abort")
        assert wait_for(http, job["id"], FINAL)["phase"] == "ABORTED"
        wait_until(lambda: _gone(pid))


def test_suspended_time_does_not_count_against_the_duration(
    fast: Stack, evidence: Path
) -> None:
    with httpx.Client(base_url=fast.url, timeout=30) as http:
        job = _tick(http, evidence, execution_duration=2)
        http.post(f"/api/v1/jobs/{job['id']}/suspend")
        time.sleep(3)  # longer than the whole duration: the tested wait
        # Neither the worker nor maintenance's deadline backstop ended it.
        assert http.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == (
            "SUSPENDED"
        )
        http.post(f"/api/v1/jobs/{job['id']}/resume")
        done = wait_for(http, job["id"], FINAL, timeout=15)
    assert done["phase"] == "ABORTED"
    assert done["errors"][0]["code"] == "duration_exceeded"
    ran = _time(done["ended_at"]) - _time(done["started_at"])
    assert ran.total_seconds() >= 4.5, ran


def test_async_tasks_cannot_be_suspended(client: httpx.Client) -> None:
    job = client.post(
        "/api/v1/jobs",
        json={"task": "sleep", "parameters": {"seconds": 30}, "start": True},
    ).json()
    wait_for(client, job["id"], {"EXECUTING"})
    refused = client.post(f"/api/v1/jobs/{job['id']}/suspend")
    assert refused.status_code == 409
    assert "async def" in refused.json()["detail"]
    uws = client.post(
        f"/sleep/jobs/{job['id']}/phase", data={"PHASE": "SUSPEND"}
    )
    assert uws.status_code == 403
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == (
        "EXECUTING"
    )
    # Resume of a job that is not suspended: 409.
    assert client.post(f"/api/v1/jobs/{job['id']}/resume").status_code == (409)
    client.post(f"/api/v1/jobs/{job['id']}/abort")


def test_a_suspended_job_whose_worker_stops_or_dies_waits_held(
    fast: Stack, evidence: Path
) -> None:
    with httpx.Client(base_url=fast.url, timeout=30) as http:
        # A worker shutting down hands it back, held.
        job = _tick(http, evidence)
        pid = int(wait_for_file(evidence / f"{job['id']}.1.pid"))
        http.post(f"/api/v1/jobs/{job['id']}/suspend")
        wait_until(lambda: _state(pid) == "T")
        worker = fast.workers[0]
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        held = wait_for(http, job["id"], {"HELD"})
        assert held["phase"] == "HELD"
        # The stopped process did not outlive its worker.
        wait_until(lambda: _gone(pid))
        # A new worker; a second job is suspended, and its worker killed.
        fast.start_worker()
        other = _tick(http, evidence)
        other_pid = int(wait_for_file(evidence / f"{other['id']}.1.pid"))
        http.post(f"/api/v1/jobs/{other['id']}/suspend")
        wait_until(lambda: _state(other_pid) == "T")
        fast.worker_running(other["id"]).send_signal(signal.SIGKILL)
        wait_until(lambda: _gone(other_pid))
        # Another worker's maintenance finds it silent, and holds it.
        fast.start_worker()
        assert wait_for(http, other["id"], {"HELD"})["phase"] == "HELD"
        # Resuming a held job queues it to start over: attempt 2.
        resumed = http.post(f"/api/v1/jobs/{job['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        wait_for_file(evidence / f"{job['id']}.2.pid")
        assert http.get(f"/api/v1/jobs/{job['id']}").json()["attempts"] == 2
        for job_id in (job["id"], other["id"]):
            http.post(f"/api/v1/jobs/{job_id}/abort")
