"""The task registry: names, parameter models, functions and limits."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError

from ..models.errors import InvalidParametersError, UnknownTaskError
from ..models.job import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from .uploads import placeholders, upload_fields

__all__ = [
    "RESERVED_NAMES",
    "Task",
    "TaskRegistry",
    "default_registry",
    "task",
]

#: Field types a repeated UWS parameter fills.
_SEQUENCES = (list, tuple, set, frozenset)

#: Names that would collide with the server's own paths.
RESERVED_NAMES = frozenset(
    {
        "api",
        "docs",
        "redoc",
        "openapi.json",
        "health",
        "ready",
        "metrics",
        "static",
        "static-offline-docs",
        "availability",
        "capabilities",
        "tasks",
        "ui",
    }
)

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Task:
    """A registered task.

    Attributes
    ----------
    name
        Name in URLs (``/{name}/jobs``) and in the JSON API.
    function
        ``async def f(params, ctx)`` or ``def f(params, ctx)``.
    parameters
        Pydantic model of the parameters; `None` accepts any parameters
        and passes them as a `dict`.
    description
        One line for the task list.
    max_attempts
        Attempts on transient failure; `None` uses the configured default.
    execution_duration
        Default execution duration (s) of this task's jobs; `None` uses
        the configured default.
    max_execution_duration
        Longest execution duration (s) this task's jobs may ask for, on top
        of the configured maximum; `None` for no task-specific limit.
    expected_duration
        How long a job is expected to run (s), or a function of its bound
        parameters that says so: the job's UWS ``quote`` (and JSON
        ``quote``) is its start plus this. `None`: no quote.
    priority
        Priority of this task's jobs unless a client gives one (0 to 9,
        higher runs first).
    max_running
        Most jobs of this task EXECUTING at once, across every worker;
        `None` for no limit.
    key_limit
        Most jobs of one owner with one concurrency key EXECUTING at
        once; `None` uses the configured default.
    retain_after_end
        Destroy its jobs this many seconds after they end (clients may
        ask for another time); `None`: at their destruction time.
    """

    name: str
    function: Callable[..., Any]
    parameters: type[BaseModel] | None
    description: str
    max_attempts: int | None = None
    execution_duration: int | None = None
    max_execution_duration: int | None = None
    expected_duration: float | Callable[[Any], float] | None = None
    priority: int = DEFAULT_PRIORITY
    max_running: int | None = None
    key_limit: int | None = None
    retain_after_end: int | None = None
    #: The `Upload` fields of the parameter model (worked out once).
    uploads: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(
                f"Task {self.name}: priority {self.priority} is not in"
                f" {MIN_PRIORITY}..{MAX_PRIORITY}"
            )
        for name in ("max_running", "key_limit"):
            limit = getattr(self, name)
            if limit is not None and limit < 1:
                raise ValueError(f"Task {self.name}: {name} must be >= 1")
        object.__setattr__(self, "uploads", upload_fields(self.parameters))

    @property
    def estimate_reads_parameters(self) -> bool:
        """Whether `expected_seconds` needs the job's parameters."""
        return callable(self.expected_duration)

    def expected_seconds(self, parameters: dict[str, Any]) -> float | None:
        """How long a job with these parameters is expected to run (s), if
        the task says; `None` also when its estimate fails (an estimate
        never stops a job)."""
        estimate = self.expected_duration
        if estimate is None:
            return None
        try:
            seconds = (
                float(estimate(self.bind(parameters)))
                if callable(estimate)
                else float(estimate)
            )
        except Exception:
            return None
        if not 0 <= seconds < 10 * 365 * 86400:  # also rules out NaN
            return None
        return seconds

    def takes_upload(self, name: str) -> bool:
        """Whether the task takes an upload of that name (exactly)."""
        return self.parameters is None or name in self.uploads

    @property
    def is_async(self) -> bool:
        """Whether the task runs on the event loop (else in a process)."""
        return inspect.iscoroutinefunction(self.function)

    @property
    def required_uploads(self) -> frozenset[str]:
        """The `Upload` fields a job of the task cannot do without."""
        if self.parameters is None:
            return frozenset()
        fields = self.parameters.model_fields
        return frozenset(n for n in self.uploads if fields[n].is_required())

    def parameters_schema(
        self, ref_template: str = "#/$defs/{model}"
    ) -> dict[str, Any]:
        """JSON Schema of the parameters (files, `Upload` fields, are no
        parameters: they are left out)."""
        if self.parameters is None:
            return {"type": "object", "additionalProperties": True}
        schema = self.parameters.model_json_schema(ref_template=ref_template)
        for name in self.uploads:
            schema.get("properties", {}).pop(name, None)
            if name in schema.get("required", []):
                schema["required"].remove(name)
        if not schema.get("required", True):
            del schema["required"]
        return schema

    def validate(
        self,
        raw: Mapping[str, Any],
        *,
        from_form: bool = False,
        uploads: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Check parameters, returning them in their stored JSON form.

        With ``from_form`` (UWS: every value is text, a repeated name gives
        a list), a single value for a field that takes a list becomes a
        list of one. ``uploads`` names the files the job is given: an
        `Upload` field must be one of them, and never a parameter value.

        Raises
        ------
        InvalidParametersError
            The parameters do not fit; the message names each field.
        """
        if self.parameters is None:
            return dict(raw)
        # Parameter names are case-insensitive (UWS says so, and nothing is
        # gained by refusing ``SECONDS`` for ``seconds``).
        names = {name.lower(): name for name in self.parameters.model_fields}
        named = {
            names.get(key.lower(), key): value for key, value in raw.items()
        }
        files = self.uploads
        if clash := sorted(files & named.keys()):
            raise InvalidParametersError(
                f"Invalid parameters for task {self.name}: {clash[0]} is a"
                " file; upload it (or give it by reference) instead of a"
                " value",
                fields=[
                    {"field": f"parameters.{clash[0]}", "message": "file"}
                ],
            )
        named.update(placeholders(files & uploads))
        if from_form:
            model_fields = self.parameters.model_fields
            for name, value in named.items():
                if (
                    isinstance(value, str)
                    and name in model_fields
                    and get_origin(model_fields[name].annotation) in _SEQUENCES
                ):
                    named[name] = [value]
        try:
            model = self.parameters.model_validate(named)
        except ValidationError as exc:
            fields = [
                {
                    "field": "parameters."
                    + ".".join(str(p) for p in error["loc"]),
                    "message": error["msg"],
                }
                for error in exc.errors()
            ]
            text = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
            raise InvalidParametersError(
                f"Invalid parameters for task {self.name}: {text}",
                fields=fields,
            ) from exc
        return model.model_dump(mode="json", exclude=set(files))

    def unknown(
        self, raw: Mapping[str, Any], *, ignore_case: bool = False
    ) -> list[str]:
        """Names in ``raw`` the task's parameters do not have; none for a
        task that takes any parameters. Exactly, the JSON API's rule (it
        refuses them); with ``ignore_case``, UWS' rule (it ignores them,
        and lists them)."""
        if self.parameters is None:
            return []
        fold = str.lower if ignore_case else str
        known = {fold(name) for name in self.parameters.model_fields}
        return [name for name in raw if fold(name) not in known]

    def bind(
        self,
        stored: Mapping[str, Any],
        uploads: Mapping[str, Any] | None = None,
    ) -> Any:
        """The argument the function receives for stored parameters and
        the local paths of the job's uploads."""
        if self.parameters is None:
            return dict(stored)
        files = {n: p for n, p in (uploads or {}).items() if n in self.uploads}
        return self.parameters.model_validate({**stored, **files})


class TaskRegistry:
    """Tasks by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, task: Task) -> None:
        """Add a task.

        Raises
        ------
        ValueError
            The name is malformed, reserved or already taken.
        """
        if not _NAME.match(task.name) or task.name in RESERVED_NAMES:
            raise ValueError(f"invalid or reserved task name {task.name!r}")
        existing = self._tasks.get(task.name)
        if existing is not None and existing.function is not task.function:
            raise ValueError(f"task {task.name!r} is already registered")
        self._tasks[task.name] = task

    def get(self, name: str) -> Task:
        """The task of that name.

        Raises
        ------
        UnknownTaskError
            No such task.
        """
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(name, self.names()) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._tasks)

    def __iter__(self) -> Any:
        return iter(self._tasks[name] for name in self.names())

    def load_modules(self, modules: list[str]) -> None:
        """Import the built-in tasks and the configured task modules (from
        the current directory too, as uvicorn and celery do).

        Raises
        ------
        ImportError
            A module cannot be imported.
        """
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        importlib.import_module("phaser.tasks.builtin")
        try:
            importlib.import_module("phaser.tasks.cone")
        except ImportError as exc:
            if exc.name not in {"astropy", "numpy"}:
                raise
        for module in modules:
            importlib.import_module(module)


#: The registry that `task` registers into and the server reads.
default_registry = TaskRegistry()


def task(
    name: str,
    *,
    parameters: type[BaseModel] | None,
    description: str = "",
    max_attempts: int | None = None,
    execution_duration: int | None = None,
    max_execution_duration: int | None = None,
    expected_duration: float | Callable[[Any], float] | None = None,
    priority: int = DEFAULT_PRIORITY,
    max_running: int | None = None,
    key_limit: int | None = None,
    retain_after_end: int | None = None,
    registry: TaskRegistry = default_registry,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as a task (a decorator).

    The arguments are `Task`'s (``description`` defaults to the first
    line of the function's docstring); ``registry`` is the registry to
    add to.
    """

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        text = description or (inspect.getdoc(function) or "").split("\n")[0]
        registry.register(
            Task(
                name=name,
                function=function,
                parameters=parameters,
                description=text,
                max_attempts=max_attempts,
                execution_duration=execution_duration,
                max_execution_duration=max_execution_duration,
                expected_duration=expected_duration,
                priority=priority,
                max_running=max_running,
                key_limit=key_limit,
                retain_after_end=retain_after_end,
            )
        )
        return function

    return decorator
