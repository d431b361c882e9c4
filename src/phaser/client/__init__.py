"""The Python client of phaser's JSON API, sync and async::

    from phaser.client import Client

    with Client("http://localhost:8000") as c:
        job = c.submit("sleep", {"seconds": 2}).wait(timeout=60)
        job.raise_for_error()
        print(job.result())

`AsyncClient` has the same methods, awaitable. See ``docs/client.md``.
"""

from ._core import (
    APIError,
    ClientError,
    JobAborted,
    JobEvent,
    JobFailed,
    RetryPolicy,
    WaitTimeout,
)
from .aio import AsyncClient, AsyncJob
from .bodies import JobOptions
from .sync import Client, Job

__all__ = [
    "APIError",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "ClientError",
    "Job",
    "JobAborted",
    "JobEvent",
    "JobFailed",
    "JobOptions",
    "RetryPolicy",
    "WaitTimeout",
]
