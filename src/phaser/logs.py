"""Logging setup (safir's structlog configuration)."""

from __future__ import annotations

from safir.logging import configure_logging

from .config import Settings

__all__ = ["configure"]


def configure(settings: Settings) -> None:
    """Log JSON in production and readable lines in development."""
    configure_logging(
        name="phaser",
        profile=settings.log_profile,
        log_level=settings.log_level,
        add_timestamp=True,
    )
