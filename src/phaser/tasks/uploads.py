"""Files a job is given: the `Upload` field type of parameter models.

A task declares a file it takes as a field of type `Upload` (a
`~pathlib.Path`)::

    class Params(BaseModel):
        table: Upload

and receives the local path of the file its client uploaded (UWS:
``UPLOAD=table,param:part`` or a file field named ``table``; JSON: a
multipart part named ``table``) or gave by reference (``UPLOAD=table,URL``,
fetched by the worker first). ``ctx.uploads`` has every upload by name,
also for tasks without a parameter model. Uploads are not parameters:
they are stored with the job's files and die with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel

__all__ = ["UPLOAD_NAME", "Upload", "upload_fields"]


class _UploadMarker:
    """Marks a parameter field as a file the job is given."""

    def __repr__(self) -> str:
        return "Upload"


_MARKER = _UploadMarker()

#: A parameter field holding the local path of an uploaded file.
Upload = Annotated[Path, _MARKER]

#: What an upload's name may look like (a parameter name).
UPLOAD_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


def upload_fields(model: type[BaseModel] | None) -> frozenset[str]:
    """The names of a parameter model's `Upload` fields."""
    if model is None:
        return frozenset()
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if any(item is _MARKER for item in info.metadata)
    )


def placeholders(names: Any) -> dict[str, Path]:
    """Stand-in paths for validating parameters before the files exist."""
    return {name: Path("/nonexistent/upload") for name in names}
