"""What every benchmark shares: figures, results, scales, the processes
under test, and filling Redis with stored jobs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from phaser.embedded import EmbeddedRedis, die_with_parent, free_port

HERE = Path(__file__).resolve().parent

# What B8's peers share with the rest (`peers/peer_common.py`: standard
# library and redis-py only, so that it runs in each peer's environment).
sys.path.insert(0, str(HERE / "peers"))


@dataclass
class Figure:
    """One measured quantity over several rounds."""

    name: str
    unit: str
    rounds: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": statistics.median(self.rounds),
            "min": min(self.rounds),
            "max": max(self.rounds),
            "rounds": len(self.rounds),
        }


@dataclass
class Result:
    """A benchmark's figures, comparison and verdict."""

    key: str
    title: str
    figures: list[Figure]
    comparison: str
    target: str
    met: bool | None


class Sink:
    """An HTTP server on loopback that answers 204 to every POST (webhook
    deliveries, OTLP exports) and counts them."""

    def __init__(self) -> None:
        sink = self
        self.count = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                sink.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        serving = threading.Thread(target=self._server.serve_forever)
        serving.daemon = True
        serving.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Stack:
    """A frontend and workers as processes, on one Redis; ``env``: other
    environment variables (``OTEL_*``)."""

    def __init__(
        self,
        redis_url: str,
        data: Path,
        *,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"b{tag}"
        self.env = {
            **os.environ,
            "PHASER_REDIS_URL": redis_url,
            "PHASER_DATA_DIR": str(data),
            "PHASER_KEY_PREFIX": self.prefix,
            "PHASER_QUEUE_NAME": f"b{tag}:queue",
            "PHASER_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), os.environ.get("PYTHONPATH", "")]
            ),
            "PHASER_TASK_MODULES": "bench_tasks",
            "PHASER_MAX_ACTIVE_JOBS": "10000000",
            "PHASER_MAX_STORED_JOBS": "100000000",
        }
        for name, value in settings.items():
            self.env[f"PHASER_{name.upper()}"] = str(value)
        self.env.update(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, workers: int = 1, *, frontend: bool = True) -> None:
        command = [sys.executable, "-m", "phaser"]
        # Every process dies with the run, however the run ends.
        for _ in range(workers):
            self.processes.append(
                subprocess.Popen(
                    [*command, "worker"],
                    env=self.env,
                    preexec_fn=die_with_parent,
                )
            )
        if not frontend:
            return
        self.processes.append(
            subprocess.Popen(
                [*command, "serve", "--port", str(self.port)],
                env=self.env,
                preexec_fn=die_with_parent,
            )
        )
        wait_until_ready(f"{self.url}/ready")

    def stop(self) -> None:
        stop_processes(self.processes)


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process still running, then wait for each (30 s,
    then SIGKILL): they shut down side by side."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def baseline_app(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start the bare FastAPI app (`baseline_app.py`) as uvicorn runs
    ``phaser serve``: one process, uvloop, httptools."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "baseline_app:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=HERE,
        env={
            **os.environ,
            "BASELINE_REDIS_URL": redis_url,
            "BASELINE_PREFIX": f"base{uuid.uuid4().hex[:6]}",
        },
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{url}/openapi.json")
    return process, url


@contextmanager
def stack(
    redis: EmbeddedRedis,
    work: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Iterator[Stack]:
    """A running frontend and ``workers`` workers; stopped on exit."""
    running = Stack(
        redis.url, work / uuid.uuid4().hex[:6], env=env, **settings
    )
    running.start(workers)
    try:
        yield running
    finally:
        running.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_loadgen(
    url: str,
    *,
    method: str = "GET",
    body: str = "",
    content_type: str | None = None,
    connections: int = 32,
    seconds: float = 5.0,
) -> dict[str, Any]:
    """Drive a server from a separate process (`loadgen.py`); its figures."""
    command = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--url",
        url,
        "--method",
        method,
        "--body",
        body,
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
    ]
    if content_type:
        command += ["--content-type", content_type]
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=600
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def wait_until_ready(url: str, timeout: float = 30) -> None:
    """Wait until a server answers ``url`` with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


async def fill(
    redis_url: str,
    prefix: str,
    jobs: int,
    *,
    owner: str | None = "alice",
    destroy_now: bool = False,
) -> None:
    """Store finished small jobs exactly as the service does: created
    started (QUEUED), claimed (EXECUTING), then COMPLETED with one small
    result, each step through the store's scripts."""
    from redis.asyncio import Redis as AsyncRedis

    from phaser.clock import now, to_ms
    from phaser.models.job import AttemptRun, Job, JobResult, PhaseChange
    from phaser.models.phase import Action, created_phase
    from phaser.services.ids import new_job_id
    from phaser.storage.job_store import JobStore
    from phaser.storage.keys import KeyLayout, entry_name
    from phaser.storage.transitions import Claim, Transition

    client = AsyncRedis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, KeyLayout(prefix))
    await store.load_scripts()
    batch = 500
    queued = created_phase(start=True)
    for start in range(0, jobs, batch):
        created = []
        for _ in range(min(batch, jobs - start)):
            moment = now()
            job = Job(
                id=new_job_id(to_ms(moment)),
                task="noop",
                owner=owner,
                phase=queued,
                parameters={"n": 1},
                created_at=moment,
                execution_duration=600,
                destruction_time=(
                    moment if destroy_now else moment + timedelta(days=1)
                ),
                attempts=1,
                history=[PhaseChange(queued, moment)],
            )
            created.append(job)
        await asyncio.gather(*(store.create(job) for job in created))
        await asyncio.gather(
            *(
                store.transitions.apply(
                    job,
                    Transition(
                        Action.CLAIM,
                        fields={
                            "started_at": job.created_at,
                            "claim": "f",
                            # What a worker records of its attempt.
                            "runs": [
                                AttemptRun(
                                    1,
                                    entry_name(job.id, 1),
                                    "phaser-worker-7d9f8b6c5-x2x4z-4711",
                                    job.created_at,
                                )
                            ],
                        },
                        event=None,
                    ),
                )
                for job in created
            )
        )
        await asyncio.gather(
            *(
                store.transitions.apply(
                    job,
                    Transition(
                        Action.COMPLETE,
                        Claim("f"),
                        fields={
                            "ended_at": job.created_at,
                            "results": [
                                JobResult(
                                    "result",
                                    2,
                                    "application/json",
                                    f"{job.id}/1-result",
                                )
                            ],
                        },
                        event=None,
                    ),
                )
                for job in created
            )
        )
    await client.aclose()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class Scale:
    """How big and how many: the full suite or a smoke run."""

    rounds: int
    load_seconds: float
    worker_jobs: int
    rounds_slow: int
    latency_jobs: int
    memory_jobs: int
    list_sizes: tuple[int, ...]
    destroy_jobs: int
    waiters: int
    tabs: int
    tabs_seconds: float


FULL = Scale(
    rounds=5,
    load_seconds=5.0,
    worker_jobs=5_000,
    rounds_slow=3,
    latency_jobs=200,
    memory_jobs=20_000,
    list_sizes=(10_000, 100_000, 1_000_000),
    destroy_jobs=1_000_000,
    waiters=10_000,
    tabs=200,
    tabs_seconds=60.0,
)
SMOKE = Scale(
    rounds=1,
    load_seconds=0.5,
    worker_jobs=50,
    rounds_slow=1,
    latency_jobs=10,
    memory_jobs=200,
    list_sizes=(100, 1_000),
    destroy_jobs=200,
    waiters=20,
    tabs=10,
    tabs_seconds=1.0,
)


def quiesce(redis_url: str, timeout: float = 300) -> None:
    """Wait until Redis rewrites no AOF and saves no snapshot in the
    background: after filling a million jobs its rewrite (a forked child
    writing gigabytes) competes for the two cores with what is measured."""
    client = Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            info = client.info("persistence")
            busy = (
                info.get("aof_rewrite_in_progress")
                or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress")
            )
            if not busy:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("Redis kept rewriting its AOF")
            time.sleep(0.2)
    finally:
        client.close()


def ratio(value: float, baseline: float) -> float:
    """``value / baseline`` (0 if the baseline is 0)."""
    return value / baseline if baseline else 0.0


def median(figure: Figure) -> float:
    """The median of a figure's rounds."""
    return statistics.median(figure.rounds)
