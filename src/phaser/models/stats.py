"""Wire models of the JSON API's operational answers (``/api/v1/stats``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .phase import ExecutionPhase

__all__ = ["StatsModel", "ThroughputModel", "WorkerModel"]


class ThroughputModel(BaseModel):
    """Jobs in the last minute, five minutes and hour (all owners)."""

    last_1m: int = Field(..., title="Last minute")
    last_5m: int = Field(..., title="Last 5 minutes")
    last_60m: int = Field(..., title="Last hour")


class WorkerModel(BaseModel):
    """A worker process seen recently."""

    id: str = Field(..., title="Worker", description="Host and process id.")
    silence: float = Field(
        ..., title="Silence", description="Seconds since it was last seen."
    )
    running: list[str] = Field(
        ...,
        title="Running",
        description="Ids of the counted jobs it is running.",
    )


class StatsModel(BaseModel):
    """Counts and rates for a dashboard or a script."""

    owner: str | None = Field(None, title="Owner", description="Whose jobs.")
    counts: dict[str, dict[ExecutionPhase, int]] = Field(
        ...,
        title="Counts",
        description="Jobs by task, then phase (phases with none left out).",
    )
    totals: dict[ExecutionPhase, int] = Field(
        ..., title="Totals", description="Jobs by phase, all tasks."
    )
    queues: dict[str, int] = Field(
        ...,
        title="Queue depths",
        description="Jobs waiting for a worker, by queue (all owners).",
    )
    oldest_queued_age: float | None = Field(
        None,
        title="Oldest queued job",
        description="Seconds since the owner's oldest QUEUED job was made.",
    )
    started: ThroughputModel = Field(..., title="Jobs started")
    finished: ThroughputModel = Field(..., title="Jobs finished")
    worker_silence: float | None = Field(
        None,
        title="Worker silence",
        description="Seconds since a worker was last seen (null: never).",
    )
    started_per_minute: list[int] = Field(
        ...,
        title="Jobs started per minute",
        description="The last 60 minutes, oldest first (all owners).",
    )
    finished_per_minute: list[int] = Field(
        ...,
        title="Jobs finished per minute",
        description="The last 60 minutes, oldest first (all owners).",
    )
    workers: list[WorkerModel] = Field(
        ...,
        title="Workers",
        description="Workers seen in the last hour, most recent first.",
    )
