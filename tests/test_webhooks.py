"""Webhooks (issue 17, part 1, per-job ``notify``): signed deliveries from
the workers to a real HTTP receiver on loopback (allow-listed for the
test), retried with growing delays, recorded per attempt, never in the
way of jobs; URLs that would make the server call its own network are
refused. Real server, workers, Redis and receiver."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from selenium import webdriver
from selenium.webdriver.common.by import By
from standardwebhooks.webhooks import Webhook

from conftest import (
    Stack,
    first_event,
    make_stack,
    run_phaser,
    wait_for,
    wait_until,
)
from phaser.embedded import EmbeddedRedis, find_redis_server, free_port
from receivers import Receiver

PHASER = "{urn:x-phaser:uws-extension:v1}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()


def _stack(
    redis_server: EmbeddedRedis, path: Path, receiver: Receiver
) -> Stack:
    return make_stack(
        redis_server,
        path,
        workers=1,
        webhook_hosts=f"127.0.0.1:{receiver.port}",
        webhook_retry_base=0.2,
        heartbeat_interval=0.2,
        stall_timeout=1.5,
        maintenance_interval=0.2,
    )


@pytest.fixture
def hooked(
    redis_server: EmbeddedRedis, tmp_path: Path, receiver: Receiver
) -> Iterator[Stack]:
    stack = _stack(redis_server, tmp_path / "data", receiver)
    yield stack
    stack.stop()


def _create(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    created = http.post(
        "/api/v1/jobs", json={"task": "echo", "start": True, **fields}
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


def _deliveries(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/jobs/{job_id}/deliveries")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["deliveries"])


def test_a_final_webhook_arrives_once_signed(
    hooked: Stack, receiver: Receiver
) -> None:
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        job = _create(http, notify={"url": receiver.url})
        secret = job["notify"]["secret"]
        assert secret.startswith("whsec_")
        # The secret is shown once: never in a read of the job.
        read = http.get(f"/api/v1/jobs/{job['id']}").json()
        assert read["notify"] == {
            "url": receiver.url,
            "events": ["final"],
            "secret": None,
        }
        # The webhook reads back alike in the list, the event stream and
        # UWS jobInfo (the secret in none of them).
        listed = http.get("/api/v1/jobs", params={"task": "echo"}).json()
        [row] = [j for j in listed["jobs"] if j["id"] == job["id"]]
        assert row["notify"] == read["notify"]
        assert first_event(http, job["id"])["notify"] == read["notify"]
        uws = http.get(f"/echo/jobs/{job['id']}").text
        assert secret not in uws
        info = etree.fromstring(uws.encode()).find(f".//{PHASER}notify")
        assert info is not None
        assert (info.text, info.get("events")) == (receiver.url, "final")
        wait_for(http, job["id"], {"COMPLETED"})
        wait_until(lambda: len(_deliveries(http, job["id"])) == 1)
        [attempt] = _deliveries(http, job["id"])
    assert (attempt["event"], attempt["status"]) == ("final", 204)
    assert attempt["phase"] == "COMPLETED"
    [message] = receiver.received
    payload = Webhook(secret).verify(message["body"], message["headers"])
    assert payload["type"] == "job.final"
    assert payload["data"]["id"] == job["id"]
    assert payload["data"]["phase"] == "COMPLETED"
    assert message["headers"]["webhook-id"] == attempt["delivery"]
    # Another secret does not verify it.
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(
            message["body"], message["headers"]
        )


def test_phase_events_and_uws_notify(
    hooked: Stack, receiver: Receiver
) -> None:
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        job = _create(
            http, notify={"url": receiver.url, "events": ["phase", "final"]}
        )
        wait_for(http, job["id"], {"COMPLETED"})
        # QUEUED -> EXECUTING, EXECUTING -> COMPLETED, and the end.
        wait_until(lambda: len(receiver.received) == 3)
        kinds = sorted(
            (body["type"], body["phase"])
            for body in (json.loads(m["body"]) for m in receiver.received)
        )
        # Each says the phase it is about, whatever the job's is by then.
        assert kinds == [
            ("job.final", "COMPLETED"),
            ("job.phase", "COMPLETED"),
            ("job.phase", "EXECUTING"),
        ]
        # UWS: NOTIFY=url; the secret comes in a header, this once.
        made = http.post("/echo/jobs", data={"NOTIFY": receiver.url, "a": "1"})
        assert made.status_code == 303
        secret = made.headers["webhook-secret"]
        job_id = made.headers["location"].rsplit("/", 1)[1]
        http.post(f"/api/v1/jobs/{job_id}/start")
        wait_until(lambda: len(receiver.received) == 4)
    last = receiver.received[-1]
    assert Webhook(secret).verify(last["body"], last["headers"])["data"][
        "id"
    ] == (job_id)


def test_a_failing_receiver_gets_retries_with_growing_delays(
    hooked: Stack, receiver: Receiver
) -> None:
    receiver.fail = 3
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        job = _create(http, notify={"url": receiver.url})
        wait_until(lambda: len(_deliveries(http, job["id"])) == 4, 30)
        attempts = _deliveries(http, job["id"])
    assert [a["status"] for a in attempts] == [500, 500, 500, 204]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert len({a["delivery"] for a in attempts}) == 1
    times = [m["at"] for m in receiver.received]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert gaps[0] < gaps[1] < gaps[2], gaps


def test_unsafe_urls_are_refused_at_creation(
    hooked: Stack, receiver: Receiver
) -> None:
    other = free_port()
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        for url, why in (
            (f"http://127.0.0.1:{other}/x", "must be https"),
            ("https://127.0.0.1/x", "loopback, link-local or private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://localhost/x", "resolves to 127.0.0.1"),
            ("https://10.1.2.3/x", "private"),
            ("ftp://example.org/x", "must be https"),
            ("https://user:pw@example.org/x", "credentials"),
            ("https://no-such-host.invalid/x", "does not resolve"),
        ):
            refused = http.post(
                "/api/v1/jobs",
                json={"task": "echo", "notify": {"url": url}},
            )
            assert refused.status_code == 403, (url, refused.text)
            assert why in refused.json()["detail"], refused.text
            uws = http.post("/echo/jobs", data={"NOTIFY": url})
            assert uws.status_code == 403, url
        listed = http.get("/api/v1/jobs", params={"task": "echo"}).json()
        assert listed["jobs"] == []  # nothing was made


def test_a_redirect_is_not_followed(hooked: Stack, receiver: Receiver) -> None:
    receiver.redirect = "http://169.254.169.254/latest/meta-data"
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        job = _create(http, notify={"url": receiver.url})
        wait_until(lambda: len(_deliveries(http, job["id"])) == 1)
        [attempt] = _deliveries(http, job["id"])
    assert attempt["status"] == 302
    assert "not followed" in attempt["error"]
    assert len(receiver.received) == 1  # once, and nothing else called


def test_a_slow_receiver_does_not_hold_up_jobs(
    hooked: Stack, receiver: Receiver
) -> None:
    receiver.delay = 10.0
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        # A first delivery is being held by the receiver...
        _create(http, notify={"url": receiver.url})
        wait_until(lambda: len(receiver.received) == 1)
        # ... while 100 more jobs with webhooks run and end.
        jobs = [
            _create(http, notify={"url": receiver.url}) for _ in range(100)
        ]
        for job in jobs:
            wait_for(http, job["id"], {"COMPLETED"})
        # Every job ended while the receiver had answered no delivery.
        assert receiver.answered == 0


def test_a_delivery_outlives_a_receiver_outage_and_restarts(
    tmp_path: Path,
) -> None:
    """The receiver is down; the worker is restarted, then Redis: the
    delivery, kept in Redis' outbox, arrives once the receiver is up."""
    redis = EmbeddedRedis(tmp_path / "redis", find_redis_server())
    redis.start()
    receiver = Receiver()  # not listening yet
    stack = _stack(redis, tmp_path / "data", receiver)
    restarted: EmbeddedRedis | None = None
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            job = _create(http, notify={"url": receiver.url})
            wait_until(lambda: len(_deliveries(http, job["id"])) >= 2)
            assert all(
                a["status"] is None and a["error"]
                for a in _deliveries(http, job["id"])
            )
            worker = stack.workers[0]
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
            redis.stop()  # SIGTERM: Redis writes its AOF and exits
            restarted = EmbeddedRedis(
                tmp_path / "redis", redis.binary, port=redis.port
            )
            restarted.start()
            stack.start_worker()
            receiver.start()
            wait_until(lambda: len(receiver.received) == 1, 30)
            wait_until(
                lambda: _deliveries(http, job["id"])[-1]["status"] == 204
            )
        assert len(receiver.received) == 1
    finally:
        stack.stop()
        receiver.stop()
        for server in (redis, restarted):
            if server is not None:
                server.stop()


def test_a_standing_subscription_hears_of_every_job_of_its_task(
    hooked: Stack, receiver: Receiver
) -> None:
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        made = http.post(
            "/api/v1/webhooks", json={"url": receiver.url, "task": "echo"}
        )
        assert made.status_code == 201, made.text
        sub = made.json()
        secret = sub["secret"]
        assert secret.startswith("whsec_")
        shown = http.get(f"/api/v1/webhooks/{sub['id']}").json()
        assert shown["secret"] is None
        listed = http.get("/api/v1/webhooks").json()["subscriptions"]
        assert [s["id"] for s in listed] == [sub["id"]]
        # A job of the task: told; one of another task: not.
        job = _create(http)
        other = http.post(
            "/api/v1/jobs",
            json={
                "task": "sleep",
                "parameters": {"seconds": 0},
                "start": True,
            },
        ).json()
        wait_for(http, other["id"], {"COMPLETED"})
        wait_until(lambda: len(receiver.received) == 1)
        [message] = receiver.received
        payload = Webhook(secret).verify(message["body"], message["headers"])
        assert payload["data"]["id"] == job["id"]
        wait_until(
            lambda: (
                len(
                    http.get(
                        f"/api/v1/webhooks/{sub['id']}/deliveries"
                    ).json()["deliveries"]
                )
                == 1
            )
        )
        [attempt] = http.get(
            f"/api/v1/webhooks/{sub['id']}/deliveries"
        ).json()["deliveries"]
        assert (attempt["status"], attempt["event"]) == (204, "final")
        # Changed to every phase; then deleted: no more deliveries.
        changed = http.patch(
            f"/api/v1/webhooks/{sub['id']}", json={"events": ["phase"]}
        )
        assert changed.json()["events"] == ["phase"]
        assert http.delete(f"/api/v1/webhooks/{sub['id']}").status_code == 204
        assert http.get(f"/api/v1/webhooks/{sub['id']}").status_code == 404
        wait_for(http, _create(http)["id"], {"COMPLETED"})
        # Refused: an unsafe URL, an unknown task.
        unsafe = http.post(
            "/api/v1/webhooks", json={"url": "https://127.0.0.1/x"}
        )
        assert unsafe.status_code == 403
        unknown = http.post(
            "/api/v1/webhooks", json={"url": receiver.url, "task": "nope"}
        )
        assert unknown.status_code == 404
    assert len(receiver.received) == 1


def test_deliveries_in_the_cli_and_on_the_dashboard(
    hooked: Stack, receiver: Receiver, browser: webdriver.Chrome
) -> None:
    receiver.fail = 1

    def phaser(*args: str) -> subprocess.CompletedProcess[str]:
        return run_phaser(hooked, *args)

    made = phaser(
        "jobs", "submit", "echo", "--notify", receiver.url, "--wait", "--json"
    )
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert job["notify"]["secret"].startswith("whsec_")
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        wait_until(lambda: len(_deliveries(http, job["id"])) == 2)
    shown = phaser("jobs", "deliveries", job["id"])
    assert shown.returncode == 0, shown.stderr
    assert "500" in shown.stdout
    assert "204" in shown.stdout
    listed = json.loads(
        phaser("jobs", "deliveries", job["id"], "--json").stdout
    )
    assert [a["status"] for a in listed] == [500, 204]
    browser.get(f"{hooked.url}/ui/jobs/{job['id']}")
    table = browser.find_element(By.ID, "deliveries").text
    assert "500" in table
    assert "204" in table
    assert receiver.url in browser.find_element(By.TAG_NAME, "main").text
