"""Slow and stalled clients: the server closes connections whose request
does not arrive in time, bounds how many are open, and keeps serving
everyone else meanwhile."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Stack, make_stack
from phaser.embedded import EmbeddedRedis

#: What a stalled client has sent when it stops.
_STALLS = {
    "idle": b"",
    "header": b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ",
    "body": (
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"task": "ec'
    ),
}

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def guarded(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    stack = make_stack(
        redis_server,
        tmp_path_factory.mktemp("guarded"),
        http_header_timeout=HEADER_TIMEOUT,
        http_body_timeout=BODY_TIMEOUT,
        max_wait=10,
    )
    yield stack
    stack.stop()


async def _stall(port: int, kind: str) -> float:
    """Open a connection, send part of a request, and wait for the server
    to close it; how long that took."""
    loop = asyncio.get_running_loop()
    opened = loop.time()  # before: the server's clock starts on accept
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_STALLS[kind])
        await writer.drain()
        # The server closes without an answer: EOF (or a reset).
        try:
            data = await asyncio.wait_for(reader.read(), timeout=60)
        except ConnectionResetError:
            data = b""
        assert data == b"", data[:200]
        return loop.time() - opened
    finally:
        writer.close()


async def _stall_many(stack: Stack, count: int) -> dict[str, list[float]]:
    kinds = [list(_STALLS)[i % len(_STALLS)] for i in range(count)]
    stalls = [asyncio.create_task(_stall(stack.port, kind)) for kind in kinds]
    # Meanwhile, other clients are served normally.
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        await asyncio.sleep(0.5)  # let the stalled connections open
        for _ in range(20):
            answer = await client.post(
                "/api/v1/jobs", json={"task": "echo", "start": True}
            )
            assert answer.status_code == 201
            job = await client.get(
                answer.json()["href"], params={"wait": 5, "until": "final"}
            )
            assert job.json()["phase"] == "COMPLETED"
    closed = await asyncio.gather(*stalls)
    times: dict[str, list[float]] = {kind: [] for kind in _STALLS}
    for kind, seconds in zip(kinds, closed, strict=True):
        times[kind].append(seconds)
    return times


def test_thousand_stalled_connections_closed_in_time_others_served(
    guarded: Stack,
) -> None:
    times = asyncio.run(_stall_many(guarded, 1000))
    assert sum(len(t) for t in times.values()) == 1000
    # Closed within the configured timeout (plus scheduling slack on a
    # busy two-core machine), never before it.
    for kind in ("idle", "header"):
        assert min(times[kind]) >= HEADER_TIMEOUT - 0.1, kind
        assert max(times[kind]) < HEADER_TIMEOUT + 5, kind
    assert min(times["body"]) >= BODY_TIMEOUT - 0.1
    assert max(times["body"]) < BODY_TIMEOUT + 5
    metrics = httpx.get(f"{guarded.url}/metrics").text
    for stage in ("header", "body"):
        line = f'phaser_http_connections_timed_out_total{{stage="{stage}"}}'
        [value] = [
            float(row.split()[-1])
            for row in metrics.splitlines()
            if row.startswith(line)
        ]
        assert value >= 333
    print({kind: f"{min(t):.2f}–{max(t):.2f} s" for kind, t in times.items()})


def test_long_polls_and_slow_answers_are_not_timed_out(
    guarded: Stack,
) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        job = client.post("/api/v1/jobs", json={"task": "echo"}).json()
        # Longer than both timeouts: a response is never cut.
        answer = client.get(job["href"], params={"wait": BODY_TIMEOUT + 2})
        assert answer.status_code == 200
        assert answer.json()["phase"] == "PENDING"
        assert answer.elapsed.total_seconds() >= BODY_TIMEOUT + 1
        # The kept-alive connection still works after the long poll.
        assert client.get(job["href"]).status_code == 200


def test_connections_past_the_bound_are_closed_at_once(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = make_stack(
        redis_server, tmp_path / "data", workers=0, http_max_connections=20
    )
    try:
        sockets = [
            socket.create_connection(("127.0.0.1", stack.port))
            for _ in range(30)
        ]
        # Those past the bound were closed at once: readable, at EOF.
        refused = 0
        deadline = time.monotonic() + 5
        while refused < 10 and time.monotonic() < deadline:
            readable, _, _ = select.select(sockets, [], [], 0.5)
            for sock in readable:
                try:
                    gone = sock.recv(1) == b""
                except ConnectionResetError:
                    gone = True
                refused += gone
                sockets.remove(sock)
                sock.close()
        # And no more than those.
        readable, _, _ = select.select(sockets, [], [], 1.0)
        assert readable == []
        assert refused == 10
        for sock in sockets:
            sock.close()
        metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
        assert "phaser_http_connections_refused_total 10.0" in metrics
    finally:
        stack.stop()
