"""A job cut down to the fields a client named (``fields=``): the schema
of those answers, so that the OpenAPI document describes every answer
exactly (a full job is a `JobModel`; a cut one, a `JobFieldsModel`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from .api import JobListModel, JobModel

__all__ = ["JobFieldsListModel", "JobFieldsModel"]


def _optional(name: str) -> tuple[Any, Any]:
    info = JobModel.model_fields[name]
    return (
        info.annotation,
        Field(None, title=info.title, description=info.description),
    )


#: A job with only the fields named in ``fields=`` (and ``id``,
#: ``href``): each field, when present, is what `JobModel` says.
JobFieldsModel: type[BaseModel] = create_model(
    "JobFieldsModel",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A job with only the fields asked for (``fields=``).",
    **{name: _optional(name) for name in JobModel.model_fields},  # type: ignore[call-overload]
)


#: A page of jobs, each with only the fields asked for: `JobListModel`
#: with `JobFieldsModel` jobs.
JobFieldsListModel: type[BaseModel] = create_model(
    "JobFieldsListModel",
    __doc__="A page of jobs, each with only the fields asked for.",
    __base__=JobListModel,
    jobs=(list[JobFieldsModel], Field(..., title="Jobs")),
)
