"""Dependencies and parents (issue 16, part 4): a job with ``after`` waits
HELD until the jobs it names have ended, then runs (or ends ERROR naming
the one that did not complete); a parent's children are listed by parent
and aborted with it. Real server, worker and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from conftest import valid_uws, wait_for

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
PHASER = "{urn:x-phaser:uws-extension:v1}"
FINAL = {"COMPLETED", "ERROR", "ABORTED"}


def _create(http: httpx.Client, task: str, **fields: Any) -> dict[str, Any]:
    created = http.post(
        "/api/v1/jobs", json={"task": task, "start": True, **fields}
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


def _count(evidence: Path, **fields: Any) -> dict[str, Any]:
    return {"parameters": {"directory": str(evidence), "delay": 0.2}, **fields}


def test_a_diamond_runs_in_a_valid_order(
    client: httpx.Client, evidence: Path, schema: etree.XMLSchema
) -> None:
    a = _create(client, "count", **_count(evidence))
    b = _create(client, "count", **_count(evidence, after=[a["id"]]))
    c = _create(client, "count", **_count(evidence, after=[a["id"]]))
    d = _create(client, "count", **_count(evidence, after=[b["id"], c["id"]]))
    for job in (b, c, d):
        assert job["phase"] == "HELD"
    assert d["after"] == [b["id"], c["id"]]
    assert d["after_policy"] == "all_completed"
    # UWS names what it waits for, schema-valid.
    document = valid_uws(schema, client.get(f"/count/jobs/{d['id']}").content)
    after = document.find(f"{UWS}jobInfo/{PHASER}after")
    assert after is not None
    assert after.get("policy") == "all_completed"
    assert [e.text for e in after.findall(f"{PHASER}job")] == [
        b["id"],
        c["id"],
    ]
    done = wait_for(client, d["id"], FINAL, timeout=30)
    assert done["phase"] == "COMPLETED"
    assert [c["phase"] for c in done["history"]] == [
        "HELD",
        "QUEUED",
        "EXECUTING",
        "COMPLETED",
    ]
    executions = (evidence / "executions").read_text().split()
    finished = (evidence / "finished").read_text().split()
    assert executions[0] == a["id"]
    assert executions[-1] == d["id"]
    # Each started only after what it waited for had finished.
    for job, waited in ((b, [a]), (c, [a]), (d, [b, c])):
        for other in waited:
            assert finished.index(other["id"]) < executions.index(job["id"])


def test_a_failed_dependency_fails_its_dependants_naming_it(
    client: httpx.Client, evidence: Path
) -> None:
    a = _create(client, "fail", parameters={"message": "nope"})
    b = _create(client, "echo", after=[a["id"]])
    c = _create(client, "echo", after=[b["id"]])
    anyway = _create(client, "echo", after=[a["id"]], after_policy="any_end")
    failed = wait_for(client, c["id"], FINAL, timeout=30)
    assert failed["phase"] == "ERROR"
    assert failed["errors"][0]["code"] == "dependency_failed"
    assert b["id"] in failed["errors"][0]["message"]
    first = client.get(f"/api/v1/jobs/{b['id']}").json()
    assert first["phase"] == "ERROR"
    assert f"Dependency {a['id']} ended ERROR" in first["errors"][0]["message"]
    # Never ran: no attempt, no start.
    assert (first["attempts"], first["started_at"]) == (0, None)
    # UWS shows the message as the job's error.
    error = client.get(f"/echo/jobs/{b['id']}/error").text
    assert a["id"] in error
    # any_end: it ran once the other had ended, however it ended.
    assert wait_for(client, anyway["id"], FINAL)["phase"] == "COMPLETED"


def test_a_deleted_or_aborted_dependency_fails_the_job(
    client: httpx.Client,
) -> None:
    long = {"parameters": {"seconds": 30}}
    # A completed dependency deleted while the job still waits for
    # another one.
    x = _create(client, "echo")
    wait_for(client, x["id"], {"COMPLETED"})
    z = _create(client, "sleep", **long)
    y = _create(client, "echo", after=[x["id"], z["id"]])
    assert client.delete(f"/api/v1/jobs/{x['id']}").status_code == 204
    gone = wait_for(client, y["id"], FINAL)
    assert gone["phase"] == "ERROR"
    assert f"Dependency {x['id']} was deleted" in gone["errors"][0]["message"]
    # A running one deleted is aborted first: that is how it ended.
    q = _create(client, "echo", after=[z["id"]])
    assert client.delete(f"/api/v1/jobs/{z['id']}").status_code == 204
    stopped = wait_for(client, q["id"], FINAL)
    assert f"{z['id']} ended ABORTED" in stopped["errors"][0]["message"]


def test_dependencies_that_have_ended_decide_at_creation(
    client: httpx.Client,
) -> None:
    done = _create(client, "echo")
    wait_for(client, done["id"], {"COMPLETED"})
    failed = _create(client, "fail", parameters={"message": "x"})
    wait_for(client, failed["id"], {"ERROR"})
    runs = _create(client, "echo", after=[done["id"]])
    assert runs["phase"] in {"QUEUED", "EXECUTING", "COMPLETED"}
    assert wait_for(client, runs["id"], FINAL)["phase"] == "COMPLETED"
    fails = _create(client, "echo", after=[done["id"], failed["id"]])
    assert fails["phase"] == "ERROR"
    assert failed["id"] in fails["errors"][0]["message"]


def test_bad_dependencies_and_parents_are_refused(
    client: httpx.Client,
) -> None:
    done = _create(client, "echo")
    unknown = "0" * 26
    # Malformed: 422; naming a job that is not there: 404, as reading it
    # would; dependencies and a start time together: 409.
    for body, status in (
        ({"after": [unknown]}, 404),
        ({"after": ["not-an-id"]}, 422),
        ({"after": [done["id"]] * 101}, 422),
        ({"after": [done["id"]], "run_after": "2030-01-01T00:00:00Z"}, 409),
        ({"after": [done["id"]], "after_policy": "sometimes"}, 422),
        ({"parent_id": unknown}, 404),
    ):
        refused = client.post("/api/v1/jobs", json={"task": "echo", **body})
        assert refused.status_code == status, (body, refused.text)
    for data in (
        {"AFTERJOBS": unknown},
        {"AFTERJOBS": done["id"], "AFTERPOLICY": "sometimes"},
        {"PARENTJOB": unknown},
    ):
        refused = client.post("/echo/jobs", data=data)
        assert refused.status_code == 400, (data, refused.text)
    later = client.post(f"/echo/jobs/{done['id']}", data={"AFTERJOBS": "x"})
    assert later.status_code == 400


def test_children_are_listed_by_parent_and_aborted_with_it(
    client: httpx.Client, schema: etree.XMLSchema
) -> None:
    long = {"parameters": {"seconds": 30}}
    parent = _create(client, "sleep", **long)
    running = _create(client, "sleep", parent_id=parent["id"], **long)
    waiting = client.post(
        "/api/v1/jobs",
        json={"task": "sleep", "parent_id": parent["id"], **long},
    ).json()
    ended = _create(client, "echo", parent_id=parent["id"])
    wait_for(client, ended["id"], {"COMPLETED"})
    # UWS: a child made with PARENTJOB, its jobInfo names the parent.
    made = client.post(
        "/echo/jobs", data={"PARENTJOB": parent["id"], "a": "1"}
    )
    assert made.status_code == 303
    document = valid_uws(schema, client.get(made.headers["location"]).content)
    assert document.findtext(f"{UWS}jobInfo/{PHASER}parent") == parent["id"]
    uws_child = made.headers["location"].rsplit("/", 1)[1]
    listed = client.get(
        "/api/v1/jobs", params={"parent_id": parent["id"]}
    ).json()["jobs"]
    assert [job["id"] for job in listed] == [
        uws_child,
        ended["id"],
        waiting["id"],
        running["id"],
    ]
    assert all(job["parent_id"] == parent["id"] for job in listed)
    only_done = client.get(
        "/api/v1/jobs",
        params={"parent_id": parent["id"], "phase": "COMPLETED"},
    ).json()["jobs"]
    assert [job["id"] for job in only_done] == [ended["id"]]
    # Aborting the parent aborts its active children, not the others.
    client.post(f"/api/v1/jobs/{parent['id']}/abort")
    for child in (running, waiting):
        assert wait_for(client, child["id"], FINAL)["phase"] == "ABORTED"
    phases = {
        job["id"]: job["phase"]
        for job in client.get(
            "/api/v1/jobs", params={"parent_id": parent["id"]}
        ).json()["jobs"]
    }
    assert phases[ended["id"]] == "COMPLETED"
    assert phases[uws_child] == "ABORTED"  # PENDING is not final either
