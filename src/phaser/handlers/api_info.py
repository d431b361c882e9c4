"""The JSON API's reads about the service rather than one job: statistics
and the task list (under ``/api/v1`` with the job routes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..dependencies.context import CurrentCaller, Ops, Service
from ..models.api import TaskModel, problem_responses
from ..models.stats import StatsModel, ThroughputModel, WorkerModel

__all__ = ["router"]

router = APIRouter(responses=problem_responses(400, 401, 413, 422, 503))


@router.get(
    "/stats",
    summary="Statistics",
    description=(
        "Your jobs counted by task and phase, the age of your oldest"
        " queued job, queue depths, jobs started and finished over the"
        " last minute, five minutes and hour, and how long no worker has"
        " been seen, per-minute series over the last hour, and the"
        " workers seen recently with which of the counted jobs each runs."
        " Admins pass ``owner`` for another owner's counts, ``*`` for"
        " everyone's. Cheap at any number of jobs: index sizes and"
        " counters, and the records of running jobs only."
    ),
)
async def stats(
    operations: Ops,
    caller: CurrentCaller,
    owner: Annotated[
        str | None,
        Query(max_length=128, description="Admins: whose jobs to count."),
    ] = None,
) -> StatsModel:
    found = await operations.stats(caller, owner)

    def rates(window: dict[str, int]) -> ThroughputModel:
        return ThroughputModel(
            last_1m=window["1m"],
            last_5m=window["5m"],
            last_60m=window["60m"],
        )

    return StatsModel(
        owner=found.owner,
        counts=found.counts,
        totals=found.totals,
        queues=found.queues,
        oldest_queued_age=found.oldest_queued_age,
        started=rates(found.started),
        finished=rates(found.finished),
        worker_silence=found.worker_silence,
        started_per_minute=found.started_per_minute,
        finished_per_minute=found.finished_per_minute,
        workers=[
            WorkerModel(id=w.id, silence=w.silence, running=w.running)
            for w in found.workers
        ],
    )


@router.get(
    "/tasks",
    summary="List tasks",
    description="The tasks jobs can run, with the JSON Schema of each"
    " task's parameters.",
)
async def list_tasks(service: Service) -> list[TaskModel]:
    return [
        TaskModel(
            name=task.name,
            description=task.description,
            parameters_schema=task.parameters_schema(),
            runs_in_child_process=not task.is_async,
        )
        for task in service.tasks()
    ]
