"""The ``phaser`` command: ``serve``, ``worker``, ``user``, and the
client's ``tasks`` and ``jobs`` (`phaser.jobs_cli`, arguments in
`phaser.jobs_args`)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence

import uvicorn
from fastapi import FastAPI

from . import __version__
from .config import (
    ConfigurationError,
    Settings,
    load_settings,
    unknown_variables,
)
from .connections import guarded_protocol, raise_file_limit
from .embedded import (
    DataDirLock,
    EmbeddedRedis,
    Supervisor,
    die_with_parent,
    find_redis_server,
)
from .jobs_args import add_commands
from .jobs_cli import run as run_client
from .services.auth import UserDirectory
from .storage.connect import check_redis
from .tasks.registry import default_registry
from .tracing import tracing_unavailable

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phaser",
        description="A job execution server (IVOA UWS 1.1 and JSON).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the HTTP frontend (with Redis and a worker if embedded)",
        description=(
            "Run the HTTP frontend. Without PHASER_REDIS_URL, also start a"
            " private redis-server (AOF under PHASER_DATA_DIR) and a worker."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address")
    serve.add_argument("--port", type=int, default=8000, help="bind port")
    commands.add_parser(
        "worker",
        help="run a worker (needs PHASER_REDIS_URL)",
        description="Run an arq worker that executes queued jobs.",
    )
    user = commands.add_parser(
        "user",
        help="manage users of auth mode token",
        description=(
            "Add, re-key, remove and list users in the users file. A running"
            " server sees changes within a second or two."
        ),
    )
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser(
        "add",
        help="add a user (or give one a new token) and print the token once",
    )
    add.add_argument("name", help="user name")
    add.add_argument(
        "--admin", action="store_true", help="may manage all jobs"
    )
    remove = user_commands.add_parser(
        "remove", help="remove a user (their token stops working)"
    )
    remove.add_argument("name", help="user name")
    user_commands.add_parser("list", help="list users")
    add_commands(commands)
    return parser


def _user(settings: Settings, args: argparse.Namespace) -> int:
    """``phaser user …``."""
    path = settings.users_path
    match args.user_command:
        case "add":
            token = UserDirectory.add(path, args.name, admin=args.admin)
            print(
                f"user {args.name} in {path}; token (shown once, keep it"
                f" secret):\n{token}"
            )
        case "remove":
            UserDirectory.remove(path, args.name)
            print(f"user {args.name} removed from {path}")
        case "list":
            for name, admin in UserDirectory.names(path):
                print(f"{name}\tadmin" if admin else name)
        case _:
            raise AssertionError(args.user_command)
    return 0


def _say(settings: Settings, text: str) -> None:
    """A line for the person at the terminal; not in production, where
    every line on the output is a JSON log record."""
    if settings.log_profile != "production":
        print(text, flush=True)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _start_worker(redis_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PHASER_REDIS_URL": redis_url}
    return subprocess.Popen(
        [sys.executable, "-m", "phaser", "worker"],
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
        # Ctrl-C in a terminal signals the whole foreground process group:
        # only phaser serve should hear it, and stop the worker itself.
        start_new_session=True,
    )


def _stop_worker(worker: subprocess.Popen[bytes], grace: float) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        # Its grace period for running jobs, plus time to hand back the rest.
        worker.wait(grace + 10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, saying where it serves once it has bound the
    port (not before: the bind can fail)."""

    def __init__(
        self,
        config: uvicorn.Config,
        announce: Callable[[], None],
        closing: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self._announce = announce
        self._closing = closing

    async def startup(
        self, sockets: list[socket.socket] | None = None
    ) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()

    async def shutdown(
        self, sockets: list[socket.socket] | None = None
    ) -> None:
        # Event streams and long polls end now, instead of holding the
        # graceful shutdown to its timeout (browsers reconnect, to another
        # frontend behind a load balancer).
        self._closing()
        await super().shutdown(sockets)


def _close(app: FastAPI) -> None:
    """Tell the app's open streams and waits that the server stops."""
    service = getattr(app.state, "job_service", None)
    if service is not None:
        service.hub.close()


class _StopRequestedError(Exception):
    """SIGINT or SIGTERM after (or before) uvicorn's graceful shutdown."""


def _exit_cleanly(signum: int, frame: object) -> None:
    raise _StopRequestedError(signum)


def _serve(settings: Settings, host: str, port: int) -> int:
    from .main import create_app

    if (
        settings.auth == "none"
        and not _is_loopback(host)
        and not settings.allow_anonymous_network
    ):
        print(
            f"phaser: refusing to serve {host} with PHASER_AUTH=none (anyone"
            " who can connect would share one anonymous user); use"
            " PHASER_AUTH=header or token, or set"
            " PHASER_ALLOW_ANONYMOUS_NETWORK=true",
            file=sys.stderr,
        )
        return 2
    redis: EmbeddedRedis | None = None
    supervisor = Supervisor()
    lock = DataDirLock(settings.data_dir)
    try:
        if not settings.external_redis:
            lock.acquire()
            embedded = EmbeddedRedis(
                settings.redis_dir.resolve(),
                find_redis_server(settings.redis_server),
                fsync=(
                    "always" if settings.durability == "fsync" else "everysec"
                ),
            )
            supervisor.add("redis-server", embedded.launch)
            redis = embedded
            settings = settings.model_copy(update={"redis_url": redis.url})
            if settings.embedded_worker:
                url = redis.url
                supervisor.add("worker", lambda: _start_worker(url))
            supervisor.start()
            _say(
                settings,
                f"phaser: embedded Redis at {redis.url}, data in"
                f" {settings.data_dir.resolve()}",
            )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM and then raises
        # the signal again; these handlers turn that into a normal exit
        # through the clean-up below instead of dying on the spot.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        signal.signal(signal.SIGINT, _exit_cleanly)
        protocol = guarded_protocol(
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            max_connections=raise_file_limit(settings.http_max_connections),
        )
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=protocol,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=5,
            timeout_keep_alive=settings.http_keep_alive,
            # In production the app has set up JSON logging for uvicorn's
            # loggers too (phaser.logs); uvicorn's default would undo it.
            log_config=(
                None
                if settings.log_profile == "production"
                else uvicorn.config.LOGGING_CONFIG
            ),
        )
        announce = (
            f"phaser: serving http://{host}:{port}/ (JSON API /api/v1,"
            " docs /docs)"
        )
        _AnnouncingServer(
            config, lambda: _say(settings, announce), lambda: _close(app)
        ).run()
    except _StopRequestedError:
        pass
    finally:

        def shutdown() -> None:
            # The worker first (it hands running jobs back through Redis),
            # Redis last.
            worker = supervisor.process("worker")
            if worker is not None:
                _stop_worker(worker, settings.worker_grace_period)
            if redis is not None:
                redis.stop()

        # Children stopped on purpose are not restarted.
        supervisor.stop(shutdown)
        lock.release()
    return 0


def _preflight(settings: Settings) -> str | None:
    """What keeps a server or worker from starting, in one line (instead
    of a traceback from deep inside the start-up), or `None`."""
    try:
        default_registry.load_modules(settings.task_modules)
    except ImportError as exc:
        return (
            f"PHASER_TASK_MODULES: cannot import {exc.name or exc}"
            f" ({exc}); the current directory and PYTHONPATH are searched"
        )
    problem = tracing_unavailable(settings)
    if problem is not None:
        return problem
    if not settings.external_redis:
        if settings.durability == "replicated":
            return (
                "PHASER_DURABILITY=replicated needs a Redis with replicas"
                " (PHASER_REDIS_URL or PHASER_REDIS_SENTINELS); the embedded"
                " one has none"
            )
        return None
    return check_redis(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``phaser`` command."""
    args = _parser().parse_args(argv)
    if args.command in {"tasks", "jobs"}:
        # A client of a server: the server's settings do not apply.
        return run_client(args)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"phaser: {exc}", file=sys.stderr)
        return 2
    for warning in unknown_variables():
        print(f"phaser: warning: {warning}", file=sys.stderr)
    if args.command in {"serve", "worker"}:
        problem = _preflight(settings)
        if problem is not None:
            print(f"phaser: {problem}", file=sys.stderr)
            return 2
    try:
        match args.command:
            case "serve":
                return _serve(settings, args.host, args.port)
            case "user":
                return _user(settings, args)
            case "worker":
                if not settings.external_redis:
                    print(
                        "phaser: PHASER_REDIS_URL must be set for a worker",
                        file=sys.stderr,
                    )
                    return 2
                from .worker.app import run_worker

                run_worker(settings)
                return 0
            case _:
                raise AssertionError(args.command)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"phaser: {exc}", file=sys.stderr)
        return 1
