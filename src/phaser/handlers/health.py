"""Health endpoints for probes: alive, and ready to serve."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..dependencies.context import Ops

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/health",
    summary="Liveness",
    description="200 while the process is serving requests.",
)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness",
    description=(
        "200 when Redis answers and holds phaser's scripts (loading any it"
        " lost); 503 otherwise. ``workers`` says whether a worker has been"
        " seen lately; it does not change the status (a frontend without"
        " workers still serves jobs and results)."
    ),
    responses={503: {"description": "Redis cannot be reached"}},
)
async def ready(operations: Ops) -> JSONResponse:
    problem = await operations.unavailable()
    if problem is not None:
        return JSONResponse(
            {"status": "unavailable", "redis": problem},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    gap = await operations.worker_gap()
    return JSONResponse(
        {"status": "ok", "redis": "ok", "workers": gap or "ok"}
    )
