"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from . import __version__
from .config import Settings, load_settings
from .factory import Factory, freeze_startup_heap
from .handlers import (
    api,
    api_create,
    api_info,
    api_list,
    dali,
    dashboard,
    health,
    metrics,
    ui,
    uws,
    uws_values,
    vosi,
    webhooks,
)
from .handlers.fast_create import CreateFastPath
from .handlers.fast_wait import WaitFastPath
from .handlers.limits import BodyLimitMiddleware
from .handlers.metrics import RequestMetricsMiddleware
from .handlers.openapi import install_openapi
from .handlers.problems import install_problem_handlers
from .logs import configure
from .services.auth import Authenticator, UserDirectory
from .tracing import configure_tracing

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    settings
        Configuration; read from the environment if not given. Redis must
        be configured (``phaser serve`` starts the embedded one first).
    """
    settings = settings or load_settings()
    configure(settings)
    tracer = configure_tracing(settings, role="frontend")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        factory = Factory(settings)
        await factory.start()
        app.state.factory = factory
        app.state.job_service = factory.job_service()
        app.state.waiter = factory.waiter(app.state.job_service)
        app.state.operations = factory.operations()
        freeze_startup_heap()
        try:
            yield
        finally:
            await factory.aclose()
            tracer.shutdown()

    # Swagger UI and ReDoc served from the package, not from a CDN: the
    # pages work offline and behind firewalls.
    app = FastAPIOffline(
        title="phaser",
        version=__version__,
        description=(
            "A job execution server. Create jobs of registered tasks, wait"
            " for them, download their results. The same jobs are served"
            " as IVOA UWS 1.1 for astronomy clients."
        ),
        lifespan=lifespan,
        telemetry=tracer.telemetry(),
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator(
        mode=settings.auth,
        header=settings.auth_header,
        admins=frozenset(settings.admin_users),
        users=(
            UserDirectory.load(settings.users_path)
            if settings.auth == "token"
            else None
        ),
    )
    # Innermost: it reads bodies, so within their size limit.
    app.add_middleware(CreateFastPath)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_bytes,
        upload_limit=settings.max_upload_request_bytes,
    )
    app.add_middleware(vosi.DaliPaths)
    app.add_middleware(WaitFastPath)
    app.add_middleware(RequestMetricsMiddleware)
    install_problem_handlers(app)
    app.include_router(api_create.router, prefix="/api/v1", tags=["jobs"])
    app.include_router(api_list.router, prefix="/api/v1", tags=["jobs"])
    app.include_router(api.router, prefix="/api/v1", tags=["jobs"])
    app.include_router(api_info.router, prefix="/api/v1", tags=["jobs"])
    app.include_router(webhooks.router, prefix="/api/v1", tags=["webhooks"])
    app.include_router(health.router, tags=["health"])
    app.include_router(metrics.router, tags=["health"])
    app.include_router(vosi.router, tags=["vosi"])
    app.include_router(ui.router, tags=["ui"])
    app.include_router(dashboard.router)
    # Last: /{task}/jobs must not shadow the routes above.
    app.include_router(uws.router, tags=["uws"])
    app.include_router(uws_values.router, tags=["uws"])
    app.include_router(dali.router, tags=["dali"])
    app.include_router(vosi.task_router, tags=["vosi"])
    install_openapi(app)
    return app
