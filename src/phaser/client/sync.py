"""The synchronous client of the JSON API."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Unpack

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

__all__ = ["Client", "Job"]


class Job(JobModel):
    """A job as the server last described it, with the client it came
    from: `wait`, `result`, `events` and friends ask that server."""

    _client: Client = PrivateAttr()

    def refresh(self) -> Job:
        """The job as it is now."""
        return self._client.get(self.id)

    def wait(
        self, timeout: float | None = None, *, progress: bool = False
    ) -> Job:
        """Wait until the job has ended; see `Client.wait`."""
        return self._client.wait(self.id, timeout=timeout, progress=progress)

    def raise_for_error(self) -> Job:
        """This job, if it did not end in ERROR (else `JobFailed`) or
        ABORTED (`JobAborted`)."""
        outcome(self)
        return self

    def result(self, result_id: str = "result") -> bytes:
        """The bytes of one of its results."""
        return self._client.result(self.id, result_id)

    def download(self, directory: Path | str) -> list[Path]:
        """Save every result into ``directory``; the files written."""
        return self._client.download(self.id, directory)

    def events(self) -> Iterator[JobEvent]:
        """Its event stream; see `Client.events`."""
        return self._client.events(self.id)


class Client(ClientBase):
    """A client of a phaser server's JSON API; the parameters are
    `ClientBase`'s."""

    def __init__(
        self, url: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        super().__init__(url, **options)
        self._http = httpx.Client(**self._options)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _request(
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
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise ClientError(
                        f"cannot reach {self.url}: {exc}"
                    ) from exc
                time.sleep(self._retry.delay(attempt, None))
                continue
            if should_retry(response) and not last:
                time.sleep(self._retry.delay(attempt, response))
                continue
            return check(response)
        raise AssertionError("unreachable")

    def _job(self, response: httpx.Response) -> Job:
        job = Job.model_validate_json(response.content)
        job._client = self
        return job

    def submit(
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
    ) -> Job:
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
        return self._job(self._request("POST", path, **arguments))

    def get(self, job_id: str) -> Job:
        """A job."""
        return self._job(self._request("GET", f"/api/v1/jobs/{job_id}"))

    def peek(self, job_id: str, *fields: str) -> dict[str, Any]:
        """Only these fields of a job (and ``id``, ``href``), as JSON
        values: cheap to poll for many jobs (``fields=``)."""
        params = {"fields": ",".join(fields)}
        path = f"/api/v1/jobs/{job_id}"
        return dict((self._request("GET", path, params=params)).json())

    def start(self, job_id: str) -> Job:
        """Queue a PENDING job."""
        return self._verb(job_id, "start")

    def hold(self, job_id: str) -> Job:
        """Hold a PENDING or QUEUED job (HELD) until released."""
        return self._verb(job_id, "hold")

    def release(self, job_id: str) -> Job:
        """Queue a HELD job (also before its ``run_after`` time)."""
        return self._verb(job_id, "release")

    def abort(self, job_id: str) -> Job:
        """Abort a job that has not ended."""
        return self._verb(job_id, "abort")

    def suspend(self, job_id: str) -> Job:
        """Pause a running job of a ``def`` task (SUSPENDED)."""
        return self._verb(job_id, "suspend")

    def resume(self, job_id: str) -> Job:
        """Let a SUSPENDED job go on (a HELD one: start over)."""
        return self._verb(job_id, "resume")

    def _verb(self, job_id: str, verb: str) -> Job:
        path = f"/api/v1/jobs/{job_id}/{verb}"
        return self._job(self._request("POST", path))

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        """Its webhook delivery attempts, oldest first."""
        path = f"/api/v1/jobs/{job_id}/deliveries"
        return list((self._request("GET", path)).json()["deliveries"])

    def delete(self, job_id: str) -> None:
        """Delete a job (aborting it first if it runs)."""
        self._request("DELETE", f"/api/v1/jobs/{job_id}")

    def update(
        self,
        job_id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        execution_duration: int | None = None,
        destruction_time: datetime | None = None,
        priority: int | None = None,
        run_after: datetime | None = None,
    ) -> Job:
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
        return self._job(self._request("PATCH", path, json=body))

    def jobs(
        self, *, page_size: int = 100, **filters: Unpack[ListFilters]
    ) -> Iterator[Job]:
        """Every job that matches (`ListFilters`), newest first."""
        params = list_params(filters) | {"limit": page_size}
        while True:
            answer = self._request("GET", "/api/v1/jobs", params=params)
            page = JobListModel.model_validate_json(answer.content)
            for model in page.jobs:
                yield self._adopt(model)
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    def count(self, **filters: Unpack[ListFilters]) -> int | None:
        """How many jobs match (`None` where the server cannot say
        without reading them: see ``GET /api/v1/jobs/count``)."""
        params = list_params(filters)
        answer = self._request("GET", "/api/v1/jobs/count", params=params)
        count: int | None = answer.json()["count"]
        return count

    def tasks(self) -> list[TaskModel]:
        """The server's tasks, with the JSON Schema of their parameters."""
        answer = self._request("GET", "/api/v1/tasks")
        return [TaskModel.model_validate(t) for t in answer.json()]

    def result(self, job_id: str, result_id: str = "result") -> bytes:
        """The bytes of a result."""
        path = f"/api/v1/jobs/{job_id}/results/{result_id}"
        return self._request("GET", path).content

    def download(self, job_id: str, directory: Path | str) -> list[Path]:
        """Save every result of a job into ``directory`` (named by result
        id), streamed; the files written."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for result in self.get(job_id).results:
            target = folder / result.id
            self.save(job_id, result.id, target)
            written.append(target)
        return written

    def save(self, job_id: str, result_id: str, target: Path) -> int:
        """Stream a result into a file; the bytes written."""
        with target.open("wb") as out:
            return self.stream(job_id, result_id, out)

    def stream(self, job_id: str, result_id: str, out: BinaryIO) -> int:
        """Stream a result into a binary file object; the bytes written."""
        path = f"/api/v1/jobs/{job_id}/results/{result_id}"
        with self._http.stream("GET", path) as response:
            if not response.is_success:
                response.read()
                check(response)
            size = 0
            for chunk in response.iter_bytes():
                out.write(chunk)
                size += len(chunk)
        return size

    def events(self, job_id: str) -> Iterator[JobEvent]:
        """The job's events as they happen: ``job`` first, then ``phase``
        and ``progress``, ``deleted``; ends after the job has ended."""
        return self._stream(job_id, None)

    def _stream(
        self, job_id: str, read_timeout: float | None
    ) -> Iterator[JobEvent]:
        path = f"/api/v1/jobs/{job_id}/events"
        parser = EventParser(job_id)
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        with self._http.stream("GET", path, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                check(response)
            for line in response.iter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        progress: bool = False,
        children: bool = False,
    ) -> Job:
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
            job = self.get(job_id)
            display.show(job)
            until = "children" if children else "final"
            done = children_done if children else is_final
            if not children and not is_final(job):
                job = self._follow(job, deadline, display)
            while not done(job):
                left = _left(deadline)
                if left is not None and left <= 0:
                    raise WaitTimeout(job, timeout or 0)
                seconds = 60.0 if left is None else min(left, 60.0)
                answer = self._request(
                    "GET",
                    f"/api/v1/jobs/{job_id}",
                    params={"wait": seconds, "until": until},
                    timeout=httpx.Timeout(self._timeout, read=None),
                )
                job = self._job(answer)
                display.show(job)
        return job

    def _follow(
        self, job: Job, deadline: float | None, display: ProgressDisplay
    ) -> Job:
        """Follow the event stream until the job ends, or the stream
        breaks off or stays silent past the deadline; the job as last
        seen (the caller long-polls from there)."""
        left = _left(deadline)
        # The server sends a keep-alive every 15 s: a read that waits
        # longer than that, or past the deadline, ends the stream.
        read = 20.0 if left is None else max(min(left, 20.0), 0.01)
        try:
            for event in self._stream(job.id, read):
                if event.job is not None:
                    job = self._adopt(event.job)
                    display.show(job)
                if is_final(job):
                    return job
        except (httpx.TransportError, ClientError):
            pass  # the long polls take over
        return job

    def _adopt(self, model: JobModel) -> Job:
        job = Job.model_validate(model.model_dump())
        job._client = self
        return job


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()
