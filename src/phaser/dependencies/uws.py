"""UWS route dependencies: the job a ``/{task}/jobs/{job_id}…`` route is
about (`UWSJob`), and a POST's parameters (`UWSForm`): query and body read
once, names folded to lower case (UWS names are case-insensitive),
repeated names kept in order."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from ..models.errors import JobNotFoundError, PhaserError
from ..models.job import Job
from .context import CurrentCaller, Service

__all__ = ["CONTROL", "Form", "UWSForm", "UWSJob"]

#: Parameter names with a meaning of their own (lower case).
CONTROL = {"phase", "runid", "executionduration", "destruction", "action"}


class Form:
    """The UWS parameters of a POST (query and body), names folded to lower
    case, repeated names kept in order."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = [(name.lower(), value) for name, value in pairs]

    def get(self, name: str) -> str | None:
        """The last value of a parameter."""
        values = [value for key, value in self.pairs if key == name]
        return values[-1] if values else None

    def only(self, name: str) -> Form:
        """This form with one parameter alone (``POST …/phase``).

        Raises
        ------
        PhaserError
            The parameter is missing.
        """
        value = self.get(name)
        if value is None:
            raise PhaserError(f"Missing {name.upper()} parameter")
        return Form([(name, value)])

    def task_parameters(self) -> dict[str, str | list[str]]:
        """The task's parameters: a name given once has its value, a name
        repeated (``POS=…&POS=…``) the list of its values, in order."""
        grouped: dict[str, list[str]] = {}
        for name, value in self.pairs:
            if name not in CONTROL:
                grouped.setdefault(name, []).append(value)
        return {
            name: values[0] if len(values) == 1 else values
            for name, values in grouped.items()
        }


async def _form(request: Request) -> Form:
    pairs = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        try:
            form = await request.form()
        except Exception as exc:  # the parser's errors have no common base
            raise PhaserError(f"Unreadable form body: {exc}") from exc
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    raise PhaserError(
                        f"Parameter {name} is not UTF-8 text"
                    ) from None
                pairs.append((name, text))
            else:
                pairs.append((name, value))
    return Form(pairs)


async def _job(
    task: str, job_id: str, service: Service, caller: CurrentCaller
) -> Job:
    """The job, if the caller may see it and it is in this task's list."""
    job = await service.get(caller, job_id)
    if job.task != task:
        raise JobNotFoundError(job_id)
    return job


#: The POST's parameters.
UWSForm = Annotated[Form, Depends(_form)]

#: The job a ``/{task}/jobs/{job_id}…`` route is about.
UWSJob = Annotated[Job, Depends(_job)]
