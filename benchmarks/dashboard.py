"""B10: open dashboard tabs cost the frontend (next to) nothing while
nothing happens."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import httpx
from harness import Figure, Result, Scale, Stack, cpu_seconds
from waits import _settle

from phaser.embedded import EmbeddedRedis

#: What a tab opens: half of them the overview, half the job list.
_PAGES = ("/ui", "/ui/jobs")


async def _idle_cpu(pid: int, seconds: float) -> float:
    """The process's CPU over ``seconds``, in % of a core."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds * 100


async def _tabs(
    url: str, frontend: int, tabs: int, seconds: float
) -> tuple[float, float]:
    """The frontend's idle CPU without tabs, then with ``tabs`` open
    (each: the page, then its event stream held open as a browser does)."""
    from loadgen import request_bytes

    await _settle(frontend)
    without = await _idle_cpu(frontend, seconds)
    host, port = url.removeprefix("http://").split(":")
    streams: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for n in range(tabs):
            page = await client.get(_PAGES[n % len(_PAGES)])
            found = re.search(r'data-stream="([^"]+)"', page.text)
            assert found, page.text
            streams.append(found.group(1).replace("&amp;", "&"))
    opened: list[asyncio.Event] = []
    writers = []

    async def hold(path: str, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        writers.append(writer)
        writer.write(request_bytes("GET", f"{host}:{port}", path, b"", None))
        status = await reader.readuntil(b"\r\n")
        assert b" 200 " in status, status
        ready.set()
        while await reader.read(65536):
            pass

    holders = []
    for path in streams:
        opened.append(asyncio.Event())
        holders.append(asyncio.create_task(hold(path, opened[-1])))
    for ready in opened:
        await ready.wait()
    await _settle(frontend)
    with_tabs = await _idle_cpu(frontend, seconds)
    for writer in writers:
        writer.close()
    for holder in holders:
        holder.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    return without, with_tabs


def bench_tabs(redis: EmbeddedRedis, work: Path, scale: Scale) -> Result:
    """B10: the frontend's CPU with open dashboard tabs, nothing running."""
    base = Figure("frontend CPU idle, no tabs", "% of a core")
    loaded = Figure(f"frontend CPU idle, {scale.tabs} tabs", "% of a core")
    added = Figure(f"added by {scale.tabs} tabs", "% of a core")
    for _ in range(scale.rounds_slow):
        running = Stack(redis.url, work / uuid.uuid4().hex[:6])
        running.start(workers=1)
        try:
            frontend = running.processes[-1].pid
            with httpx.Client(base_url=running.url, timeout=60) as client:
                ids = [
                    client.post(
                        "/api/v1/jobs", json={"task": "noop", "start": True}
                    ).json()["id"]
                    for _ in range(20)
                ]
                for job_id in ids:
                    client.get(
                        f"/api/v1/jobs/{job_id}",
                        params={"wait": 30, "until": "final"},
                    )
            started = time.monotonic()
            without, with_tabs = asyncio.run(
                _tabs(running.url, frontend, scale.tabs, scale.tabs_seconds)
            )
            assert time.monotonic() - started >= 2 * scale.tabs_seconds
        finally:
            running.stop()
        base.rounds.append(without)
        loaded.rounds.append(with_tabs)
        added.rounds.append(with_tabs - without)
    return Result(
        key="B10",
        title=f"{scale.tabs} idle dashboard tabs on one frontend",
        figures=[base, loaded, added],
        comparison="with tabs − without, same frontend, same run",
        target="≤ 1 % of a core added",
        met=max(added.rounds) <= 1,
    )
