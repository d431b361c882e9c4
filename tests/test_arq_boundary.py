"""The parts of arq phaser leans on beyond its public API, so that an arq
upgrade that changes them fails here instead of in production.

`phaser.worker.app._ResilientWorker` overrides arq's private poll loop
(`_poll_iteration`), its `start_jobs`, `run_job` and `main`, and gives
back a slot by hand (`sem`, `job_counter`) when `start_jobs` fails half
way. `pyproject.toml` pins arq to the minor version these checks were
written against.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

from arq.worker import Worker

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
        "start_jobs": ["self", "job_ids"],
        "run_job": ["self", "job_id", "score"],
        "main": ["self"],
    }
    for name, parameters in expected.items():
        method = getattr(Worker, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name


def test_start_jobs_still_counts_a_job_before_its_pipeline() -> None:
    # The slot phaser gives back after a failed start is the one arq took
    # here: the semaphore, then the counter, then the WATCH pipeline.
    source = inspect.getsource(Worker.start_jobs)
    acquire = source.index("self.sem.acquire()")
    count = source.index("self.job_counter = self.job_counter + 1")
    pipeline = source.index("self.pool.pipeline(")
    assert acquire < count < pipeline
    init = inspect.getsource(Worker.__init__)
    assert "self.sem = asyncio.BoundedSemaphore(" in init
    assert "self.job_counter: int = 0" in init
    assert isinstance(inspect.getattr_static(Worker, "pool"), property)
