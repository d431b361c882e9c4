"""The arguments of ``phaser tasks`` and ``phaser jobs …`` (run by
`phaser.jobs_cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .models.phase import ExecutionPhase

__all__ = ["add_commands"]


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="server URL (default PHASER_URL, else 127.0.0.1:8000)"
    )
    parser.add_argument("--token", help="bearer token (default PHASER_TOKEN)")


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON (for scripts)"
    )


def add_commands(commands: Any) -> None:
    """Add ``tasks`` and ``jobs`` to the ``phaser`` command's parsers."""
    tasks = commands.add_parser(
        "tasks", help="list the server's tasks and their parameters"
    )
    _connection(tasks)
    _json_flag(tasks)
    jobs = commands.add_parser("jobs", help="submit, watch and manage jobs")
    verbs = jobs.add_subparsers(dest="jobs_command", required=True)

    submit = verbs.add_parser(
        "submit",
        help="create a job (and start it)",
        description=(
            "Parameters as key=value, coerced to the type the task's"
            " parameter schema gives (numbers, booleans); key:=JSON passes"
            " a JSON value as it is."
        ),
    )
    submit.add_argument("task")
    submit.add_argument("parameters", nargs="*", metavar="key=value")
    submit.add_argument("--run-id")
    submit.add_argument("--duration", type=int, help="execution duration (s)")
    submit.add_argument(
        "--no-start", action="store_true", help="leave the job PENDING"
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait for the end (exit code)"
    )
    submit.add_argument("--timeout", type=float, help="with --wait (s)")
    submit.add_argument(
        "--priority", type=int, help="0 to 9, higher runs first"
    )
    submit.add_argument(
        "--concurrency-key", help="your jobs with one key share a limit"
    )
    submit.add_argument("--description", help="your words for the job")
    submit.add_argument(
        "--retain-after-end",
        type=int,
        metavar="SECONDS",
        help="destroy the job this long after it ends",
    )
    submit.add_argument(
        "--after",
        action="append",
        default=[],
        metavar="ID",
        help="a job that must complete first (repeatable)",
    )
    submit.add_argument(
        "--after-any", action="store_true", help="with --after: any end"
    )
    submit.add_argument("--parent", help="the job this one is a child of")
    submit.add_argument(
        "--notify", metavar="URL", help="a webhook told of the job's end"
    )
    submit.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a file the task takes (repeatable)",
    )
    submit.add_argument(
        "--upload",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a file by reference, fetched by the worker (repeatable)",
    )
    listing = verbs.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--task")
    listing.add_argument(
        "--phase", action="append", choices=[p.value for p in ExecutionPhase]
    )
    listing.add_argument("--run-id")
    listing.add_argument("--parent", help="only this job's children")
    listing.add_argument(
        "--top-level", action="store_true", help="only jobs with no parent"
    )
    listing.add_argument(
        "--limit", type=int, default=20, help="most jobs shown (default 20)"
    )
    show = verbs.add_parser("show", help="one job")
    wait = verbs.add_parser(
        "wait", help="wait for a job to end (exit 0/1/2 by final phase)"
    )
    wait.add_argument("--timeout", type=float, help="seconds")
    wait.add_argument(
        "--children",
        action="store_true",
        help=(
            "wait for every child of the job to end instead (exit 0: all"
            " succeeded, 1: one failed, 2: one was aborted)"
        ),
    )
    watch = verbs.add_parser("watch", help="follow a job's events")
    abort = verbs.add_parser("abort", help="abort a job")
    hold = verbs.add_parser("hold", help="hold a pending or queued job")
    release = verbs.add_parser("release", help="queue a held job")
    suspend = verbs.add_parser(
        "suspend", help="pause a running job (def tasks)"
    )
    resume = verbs.add_parser("resume", help="let a suspended job go on")
    priority = verbs.add_parser(
        "priority", help="change the priority of a waiting job"
    )
    priority.add_argument("id", help="job id")
    priority.add_argument("priority", type=int, help="0 to 9")
    delete = verbs.add_parser("delete", help="delete a job")
    deliveries = verbs.add_parser(
        "deliveries", help="a job's webhook delivery attempts"
    )
    results = verbs.add_parser("results", help="download a result")
    results.add_argument("result_id", nargs="?", default="result")
    results.add_argument(
        "-o", "--output", type=Path, help="file (default: standard output)"
    )
    one_job = (
        show,
        wait,
        watch,
        abort,
        hold,
        release,
        suspend,
        resume,
        deliveries,
    )
    for parser in (*one_job, delete):
        parser.add_argument("id", help="job id")
    results.add_argument("id", help="job id")
    every = (submit, listing, *one_job, priority, delete)
    for parser in every:
        _json_flag(parser)
    for parser in (*every, results):
        _connection(parser)
