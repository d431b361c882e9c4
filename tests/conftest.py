"""Fixtures: a real redis-server, real phaser processes, an HTTP client.

Redis is started the way ``phaser serve`` starts its embedded one
(`phaser.embedded.EmbeddedRedis`), on a random loopback port in a temporary
directory. Frontends and workers run as separate processes, exactly as in
production, and tests talk to them over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from redis.asyncio import Redis
from selenium import webdriver
from selenium.webdriver.chrome.options import Options as ChromeOptions
from selenium.webdriver.chrome.service import Service as ChromeService

from phaser.embedded import EmbeddedRedis, find_redis_server, free_port
from phaser.models.job import Job
from phaser.storage.job_store import JobStore
from phaser.storage.keys import KeyLayout

TESTS_DIR = Path(__file__).parent
TERMINAL = {"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"}


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(
        tmp_path_factory.mktemp("redis"), find_redis_server(), appendonly=False
    )
    server.start()
    yield server
    server.stop()


class Stack:
    """phaser frontends and workers as processes against one Redis.

    Every stack has its own key prefix, queue and data directory, so stacks
    sharing the session's redis-server never see each other's jobs.
    """

    def __init__(
        self, redis_url: str, data_dir: Path, **settings: Any
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]
            ),
            "PHASER_REDIS_URL": redis_url,
            "PHASER_DATA_DIR": str(data_dir),
            "PHASER_KEY_PREFIX": f"t{tag}",
            "PHASER_QUEUE_NAME": f"t{tag}:queue",
            "PHASER_TASK_MODULES": "support_tasks",
            "PHASER_LOG_LEVEL": "WARNING",
            "PHASER_WORKER_GRACE_PERIOD": "2",
            # Load tests create thousands of jobs; quota tests set their own.
            "PHASER_MAX_ACTIVE_JOBS": "100000",
            "PHASER_MAX_STORED_JOBS": "1000000",
        }
        for name, value in settings.items():
            self.env[f"PHASER_{name.upper()}"] = str(value)
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.frontend: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_frontend(self, *, log: Path | None = None) -> None:
        """Start the frontend; its log (stdout and stderr) goes to ``log``
        if given."""
        with log.open("ab") if log else contextlib.nullcontext() as out:
            self.frontend = subprocess.Popen(
                serve_command(self.port),
                env=self.env,
                stdout=out,
                stderr=out,
            )
        try:
            wait_ready(self.url, self.frontend)
        except BaseException:
            # The stack's processes stop with it: a fixture that fails
            # here never hands it back to be stopped (its workers ran on,
            # retrying a Redis the tests had stopped).
            self.stop()
            raise

    def start_worker(
        self, *, log: Path | None = None, **settings: Any
    ) -> subprocess.Popen[bytes]:
        """Start a worker; its log (stdout and stderr) goes to ``log`` if
        given; ``settings`` override the stack's for this worker."""
        env = {**self.env}
        for name, value in settings.items():
            env[f"PHASER_{name.upper()}"] = str(value)
        with log.open("ab") if log else contextlib.nullcontext() as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "phaser", "worker"],
                env=env,
                stdout=out,
                stderr=out,
            )
        self.workers.append(worker)
        return worker

    def record(self, job_id: str) -> Job | None:
        """The job record as stored (worker bookkeeping included)."""

        async def read() -> Job | None:
            redis = Redis.from_url(self.redis_url, decode_responses=True)
            try:
                store = JobStore(
                    redis, KeyLayout(self.env["PHASER_KEY_PREFIX"])
                )
                return await store.get(job_id)
            finally:
                await redis.aclose()

        return asyncio.run(read())

    def worker_running(self, job_id: str) -> subprocess.Popen[bytes]:
        """The worker process whose claim the running job carries."""
        job = self.record(job_id)
        assert job is not None
        assert job.claim is not None
        pid = int(job.claim.split("/")[0].rsplit("-", 1)[1])
        [worker] = [w for w in self.workers if w.pid == pid]
        return worker

    def stop(self) -> None:
        for process in [*self.workers, self.frontend]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.send_signal(signal.SIGCONT)  # if a test stopped it
        for process in [*self.workers, self.frontend]:
            if process is None:
                continue
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium, driven by Selenium (no browser is
    downloaded: the tests fail under CI if it is missing)."""
    options = ChromeOptions()
    options.binary_location = require_tool("chromium", "browser tests")
    driver_path = require_tool("chromedriver", "browser tests")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=ChromeService(driver_path), options=options
    )
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def add_user(stack: Stack, name: str, *, admin: bool = False) -> str:
    """Add a user to the stack's users file (``phaser user add``); the
    token."""
    command = [sys.executable, "-m", "phaser", "user", "add", name]
    if admin:
        command.append("--admin")
    done = subprocess.run(
        command,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip().splitlines()[-1]


def run_python(
    env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """This Python run with ``args`` in ``env``, its output captured."""
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_phaser(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``phaser`` command (client side) run against a stack."""
    env = {**os.environ, "PHASER_URL": stack.url}
    return run_python(env, "-m", "phaser", *args)


def first_event(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job as its event stream's first event carries it."""
    with http.stream("GET", f"/api/v1/jobs/{job_id}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[6:])
                return event
    raise AssertionError("no event")


def serve_command(port: int) -> list[str]:
    """``phaser serve`` on a loopback port, as the tests start it."""
    return [sys.executable, "-m", "phaser", "serve", "--port", str(port)]


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    # Generous: on two busy cores a start (imports, Redis checks) has
    # taken over 20 s; a frontend that will not start exits, and says so.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"phaser exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"phaser at {url} did not become ready")


def make_stack(
    redis_server: EmbeddedRedis,
    data_dir: Path,
    workers: int = 1,
    **settings: Any,
) -> Stack:
    stack = Stack(redis_server.url, data_dir, **settings)
    for _ in range(workers):
        stack.start_worker()
    stack.start_frontend()
    return stack


@pytest.fixture(scope="session")
def stack(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One frontend and one worker, shared by the tests that need no
    isolation (they only look at jobs they created themselves)."""
    running = make_stack(
        redis_server,
        tmp_path_factory.mktemp("data"),
        max_wait=5,
        max_execution_duration=120,
        default_execution_duration=60,
        # Generated sync requests for long jobs end soon (test_fuzz).
        sync_timeout=4,
    )
    yield running
    running.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        yield http


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A directory the test tasks write their evidence into."""
    path = tmp_path / "evidence"
    path.mkdir()
    return path


def create_job(
    client: httpx.Client, task: str, parameters: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/jobs", json={"task": task, "parameters": parameters, **fields}
    )
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def wait_for(
    client: httpx.Client,
    job_id: str,
    phases: set[str],
    timeout: float = 30,
) -> dict[str, Any]:
    """Wait (with the server's own long poll) until the job is in a phase."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
    while True:
        if job["phase"] in phases:
            return job
        # Returns as soon as the phase is no longer the one seen last.
        job = client.get(
            f"/api/v1/jobs/{job_id}",
            params={"wait": 5, "phase": job["phase"]},
        ).json()
        if job["phase"] not in phases and time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job['phase']}")


def wait_for_file(path: Path, timeout: float = 15) -> str:
    """Wait until a task has written a (non-empty) file; its text."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and (text := path.read_text())):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)
    return text


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    """Wait until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        time.sleep(0.02)


def require_tool(name: str, why: str) -> str:
    """The path of a command-line tool the test needs: a skip where it is
    missing, but a failure under CI, which installs it (``.ci/run``)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run should install it")
        pytest.skip(f"{name} is not installed ({why})")
    return path


@pytest.fixture(scope="module")
def metered_stack(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    """A frontend and a worker serving metrics (``PHASER_METRICS_PORT``),
    fresh for each module (counters start at 0); the worker's metrics URL.
    """
    port = free_port()
    stack = make_stack(
        redis_server,
        tmp_path_factory.mktemp("metered"),
        metrics_port=port,
        max_wait=10,
    )
    yield stack, f"http://127.0.0.1:{port}"
    stack.stop()


XLINK_URL = "http://www.ivoa.net/xml/Xlink/xlink.xsd"


def _schema_dir() -> Path:
    configured = os.environ.get("PHASER_UWS_SCHEMA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "uws"


class _LocalXlink(etree.Resolver):
    """Map the XLink schema the UWS schema imports to the local copy."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def]
        if system_url == XLINK_URL or system_url.endswith("xlink.xsd"):
            return self.resolve_filename(
                str(self._directory / "xlink.xsd"), context
            )
        return None


@pytest.fixture(scope="session")
def schema() -> etree.XMLSchema:
    directory = _schema_dir()
    if not (directory / "UWS-1.1.xsd").exists():
        pytest.skip(f"UWS schema files not found in {directory}")
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXlink(directory))
    document = etree.parse(str(directory / "UWS-1.1.xsd"), parser)
    return etree.XMLSchema(document)


def valid_uws(schema: etree.XMLSchema, content: bytes) -> etree._Element:
    """The parsed document, if it is schema-valid UWS."""
    root = etree.fromstring(content)
    if not schema.validate(root):
        raise AssertionError(f"{schema.error_log}\n{content.decode()}")
    return root


class EmbeddedServer:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PHASER_")
        }
        self.env["PHASER_DATA_DIR"] = str(data_dir)
        self.env["PHASER_LOG_LEVEL"] = "WARNING"
        # Jobs still running 1 s after SIGTERM go back to the queue.
        self.env["PHASER_WORKER_GRACE_PERIOD"] = "1"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            serve_command(self.port),
            env=self.env,
            # Its own process group, as a shell gives a foreground job.
            start_new_session=True,
            stdout=subprocess.PIPE,
        )
        wait_ready(self.url, self.process)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(30)


def is_alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its reaper does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status


def children(pid: int) -> set[int]:
    """Pids of the processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found
