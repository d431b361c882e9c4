"""UWS route dependencies: the job a ``/{task}/jobs/{job_id}…`` route is
about (`UWSJob`), and a POST's parameters (`UWSForm`): query and body read
once, names folded to lower case (UWS names are case-insensitive),
repeated names kept in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..models.errors import JobNotFoundError, PhaserError
from ..models.job import Job
from ..services.uploads import FileUpload
from .context import CurrentCaller, Service, public_base_url
from .uploads import RequestBody

__all__ = [
    "CONTROL",
    "LIST_NAME",
    "Form",
    "Links",
    "UWSForm",
    "UWSJob",
    "UWSLinks",
    "links_of",
]

#: Where `phaser.handlers.dali.DaliPaths` notes the name a request used
#: for a task's job list (``jobs`` or DALI's ``async``).
LIST_NAME = "phaser.uws_list"

#: Parameter names with a meaning of their own (lower case).
CONTROL = {
    "phase",
    "runid",
    "executionduration",
    "destruction",
    "action",
    "upload",
    "runafter",
    "priority",
    "concurrencykey",
    "afterjobs",
    "afterpolicy",
    "parentjob",
    "notify",
    "jobdescription",
    "retainafterend",
}


class Form:
    """The UWS parameters of a POST (query and body), names folded to lower
    case, repeated names kept in order; and the files of its file parts,
    by part name (as sent)."""

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        files: dict[str, FileUpload] | None = None,
    ) -> None:
        self.pairs = [(name.lower(), value) for name, value in pairs]
        self.files = files or {}

    def get(self, name: str) -> str | None:
        """The last value of a parameter."""
        values = self.values(name)
        return values[-1] if values else None

    def values(self, name: str) -> list[str]:
        """Every value of a parameter, in order."""
        return [value for key, value in self.pairs if key == name]

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


async def _form(body: RequestBody) -> Form:
    return Form(body.pairs, body.files)


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


@dataclass(frozen=True, slots=True)
class Links:
    """Absolute URLs of a UWS answer: the service's base, and this task's
    job list under the name the client used (``/T/jobs`` or ``/T/async``,
    so a DALI client keeps following ``/async`` links)."""

    root: str
    jobs: str

    def job(self, job_id: str) -> str:
        """A job's URL."""
        return f"{self.jobs}/{job_id}"

    @property
    def stylesheet(self) -> str:
        """The XSLT that renders UWS documents in a browser."""
        return f"{self.root}/static/uws.xsl"


async def links_of(request: Request, task: str) -> Links:
    """The links of a UWS answer about ``task``'s jobs."""
    root = await public_base_url(request)
    name = request.scope.get(LIST_NAME, "jobs")
    return Links(root, f"{root}/{task}/{name}")


#: The links of a UWS answer (replaces the base URL in UWS routes).
UWSLinks = Annotated[Links, Depends(links_of)]
