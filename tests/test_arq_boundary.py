"""The parts of arq phaser leans on beyond its public API, so that an arq
upgrade that changes them fails here instead of in production.

`phaser.worker.queue_worker.QueueWorker` overrides arq's private poll
iteration (`_poll_iteration`, which arq's `main` calls in a loop) and
`main`, counts slots with arq's own semaphore and counter, keeps its
running entries where arq's shutdown looks for them (`tasks`), records
its health with arq's `heart_beat`, and takes entries out of arq's queue
with its own script, in arq's key layout (`phaser.queue`).
`pyproject.toml` pins arq to the minor version these checks were written
against.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings
from arq.jobs import serialize_job
from arq.worker import Worker, func

from phaser.clock import to_ms
from phaser.queue import RUN_JOB, Entry, serialize

ROOT = Path(__file__).resolve().parents[1]


def test_arq_is_the_minor_version_phaser_is_pinned_to() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"arq>=([0-9]+\.[0-9]+)[^"]*,<([0-9.]+)"', pyproject)
    assert pin, "arq must be pinned to one minor version in pyproject.toml"
    installed = tuple(int(p) for p in version("arq").split(".")[:2])
    low = tuple(int(p) for p in pin.group(1).split("."))
    high = tuple(int(p) for p in pin.group(2).split("."))
    assert low <= installed < high


def test_the_methods_phaser_overrides_keep_their_shape() -> None:
    expected = {
        "_poll_iteration": ["self"],
        "main": ["self"],
        "heart_beat": ["self"],
    }
    for name, parameters in expected.items():
        method = getattr(Worker, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name
    # arq's main loop is what calls the poll iteration.
    assert "await self._poll_iteration()" in inspect.getsource(Worker.main)


async def _noop(ctx: dict[str, Any]) -> None:
    pass


def test_the_worker_state_phaser_shares_is_still_there() -> None:
    worker = Worker(
        functions=[func(_noop, name="noop")],
        redis_settings=RedisSettings(port=1),
        max_jobs=3,
        job_timeout=5,
        handle_signals=False,
    )
    assert isinstance(worker.sem, asyncio.BoundedSemaphore)
    assert worker.job_counter == 0
    assert worker.tasks == {}
    assert worker.in_progress_timeout_s == 15
    assert worker.job_timeout_s == 5
    assert worker.max_jobs == 3
    assert (worker.jobs_complete, worker.jobs_failed) == (0, 0)
    assert worker.jobs_retried == 0
    # A slot taken as phaser takes one, and given back as arq does.
    free = worker.sem._value
    asyncio.run(worker.sem.acquire())
    worker.job_counter += 1
    worker._release_sem_dec_counter_on_complete()
    assert worker.job_counter == 0
    assert worker.sem._value == free
    assert isinstance(inspect.getattr_static(Worker, "pool"), property)
    # arq's shutdown waits for, or cancels, what is in `tasks`.
    assert "self.tasks.values()" in inspect.getsource(Worker.close)


def test_an_entry_in_arqs_layout_is_read_back() -> None:
    # arq's own serializer writes what phaser's worker reads, under the
    # key arq's own worker reads it from.
    payload = serialize_job(
        RUN_JOB,
        ("01job", 2),
        {"task": "echo", "owner": None, "trace": "00-ab-cd-01"},
        None,
        1_700_000_000_000,
        serializer=serialize,
    )
    entry = Entry.read("01job.2", payload)
    assert (entry.job_id, entry.attempt, entry.task) == ("01job", 2, "echo")
    assert entry.owner is None
    assert entry.trace == "00-ab-cd-01"
    assert to_ms(entry.enqueued_at) == 1_700_000_000_000
    run = inspect.getsource(Worker.run_job)
    assert "pipe.get(job_key_prefix + job_id)" in run
