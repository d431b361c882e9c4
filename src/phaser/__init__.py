"""phaser: a job execution server speaking IVOA UWS 1.1 and a JSON API."""

__all__ = ["__version__"]

__version__ = "0.1.0"
