"""The built-in demo tasks: sleep, echo and fail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel, Field

from .context import TaskContext, TaskError, TransientError
from .registry import task

__all__ = ["FailParameters", "SleepParameters"]


class SleepParameters(BaseModel):
    """Parameters of the ``sleep`` task."""

    seconds: float = Field(
        1.0, ge=0, le=86400, title="Seconds", description="How long to sleep."
    )


class FailParameters(BaseModel):
    """Parameters of the ``fail`` task."""

    message: str = Field(
        "failed as asked",
        max_length=1000,
        title="Message",
        description="Error message the job ends with.",
    )
    transient: bool = Field(
        False,
        title="Transient",
        description="Fail transiently (retried) instead of fatally.",
    )


@task(
    "sleep",
    parameters=SleepParameters,
    expected_duration=lambda params: params.seconds,
)
async def sleep(params: SleepParameters, ctx: TaskContext) -> str:
    """Sleep for some seconds, reporting progress once a second."""
    remaining = params.seconds
    while remaining > 0:
        step = min(1.0, remaining)
        await asyncio.sleep(step)
        remaining -= step
        done = params.seconds - remaining
        ctx.progress(
            100 * done / params.seconds,
            f"slept {done:g} of {params.seconds:g} s",
        )
    return f"slept {params.seconds:g} s"


@task("noop", parameters=None)
async def noop(params: dict[str, Any], ctx: TaskContext) -> None:
    """Do nothing (for measuring phaser itself)."""


@task("echo", parameters=None)
async def echo(params: dict[str, Any], ctx: TaskContext) -> None:
    """Return the parameters it was given, as JSON."""
    ctx.add_result(
        json.dumps(params, sort_keys=True), mime_type="application/json"
    )


@task("fail", parameters=FailParameters)
async def fail(params: FailParameters, ctx: TaskContext) -> None:
    """Fail with a message, fatally or transiently."""
    if params.transient:
        raise TransientError(params.message)
    raise TaskError(params.message)
