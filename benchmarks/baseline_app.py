"""B1's baseline: a bare FastAPI app that parses the same requests as
phaser's job creation and does one Redis write each.

    BASELINE_REDIS_URL=redis://127.0.0.1:6379/0 \\
        uvicorn --factory baseline_app:create_app --port 8001

``POST /form`` parses a UWS-style form and answers 303 with a Location;
``POST /json`` parses the same job as JSON (no validation model) and
answers 201. Each stores the request as one Redis hash (HSET);
``GET /json/{id}`` reads one back (B3's floor). Run by uvicorn exactly as
``phaser serve`` runs (uvloop, httptools, one process).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from redis.asyncio import Redis

__all__ = ["create_app"]


def create_app() -> FastAPI:
    """The baseline application."""
    app = FastAPI()
    redis = Redis.from_url(
        os.environ["BASELINE_REDIS_URL"], decode_responses=True
    )
    prefix = os.environ.get("BASELINE_PREFIX", "baseline")

    @app.post("/form")
    async def form(request: Request) -> Response:
        fields = {k.lower(): str(v) for k, v in (await request.form()).items()}
        job_id = secrets.token_hex(13)
        await redis.hset(f"{prefix}:{job_id}", mapping=fields)
        return Response(
            status_code=303,
            headers={"Location": f"{request.base_url}form/{job_id}"},
        )

    @app.post("/json")
    async def create(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        job_id = secrets.token_hex(13)
        await redis.hset(
            f"{prefix}:{job_id}",
            mapping={"task": body["task"], "params": json.dumps(body)},
        )
        return JSONResponse(
            {"id": job_id, **body},
            status_code=201,
            headers={"Location": f"{request.base_url}json/{job_id}"},
        )

    @app.get("/json/{job_id}")
    async def read(job_id: str) -> Response:
        stored = await redis.hgetall(f"{prefix}:{job_id}")
        if not stored:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse({"id": job_id, **stored})

    return app
