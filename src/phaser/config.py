"""Settings, read from the environment with the prefix ``PHASER_``."""

from __future__ import annotations

import difflib
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AnyHttpUrl,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .backends import Backends
from .tuning import Tuning, comma_separated

__all__ = ["ConfigurationError", "Settings", "cap_duration", "load_settings"]


#: An ISO 8601 duration: P, then years to days, then T and hours to seconds.
_ISO_DURATION = re.compile(
    r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?"
    r"(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?"
)

#: Variables named PHASER_* that are not settings of the server: the
#: client's and the tests'.
_OTHER_VARIABLES = {"PHASER_URL", "PHASER_TOKEN", "PHASER_UWS_SCHEMA_DIR"}


class ConfigurationError(Exception):
    """The configuration is invalid; the message names the setting."""


class Settings(Tuning, Backends, BaseSettings):
    """phaser configuration (the timings and sizes of workers, maintenance
    and HTTP connections are in `phaser.tuning.Tuning`; Redis, its
    durability and the result store in `phaser.backends.Backends`).

    Every field is read from an environment variable named ``PHASER_`` plus
    the field name in upper case, e.g. ``PHASER_REDIS_URL``.
    """

    model_config = SettingsConfigDict(
        env_prefix="PHASER_", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        Path("phaser-data"),
        title="Data directory",
        description=(
            "Where the result store (``results/``) and the embedded Redis "
            "(``redis/``) keep their files."
        ),
    )
    base_url: AnyHttpUrl | None = Field(
        None,
        title="Public base URL",
        description=(
            "Public URL of the service, used for absolute links. Unset: "
            "taken from the request and its X-Forwarded-* headers."
        ),
    )
    key_prefix: str = Field(
        "phaser",
        title="Redis key prefix",
        description="Prefix of every Redis key phaser writes.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    queue_name: str = Field(
        "phaser:queue",
        title="Queue name",
        description="Name of the arq queue jobs are sent to.",
        min_length=1,
    )
    task_queues: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        title="Queues of tasks",
        description=(
            "Tasks sent to a queue of their own, as ``task=queue`` pairs,"
            " comma-separated (e.g. ``cone=phaser:queue:heavy``); a worker"
            " started with that ``PHASER_QUEUE_NAME`` runs them. Other"
            " tasks go to ``PHASER_QUEUE_NAME``."
        ),
    )
    metrics_port: int = Field(
        0,
        title="Worker metrics port",
        description=(
            "Port on which ``phaser worker`` serves ``/metrics``"
            " (Prometheus) and ``/health``; 0 for none."
        ),
        ge=0,
        le=65535,
    )
    auth: Literal["none", "header", "token"] = Field(
        "none",
        title="Auth mode",
        description=(
            "``none``: one anonymous user; ``header``: trust the user header"
            " an authenticating proxy sets; ``token``: bearer tokens (or"
            " HTTP Basic with the token as password) from the users file."
        ),
    )
    auth_header: str = Field(
        "X-Auth-Request-User",
        title="User header",
        description="Header with the user name in ``header`` mode.",
        pattern=r"^[A-Za-z0-9-]+$",
    )
    admin_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        title="Admins",
        description="Comma-separated admin user names (``header`` mode).",
    )
    users_file: Path | None = Field(
        None,
        title="Users file",
        description=(
            "JSON file of users and token hashes (``token`` mode);"
            " default DATA_DIR/users.json. Manage with ``phaser user add``."
        ),
    )
    public_metrics: bool = Field(
        True,
        title="Open /metrics",
        description=(
            "Whether the frontend's ``/metrics`` answers without"
            " credentials in auth modes ``header`` and ``token`` (for a"
            " Prometheus that scrapes pods directly); false: admins only."
            " Metrics carry task names and counts, never job data."
        ),
    )
    allow_anonymous_network: bool = Field(
        False,
        title="Allow auth none off loopback",
        description=(
            "Let ``phaser serve`` with auth ``none`` bind a non-loopback"
            " address (anyone who can connect is the same anonymous user)."
        ),
    )
    max_active_jobs: PositiveInt | None = Field(
        None,
        title="Active jobs per owner",
        description=(
            "Most PENDING, QUEUED or EXECUTING jobs one owner has. Unset:"
            " 100 in auth modes header and token (many users share the"
            " workers), 100,000 in mode none (one user: a batch waits"
            " QUEUED for the workers instead of being refused)."
        ),
    )
    max_stored_jobs: PositiveInt | None = Field(
        None,
        title="Stored jobs per owner",
        description=(
            "Most jobs one owner keeps (in any phase). Unset: 10,000 in"
            " auth modes header and token, 1,000,000 in mode none."
        ),
    )
    default_execution_duration: NonNegativeInt = Field(
        600,
        title="Default execution duration (s)",
        description="Execution duration of a new job; 0 means unlimited.",
    )
    max_execution_duration: NonNegativeInt = Field(
        3600,
        title="Maximum execution duration (s)",
        description=(
            "Longest execution duration a client may ask for; 0 means no "
            "maximum. Requests above it are clamped to it."
        ),
    )
    default_lifetime: timedelta = Field(
        timedelta(days=7),
        title="Default lifetime",
        description="Time from creation to destruction of a new job.",
    )
    max_lifetime: timedelta = Field(
        timedelta(days=30),
        title="Maximum lifetime",
        description=(
            "Latest destruction time a client may set, counted from now. "
            "Later requests are clamped to it."
        ),
    )
    max_attempts: PositiveInt = Field(
        3,
        title="Maximum attempts",
        description="Attempts of a job whose task fails transiently.",
    )
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        title="Task modules",
        description=(
            "Python modules to import for their task registrations, "
            "comma-separated."
        ),
    )

    @field_validator("task_modules", "admin_users", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("task_queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        queues = {}
        for pair in value.split(","):
            if not pair.strip():
                continue
            task, sep, queue = pair.partition("=")
            if not sep or not task.strip() or not queue.strip():
                raise ValueError(f"expected task=queue, got {pair.strip()!r}")
            queues[task.strip()] = queue.strip()
        return queues

    @property
    def active_jobs_limit(self) -> int:
        """The active-jobs quota in force (see `max_active_jobs`)."""
        if self.max_active_jobs is not None:
            return self.max_active_jobs
        return 100_000 if self.auth == "none" else 100

    @property
    def stored_jobs_limit(self) -> int:
        """The stored-jobs quota in force (see `max_stored_jobs`)."""
        if self.max_stored_jobs is not None:
            return self.max_stored_jobs
        return 1_000_000 if self.auth == "none" else 10_000

    def queue_of(self, task: str) -> str:
        """The queue that jobs of a task are sent to."""
        return self.task_queues.get(task, self.queue_name)

    @field_validator("default_lifetime", "max_lifetime", mode="before")
    @classmethod
    def _lifetime_text(cls, value: object) -> object:
        """Seconds, or an ISO 8601 duration; nothing else (pydantic alone
        refuses ``3600`` from the environment and takes ``7days``)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.isdigit():
            return timedelta(seconds=int(text))
        if not _ISO_DURATION.fullmatch(text):
            raise ValueError(
                "expected seconds (3600) or an ISO 8601 duration (P7D, PT12H)"
            )
        return text

    @field_validator("default_lifetime", "max_lifetime")
    @classmethod
    def _positive_lifetime(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be positive")
        return value

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> Self:
        if self.default_lifetime > self.max_lifetime:
            raise ValueError(
                "PHASER_DEFAULT_LIFETIME exceeds PHASER_MAX_LIFETIME"
            )
        if self.stall_timeout < 3 * self.heartbeat_interval:
            raise ValueError(
                "PHASER_STALL_TIMEOUT must be at least three"
                " PHASER_HEARTBEAT_INTERVAL"
            )
        default = self.default_execution_duration
        if cap_duration(default, self.max_execution_duration) != default:
            raise ValueError(
                "PHASER_DEFAULT_EXECUTION_DURATION exceeds"
                " PHASER_MAX_EXECUTION_DURATION"
            )
        return self

    @property
    def users_path(self) -> Path:
        """The users file of ``token`` mode."""
        return self.users_file or self.data_dir / "users.json"

    @property
    def results_dir(self) -> Path:
        """Directory of the local result store."""
        return self.data_dir / "results"

    @property
    def redis_dir(self) -> Path:
        """Directory of the embedded Redis (AOF files, socket)."""
        return self.data_dir / "redis"

    def clamp_execution_duration(self, requested: int | None) -> int:
        """Apply the default and the maximum to a requested duration.

        Parameters
        ----------
        requested
            Seconds asked for, 0 for unlimited, `None` for the default.

        Returns
        -------
        int
            Seconds to use; 0 only when there is no maximum.
        """
        if requested is None:
            return self.default_execution_duration
        return cap_duration(requested, self.max_execution_duration)


def cap_duration(seconds: int, maximum: int | None) -> int:
    """An execution duration (0: unlimited) within a maximum (0 or
    `None`: none): the one rule for the server's, a task's and the
    default's limits."""
    if maximum and (seconds == 0 or seconds > maximum):
        return maximum
    return seconds


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Warnings for ``PHASER_*`` variables that are no setting (a typo is
    otherwise ignored in silence), naming the closest real one."""
    environ = dict(os.environ) if environ is None else environ
    known = {f"PHASER_{name.upper()}" for name in Settings.model_fields}
    warnings = []
    for name in sorted(environ):
        if (
            name.startswith("PHASER_")
            and name not in known
            and name not in _OTHER_VARIABLES
        ):
            close = difflib.get_close_matches(
                name.removeprefix("PHASER_"),
                [k.removeprefix("PHASER_") for k in known],
                n=1,
            )
            hint = f"; did you mean PHASER_{close[0]}?" if close else ""
            warnings.append(f"{name} is not a phaser setting{hint}")
    return warnings


def load_settings() -> Settings:
    """Read settings from the environment.

    Raises
    ------
    ConfigurationError
        A setting is invalid; the message names the environment variable.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = "_".join(str(p) for p in error["loc"]).upper()
            name = f"PHASER_{loc}" if loc else "configuration"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError(
            "invalid configuration: " + "; ".join(problems)
        ) from exc
