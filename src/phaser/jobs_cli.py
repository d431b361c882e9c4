"""``phaser tasks`` and ``phaser jobs …``: the Python client on the
command line.

Tables and progress for people, ``--json`` for scripts; one line on
stderr and a non-zero exit code for anything that went wrong, never a
traceback. Exit codes of ``jobs wait`` and ``jobs submit --wait``: 0 the
job COMPLETED, 1 ERROR (or any failure of the command), 2 ABORTED, 3 the
wait timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from .cli_values import coerce, pairs
from .client import (
    APIError,
    Client,
    ClientError,
    Job,
    RetryPolicy,
    WaitTimeout,
)
from .models.api import ChildrenModel, JobModel, TaskModel
from .models.phase import (
    CHILD_GROUPS,
    FAILED,
    STOPPED,
    SUCCEEDED,
    ExecutionPhase,
    exit_code,
)

__all__ = ["run"]

EXIT_FAILURE = 1
EXIT_TIMEOUT = 3


def _exit_code(phase: ExecutionPhase) -> int:
    """The exit status of ``jobs wait`` for a job in ``phase``: 0
    completed, 1 error, 2 aborted, 1 otherwise."""
    code = exit_code(phase)
    return EXIT_FAILURE if code is None else code


def run(args: argparse.Namespace) -> int:
    """Run ``phaser tasks`` or ``phaser jobs …``; the exit code."""
    out = Console()
    try:
        # Fail fast when nothing answers; ride out a short 503.
        retry = RetryPolicy(attempts=3)
        with Client(args.url, token=args.token, retry=retry) as client:
            if args.command == "tasks":
                return _tasks(client, args, out)
            return _JOBS[args.jobs_command](client, args, out)
    except WaitTimeout as exc:
        _error(str(exc))
        return EXIT_TIMEOUT
    except APIError as exc:
        fields = "; ".join(
            f"{e.get('field')}: {e.get('message')}" for e in exc.errors
        )
        _error(f"{exc.detail}" + (f" ({fields})" if fields else ""))
        return EXIT_FAILURE
    except ClientError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _error(text: str) -> None:
    print(f"phaser: {text}", file=sys.stderr)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _tasks(client: Client, args: argparse.Namespace, out: Console) -> int:
    tasks = client.tasks()
    if args.json:
        _print_json([task.model_dump(mode="json") for task in tasks])
        return 0
    table = Table("task", "parameters", "description")
    for task in tasks:
        table.add_row(task.name, _signature(task), task.description)
    out.print(table)
    return 0


def _signature(task: TaskModel) -> str:
    schema = task.parameters_schema
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return "(any)"
    required = set(schema.get("required", []))
    parts = []
    for name, spec in properties.items():
        kind = spec.get("type", "any")
        part = f"{name}: {kind}"
        if name not in required and "default" in spec:
            part += f" = {json.dumps(spec['default'])}"
        parts.append(part)
    return ", ".join(parts)


def _submit(client: Client, args: argparse.Namespace, out: Console) -> int:
    schema = next(
        (t.parameters_schema for t in client.tasks() if t.name == args.task),
        {},
    )
    job = client.submit(
        args.task,
        coerce(args.parameters, schema),
        start=not args.no_start,
        run_id=args.run_id,
        execution_duration=args.duration,
        files={n: Path(v) for n, v in pairs(args.file, "--file")},
        uploads=dict(pairs(args.upload, "--upload")),
        priority=args.priority,
        concurrency_key=args.concurrency_key,
        after=args.after,
        after_policy="any_end" if args.after_any else None,
        parent_id=args.parent,
        notify={"url": args.notify} if args.notify else None,
        description=args.description,
        retain_after_end=args.retain_after_end,
    )
    if args.notify and not args.json:
        # Shown once: the key to check the deliveries' signatures with.
        out.print(f"webhook secret: {job.notify and job.notify.secret}")
    if args.wait:
        done = client.wait(
            job.id, timeout=args.timeout, progress=not args.json
        )
        if done.notify is not None and job.notify is not None:
            done.notify.secret = job.notify.secret  # answered once only
        return _finish(done, args, out)
    _show(job, args, out)
    return 0


def _finish(job: Job, args: argparse.Namespace, out: Console) -> int:
    _show(job, args, out)
    return _exit_code(job.phase)


def _wait(client: Client, args: argparse.Namespace, out: Console) -> int:
    job = client.wait(
        args.id,
        timeout=args.timeout,
        progress=not args.json and not args.children,
        children=args.children,
    )
    if not args.children:
        return _finish(job, args, out)
    _show(job, args, out)
    # As a wait for one job would end: the worst way a child ended.
    counts = job.children
    if counts is None or not (counts.failed or counts.aborted):
        return _exit_code(SUCCEEDED)
    return _exit_code(FAILED if counts.failed else STOPPED)


def _show_command(
    client: Client, args: argparse.Namespace, out: Console
) -> int:
    _show(client.get(args.id), args, out)
    return 0


def _show(job: JobModel, args: argparse.Namespace, out: Console) -> None:
    if args.json:
        print(job.model_dump_json(indent=2))
        return
    table = Table(show_header=False, box=None)
    table.add_row("id", job.id)
    table.add_row("task", job.task)
    table.add_row("phase", job.phase.value)
    if job.run_id:
        table.add_row("run id", job.run_id)
    table.add_row("parameters", json.dumps(job.parameters))
    table.add_row("priority", str(job.priority))
    if job.concurrency_key:
        table.add_row("concurrency key", job.concurrency_key)
    if job.after:
        table.add_row(f"after ({job.after_policy})", " ".join(job.after))
    if job.description:
        table.add_row("description", job.description)
    if job.parent_id:
        table.add_row("parent", job.parent_id)
    if job.children is not None:
        table.add_row("children", _children(job.children))
    if job.run_after is not None:
        table.add_row("starts at", f"{job.run_after.isoformat()} (held)")
    if job.progress.percent is not None or job.progress.message:
        percent = job.progress.percent
        shown = f"{percent:.0f}% " if percent is not None else ""
        table.add_row("progress", shown + (job.progress.message or ""))
    for result in job.results:
        table.add_row(
            f"result {result.id}",
            f"{result.size} bytes, {result.mime_type}",
        )
    for error in job.errors:
        table.add_row("error", error.message)
    for level, log in (("info", job.info), ("warning", job.warnings)):
        for line in log:
            table.add_row(level, line.message)
    if job.no_abort_reason:
        table.add_row("not abortable", job.no_abort_reason)
    table.add_row("attempts", str(job.attempts))
    table.add_row("url", job.href)
    out.print(table)


def _children(counts: ChildrenModel) -> str:
    """``3 of 10 running, 5 succeeded…``: the groups that have any."""
    shown = [
        f"{getattr(counts, group)} {group}"
        for group in CHILD_GROUPS
        if getattr(counts, group)
    ]
    return f"{counts.total}: " + (", ".join(shown) or "none active")


def _list(client: Client, args: argparse.Namespace, out: Console) -> int:
    jobs = _first(
        client.jobs(
            task=args.task,
            phase=args.phase,
            run_id=args.run_id,
            parent_id=args.parent,
            top_level=args.top_level,
        ),
        args.limit,
    )
    if args.json:
        _print_json([job.model_dump(mode="json") for job in jobs])
        return 0
    table = Table("task", "phase", "created", "run id")
    table.columns.insert(0, Column("id", no_wrap=True, min_width=26))
    for job in jobs:
        table.add_row(
            job.id,
            job.task,
            job.phase.value,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            job.run_id or "",
        )
    out.print(table)
    return 0


def _first(jobs: Iterator[Job], limit: int) -> list[Job]:
    found: list[Job] = []
    for job in jobs:
        if len(found) >= limit:
            break
        found.append(job)
    return found


def _watch(client: Client, args: argparse.Namespace, out: Console) -> int:
    last: JobModel | None = None
    for event in client.events(args.id):
        if args.json:
            print(
                json.dumps(
                    {
                        "event": event.kind,
                        "job": event.job.model_dump(mode="json")
                        if event.job
                        else None,
                    }
                ),
                flush=True,
            )
        elif event.job is not None:
            job = event.job
            percent = job.progress.percent
            shown = f" {percent:.0f}%" if percent is not None else ""
            message = (
                f" {job.progress.message}" if job.progress.message else ""
            )
            out.print(f"{event.kind:<8} {job.phase.value}{shown}{message}")
        else:
            out.print(f"{event.kind:<8} {event.job_id}")
        last = event.job or last
    return _exit_code(last.phase) if last else 0


#: Commands that change one job and show it.
_CHANGES: dict[str, Callable[[Client, argparse.Namespace], Job]] = {
    "abort": lambda client, args: client.abort(args.id),
    "hold": lambda client, args: client.hold(args.id),
    "release": lambda client, args: client.release(args.id),
    "suspend": lambda client, args: client.suspend(args.id),
    "resume": lambda client, args: client.resume(args.id),
    "priority": lambda client, args: client.update(
        args.id, priority=args.priority
    ),
}


def _change(client: Client, args: argparse.Namespace, out: Console) -> int:
    _show(_CHANGES[args.jobs_command](client, args), args, out)
    return 0


def _delete(client: Client, args: argparse.Namespace, out: Console) -> int:
    client.delete(args.id)
    if args.json:
        _print_json({"deleted": args.id})
    else:
        out.print(f"deleted {args.id}")
    return 0


def _deliveries(client: Client, args: argparse.Namespace, out: Console) -> int:
    attempts = client.deliveries(args.id)
    if args.json:
        _print_json(attempts)
        return 0
    table = Table("event", "attempt", "at", "status", "ms", "error")
    for a in attempts:
        status = str(a["status"]) if a["status"] is not None else "—"
        error = (a["error"] or "") + (
            " (given up)" if a.get("gave_up") else ""
        )
        table.add_row(
            a["event"], str(a["attempt"]), a["at"], status, str(a["ms"]), error
        )
    out.print(table)
    return 0


def _results(client: Client, args: argparse.Namespace, out: Console) -> int:
    if args.output is not None:
        client.save(args.id, args.result_id, args.output)
        return 0
    client.stream(args.id, args.result_id, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


_JOBS: dict[str, Callable[[Client, argparse.Namespace, Console], int]] = {
    "submit": _submit,
    "list": _list,
    "show": _show_command,
    "wait": _wait,
    "watch": _watch,
    **dict.fromkeys(_CHANGES, _change),
    "delete": _delete,
    "results": _results,
    "deliveries": _deliveries,
}
