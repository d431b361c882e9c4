"""Logging setup (safir's structlog configuration).

On top of safir's setup, fields bound with
`structlog.contextvars.bind_contextvars` appear on every line logged in
that context: the worker binds a job's id, task, owner and attempt once
per run, so every line about a job carries them, whichever module logs it.
"""

from __future__ import annotations

import sys

import structlog
from safir.logging import configure_logging, configure_uvicorn_logging

from .config import Settings

__all__ = ["configure"]


def configure(settings: Settings) -> None:
    """Log JSON in production (uvicorn's lines included) and readable
    lines in development."""
    configure_logging(
        name="phaser",
        profile=settings.log_profile,
        log_level=settings.log_level,
        add_timestamp=True,
    )
    if settings.log_profile == "production":
        # uvicorn's own lines (access log included) as JSON too; the
        # server is then started with log_config=None so that uvicorn
        # keeps this configuration.
        configure_uvicorn_logging(settings.log_level)
    processors = list(structlog.get_config()["processors"])
    if structlog.contextvars.merge_contextvars not in processors:
        # After the level filter: a line below the level is dropped
        # before anything is copied into it (a worker logs a few lines
        # a job, which cost it 3 % of a no-op job's time before, B2).
        level_filter = structlog.stdlib.filter_by_level
        first = (
            processors.index(level_filter) + 1
            if level_filter in processors
            else 0
        )
        processors.insert(first, structlog.contextvars.merge_contextvars)
    # Colour codes only for a terminal: a log file (or a pipe to one)
    # gets plain text.
    if (
        processors
        and isinstance(processors[-1], structlog.dev.ConsoleRenderer)
        and not sys.stdout.isatty()
    ):
        processors[-1] = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(processors=processors)
