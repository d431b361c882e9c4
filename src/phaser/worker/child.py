"""Entry point of the child process that runs one ``def`` task.

The parent starts ``python -m phaser.worker.child`` and writes one JSON
request on its standard input (task name and module, job id, attempt,
parameters, result and scratch directories). The child answers with JSON
lines on the standard output it was started with (the task's own prints go
to stderr):

- ``{"type": "progress", "percent": ..., "message": ...}``
- ``{"type": "result", "id", "size", "mime_type", "key"}``
- ``{"type": "done"}`` or
  ``{"type": "error", "message", "transient", "code"}``

No Python objects are serialized: the task is found by name in the
registry, the parameters are JSON.

The child must not outlive its worker, nor run on while its worker is
frozen: recovery would then start the next attempt next to it. So it asks
the kernel for SIGKILL when its parent dies, and a watchdog thread reads
the parent's pings (newlines on standard input, every heartbeat interval):
when standard input closes or no ping came for ``parent_timeout`` seconds
(well under the stall timeout after which recovery acts), it kills the
child's whole process group.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

from ..embedded import die_with_parent
from ..storage.results import ResultStore, open_result_store
from ..tasks.registry import default_registry
from .context import BaseTaskContext, Update, failure_of

__all__ = ["ChildTaskContext", "main"]


class ChildTaskContext(BaseTaskContext):
    """The context of a ``def`` task running in a child process.

    Updates go to the parent as JSON lines. `aborted` stays false: on abort
    this process is killed.
    """

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        store: ResultStore,
        scratch_dir: Path,
        channel: IO[str],
        uploads: dict[str, Path],
    ) -> None:
        super().__init__(
            job_id=job_id,
            attempt=attempt,
            store=store,
            scratch_dir=scratch_dir,
            uploads=uploads,
        )
        self._channel = channel

    def send(self, message: dict[str, Any]) -> None:
        """Write one message to the parent."""
        self._channel.write(json.dumps(message) + "\n")
        self._channel.flush()

    def emit(self, update: Update) -> None:
        """Send the update to the parent."""
        self.send(update.to_message())


def _die() -> None:
    """Kill this process and everything it started (its process group:
    the worker starts the child in a session of its own)."""
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _watch_parent(pings: int, timeout: float) -> None:
    """Kill the process group once the parent stops pinging."""
    while True:
        ready, _, _ = select.select([pings], [], [], timeout)
        if not ready or not os.read(pings, 4096):
            _die()
            return


def _guard(parent: int, timeout: float) -> None:
    """Tie this process's life to its parent's (see the module doc)."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        _die()
    threading.Thread(
        target=_watch_parent,
        args=(sys.stdin.fileno(), timeout),
        name="parent-watchdog",
        daemon=True,
    ).start()


def main() -> None:
    """Run the task the parent asks for, then exit."""
    # Keep the protocol stream to ourselves; the task's prints go to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Read past Python's buffering: the watchdog reads the same descriptor.
    # Whatever follows the request's line is pings.
    data = b""
    while b"\n" not in data:
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            return
        data += chunk
    request = json.loads(data.partition(b"\n")[0])
    _guard(request["parent_pid"], request["parent_timeout"])
    # Import only the module that defines the task: a process per job
    # should not pay for every other task's imports.
    importlib.import_module(request["module"])
    task = default_registry.get(request["task"])
    ctx = ChildTaskContext(
        job_id=request["job_id"],
        attempt=request["attempt"],
        store=open_result_store(request["results"]),
        scratch_dir=Path(request["scratch_dir"]),
        channel=channel,
        uploads={n: Path(p) for n, p in request["uploads"].items()},
    )
    try:
        value = task.function(
            task.bind(request["parameters"], ctx.uploads), ctx
        )
        if value is not None:
            ctx.add_result(value)
    except Exception as exc:
        failure = failure_of(exc)
        ctx.send(
            {
                "type": "error",
                "message": failure.message,
                "transient": failure.transient,
                "code": failure.code.value,
            }
        )
    else:
        ctx.send({"type": "done"})


if __name__ == "__main__":
    main()
