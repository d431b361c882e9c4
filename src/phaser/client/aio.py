"""The asynchronous client of the JSON API: `Client`'s methods, awaitable."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack

import httpx
from pydantic import PrivateAttr

from ..models.api import JobListModel, JobModel, TaskModel
from ._core import (
    ClientBase,
    ClientError,
    ClientOptions,
    EventParser,
    JobEvent,
    ListFilters,
    WaitTimeout,
    check,
    children_done,
    is_final,
    list_params,
    outcome,
    should_retry,
)
from .bodies import JobOptions, create_body, create_request, patch_body
from .progress import ProgressDisplay

__all__ = ["AsyncClient", "AsyncJob"]


class AsyncJob(JobModel):
    """A job as the server last described it, with the client it came
    from: `wait`, `result`, `events` and friends ask that server."""

    _client: AsyncClient = PrivateAttr()

    async def refresh(self) -> AsyncJob:
        """The job as it is now."""
        return await self._client.get(self.id)

    async def wait(
        self, timeout: float | None = None, *, progress: bool = False
    ) -> AsyncJob:
        """Wait until the job has ended; see `AsyncClient.wait`."""
        return await self._client.wait(
            self.id, timeout=timeout, progress=progress
        )

    def raise_for_error(self) -> AsyncJob:
        """This job, if it did not end in ERROR (else `JobFailed`) or
        ABORTED (`JobAborted`)."""
        outcome(self)
        return self

    async def result(self, result_id: str = "result") -> bytes:
        """The bytes of one of its results."""
        return await self._client.result(self.id, result_id)

    async def download(self, directory: Path | str) -> list[Path]:
        """Save every result into ``directory``; the files written."""
        return await self._client.download(self.id, directory)

    def events(self) -> AsyncIterator[JobEvent]:
        """Its event stream; see `AsyncClient.events`."""
        return self._client.events(self.id)


class AsyncClient(ClientBase):
    """A client of a phaser server's JSON API, awaitable; the parameters
    are `ClientBase`'s."""

    def __init__(
        self, url: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        super().__init__(url, **options)
        self._http = httpx.AsyncClient(**self._options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """A request, retried as the policy says; the successful answer.

        Raises
        ------
        APIError
            The server refused it (or was unavailable every time).
        ClientError
            The server could not be reached every time.
        """
        for attempt in range(1, self._retry.attempts + 1):
            last = attempt == self._retry.attempts
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise ClientError(
                        f"cannot reach {self.url}: {exc}"
                    ) from exc
                await asyncio.sleep(self._retry.delay(attempt, None))
                continue
            if should_retry(response) and not last:
                await asyncio.sleep(self._retry.delay(attempt, response))
                continue
            return check(response)
        raise AssertionError("unreachable")

    def _job(self, response: httpx.Response) -> AsyncJob:
        job = AsyncJob.model_validate_json(response.content)
        job._client = self
        return job

    async def submit(
        self,
        task: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        start: bool = True,
        files: Mapping[str, Path | bytes] | None = None,
        uploads: Mapping[str, str] | None = None,
        sync: bool = False,
        idempotency_key: str | None = None,
        **options: Unpack[JobOptions],
    ) -> AsyncJob:
        """Create a job and (unless ``start=False``) queue it.

        ``files`` are the files the task takes, by name (a path, read
        whole, or the bytes); ``uploads`` files by reference (name: URL,
        fetched by the worker). With ``sync`` the job is started and the
        answer comes once it has ended (the server aborts it after its
        sync timeout: `APIError` 504). Each call sends an idempotency
        key (``idempotency_key``, or a new one), so retries after a lost
        answer get the same job; the same key in another call within the
        server's window answers the job that key made; the rest is
        `JobOptions` (priority, start time, dependencies, webhook, …).
        """
        body = create_body(
            task, parameters, start=start or sync, options=options
        )
        path, arguments = create_request(
            body,
            files=files,
            uploads=uploads,
            sync=sync,
            idempotency_key=idempotency_key,
        )
        return self._job(await self._request("POST", path, **arguments))

    async def get(self, job_id: str) -> AsyncJob:
        """A job."""
        path = f"/api/v1/jobs/{job_id}"
        return self._job(await self._request("GET", path))

    async def peek(self, job_id: str, *fields: str) -> dict[str, Any]:
        """Only these fields of a job (and ``id``, ``href``), as JSON
        values: cheap to poll for many jobs (``fields=``)."""
        params = {"fields": ",".join(fields)}
        path = f"/api/v1/jobs/{job_id}"
        return dict((await self._request("GET", path, params=params)).json())

    async def start(self, job_id: str) -> AsyncJob:
        """Queue a PENDING job."""
        return await self._verb(job_id, "start")

    async def hold(self, job_id: str) -> AsyncJob:
        """Hold a PENDING or QUEUED job (HELD) until released."""
        return await self._verb(job_id, "hold")

    async def release(self, job_id: str) -> AsyncJob:
        """Queue a HELD job (also before its ``run_after`` time)."""
        return await self._verb(job_id, "release")

    async def abort(self, job_id: str) -> AsyncJob:
        """Abort a job that has not ended."""
        return await self._verb(job_id, "abort")

    async def suspend(self, job_id: str) -> AsyncJob:
        """Pause a running job of a ``def`` task (SUSPENDED)."""
        return await self._verb(job_id, "suspend")

    async def resume(self, job_id: str) -> AsyncJob:
        """Let a SUSPENDED job go on (a HELD one: start over)."""
        return await self._verb(job_id, "resume")

    async def _verb(self, job_id: str, verb: str) -> AsyncJob:
        path = f"/api/v1/jobs/{job_id}/{verb}"
        return self._job(await self._request("POST", path))

    async def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        """Its webhook delivery attempts, oldest first."""
        path = f"/api/v1/jobs/{job_id}/deliveries"
        return list((await self._request("GET", path)).json()["deliveries"])

    async def delete(self, job_id: str) -> None:
        """Delete a job (aborting it first if it runs)."""
        await self._request("DELETE", f"/api/v1/jobs/{job_id}")

    async def update(
        self,
        job_id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        execution_duration: int | None = None,
        destruction_time: datetime | None = None,
        priority: int | None = None,
        run_after: datetime | None = None,
    ) -> AsyncJob:
        """Change a job (parameters and duration only while PENDING, the
        priority and start time while it waits: PENDING, QUEUED or
        HELD)."""
        body = patch_body(
            parameters=parameters,
            run_id=run_id,
            execution_duration=execution_duration,
            destruction_time=destruction_time,
            priority=priority,
            run_after=run_after,
        )
        path = f"/api/v1/jobs/{job_id}"
        return self._job(await self._request("PATCH", path, json=body))

    async def jobs(
        self, *, page_size: int = 100, **filters: Unpack[ListFilters]
    ) -> AsyncIterator[AsyncJob]:
        """Every job that matches (`ListFilters`), newest first."""
        params = list_params(filters) | {"limit": page_size}
        while True:
            answer = await self._request("GET", "/api/v1/jobs", params=params)
            page = JobListModel.model_validate_json(answer.content)
            for model in page.jobs:
                yield self._adopt(model)
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    async def count(self, **filters: Unpack[ListFilters]) -> int | None:
        """How many jobs match (`None` where the server cannot say
        without reading them: see ``GET /api/v1/jobs/count``)."""
        params = list_params(filters)
        answer = await self._request(
            "GET", "/api/v1/jobs/count", params=params
        )
        count: int | None = answer.json()["count"]
        return count

    async def tasks(self) -> list[TaskModel]:
        """The server's tasks, with the JSON Schema of their parameters."""
        answer = await self._request("GET", "/api/v1/tasks")
        return [TaskModel.model_validate(t) for t in answer.json()]

    async def result(self, job_id: str, result_id: str = "result") -> bytes:
        """The bytes of a result."""
        path = f"/api/v1/jobs/{job_id}/results/{result_id}"
        return (await self._request("GET", path)).content

    async def download(self, job_id: str, directory: Path | str) -> list[Path]:
        """Save every result of a job into ``directory`` (named by result
        id), streamed; the files written."""
        folder = Path(directory)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        written = []
        for result in (await self.get(job_id)).results:
            target = folder / result.id
            await self.save(job_id, result.id, target)
            written.append(target)
        return written

    async def save(self, job_id: str, result_id: str, target: Path) -> int:
        """Stream a result into a file; the bytes written."""
        path = f"/api/v1/jobs/{job_id}/results/{result_id}"
        async with self._http.stream("GET", path) as response:
            if not response.is_success:
                await response.aread()
                check(response)
            size = 0
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
                    size += len(chunk)
        return size

    def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events as they happen: ``job`` first, then ``phase``
        and ``progress``, ``deleted``; ends after the job has ended."""
        return self._stream(job_id, None)

    async def _stream(
        self, job_id: str, read_timeout: float | None
    ) -> AsyncIterator[JobEvent]:
        path = f"/api/v1/jobs/{job_id}/events"
        parser = EventParser(job_id)
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        async with self._http.stream("GET", path, timeout=timeout) as response:
            if not response.is_success:
                await response.aread()
                check(response)
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        progress: bool = False,
        children: bool = False,
    ) -> AsyncJob:
        """The job once it has ended (whatever its final phase).

        Follows the event stream; if that breaks off, long polls (the
        server's ``?wait=`` with ``until=final``, again and again).
        ``progress`` shows a progress display on a terminal (stderr).
        With ``children``: once none of its children is pending or
        running instead (long polls with ``until=children``).

        Raises
        ------
        WaitTimeout
            It had not ended after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        display = ProgressDisplay(enabled=progress and sys.stderr.isatty())
        with display:
            job = await self.get(job_id)
            display.show(job)
            until = "children" if children else "final"
            done = children_done if children else is_final
            if not children and not is_final(job):
                job = await self._follow(job, deadline, display)
            while not done(job):
                left = _left(deadline)
                if left is not None and left <= 0:
                    raise WaitTimeout(job, timeout or 0)
                seconds = 60.0 if left is None else min(left, 60.0)
                answer = await self._request(
                    "GET",
                    f"/api/v1/jobs/{job_id}",
                    params={"wait": seconds, "until": until},
                    timeout=httpx.Timeout(self._timeout, read=None),
                )
                job = self._job(answer)
                display.show(job)
        return job

    async def _follow(
        self, job: AsyncJob, deadline: float | None, display: ProgressDisplay
    ) -> AsyncJob:
        """Follow the event stream until the job ends, or the stream
        breaks off or stays silent past the deadline; the job as last
        seen (the caller long-polls from there)."""
        left = _left(deadline)
        # The server sends a keep-alive every 15 s: a read that waits
        # longer than that, or past the deadline, ends the stream.
        read = 20.0 if left is None else max(min(left, 20.0), 0.01)
        try:
            async for event in self._stream(job.id, read):
                if event.job is not None:
                    job = self._adopt(event.job)
                    display.show(job)
                if is_final(job):
                    return job
        except (httpx.TransportError, ClientError):
            pass  # the long polls take over
        return job

    def _adopt(self, model: JobModel) -> AsyncJob:
        job = AsyncJob.model_validate(model.model_dump())
        job._client = self
        return job


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()
