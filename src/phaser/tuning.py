"""Timings and sizes of workers, maintenance and HTTP connections: the
settings an operator tunes rather than configures (part of
`phaser.config.Settings`, read from the same ``PHASER_*`` variables)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode

__all__ = ["Tuning", "comma_separated"]


def comma_separated(value: object) -> object:
    """A setting's comma-separated text as a list (empty items dropped);
    anything else as it is."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Tuning(BaseSettings):
    """Worker, maintenance and HTTP timings (see `Settings`)."""

    worker_concurrency: PositiveInt = Field(
        10,
        title="Worker concurrency",
        description="Jobs one worker process runs at once.",
    )
    worker_poll_delay: PositiveFloat = Field(
        0.1,
        title="Worker idle poll interval (s)",
        description=(
            "Longest a worker waits between polls of the queue when no"
            " wake-up arrives (new entries wake workers at once; this"
            " bounds the delay of entries whose wake-up was lost)."
        ),
        le=5,
    )
    worker_grace_period: NonNegativeInt = Field(
        20,
        title="Worker grace period (s)",
        description=(
            "After SIGTERM a worker takes no new jobs and lets running jobs"
            " finish for this long; the rest go back to the queue."
        ),
    )
    heartbeat_interval: PositiveFloat = Field(
        1.0,
        title="Heartbeat interval (s)",
        description="How often a worker says that a running job is alive.",
    )
    stall_timeout: PositiveFloat = Field(
        10.0,
        title="Stall timeout (s)",
        description=(
            "A running job whose worker has been silent this long is"
            " re-queued (or fails with 'worker lost')."
        ),
    )
    maintenance_interval: PositiveFloat = Field(
        1.0,
        title="Maintenance interval (s)",
        description=(
            "How often one worker (at a time) destroys expired jobs,"
            " enforces missed deadlines and recovers stalled jobs."
        ),
    )
    queue_check_after: PositiveFloat = Field(
        30.0,
        title="Queue check (s)",
        description=(
            "A job QUEUED this long is sent to the queue again, in case its"
            " queue entry was lost (arq ignores a duplicate)."
        ),
    )
    priority_ageing: NonNegativeFloat = Field(
        0.0,
        title="Priority ageing (s)",
        description=(
            "A queued job gains one priority level per this many seconds"
            " of waiting, so low priorities are not starved under"
            " sustained load; 0 (the default): strict priorities."
        ),
        le=365 * 86400,
    )
    concurrency_key_limit: PositiveInt = Field(
        1,
        title="Concurrency key limit",
        description=(
            "Most jobs of one owner with one concurrency key EXECUTING at"
            " once, for tasks that set no ``key_limit``."
        ),
    )
    destruction_mode: Literal["delete", "archive"] = Field(
        "delete",
        title="Destruction mode",
        description=(
            "At destruction time, ``delete`` forgets the job; ``archive``"
            " keeps its metadata in phase ARCHIVED (results deleted)."
        ),
    )
    http_keep_alive: PositiveInt = Field(
        75,
        title="HTTP keep-alive (s)",
        description=(
            "How long an idle client connection stays open. Longer than the"
            " idle timeout of proxies and clients in front (nginx, load"
            " balancers: 60 s), so the server never closes a connection a"
            " request is being sent on."
        ),
    )
    http_header_timeout: PositiveFloat = Field(
        10.0,
        title="HTTP header timeout (s)",
        description=(
            "A request's line and headers must arrive within this, from"
            " the connection's start or the first byte of the request;"
            " otherwise the connection is closed."
        ),
    )
    http_body_timeout: PositiveFloat = Field(
        60.0,
        title="HTTP body timeout (s)",
        description=(
            "A request's body must arrive within this once its headers"
            " have; otherwise the connection is closed."
        ),
    )
    http_max_connections: PositiveInt = Field(
        10_000,
        title="Most open HTTP connections",
        description=(
            "Connections past this are closed at once. The open-file limit"
            " is raised to fit them where the system allows."
        ),
    )
    max_request_bytes: PositiveInt = Field(
        1024 * 1024,
        title="Largest request body (bytes)",
        description="Larger bodies are refused with 413.",
    )
    max_upload_bytes: PositiveInt = Field(
        64 * 1024 * 1024,
        title="Largest upload (bytes)",
        description=(
            "Largest file a job may be given (uploaded, or fetched by"
            " reference); larger ones are refused with 413."
        ),
    )
    max_upload_request_bytes: PositiveInt = Field(
        256 * 1024 * 1024,
        title="Largest upload request (bytes)",
        description=(
            "Largest ``multipart/form-data`` request body (files and"
            " fields); other bodies are capped by ``max_request_bytes``."
        ),
    )
    max_uploads: PositiveInt = Field(
        10, title="Most uploads", description="Most files one job may have."
    )
    idempotency_window: PositiveInt = Field(
        86400,
        title="Idempotency window (s)",
        description=(
            "How long an idempotency key names the job it made: the same"
            " key within it gets that job back."
        ),
        le=30 * 86400,
    )
    upload_fetch_timeout: PositiveInt = Field(
        60,
        title="Upload fetch timeout (s)",
        description="Longest a worker takes to fetch an upload by reference.",
        le=3600,
    )
    upload_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        title="Upload hosts",
        description=(
            "Comma-separated hosts (``host`` or ``host:port``) whose"
            " ``https://`` (or ``http://``) URLs a job may be given as an"
            " upload by reference (``UPLOAD=name,URL``); the worker fetches"
            " them. Empty (the default): uploads by reference are refused,"
            " so the server is no open proxy."
        ),
    )
    webhook_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        title="Webhook hosts",
        description=(
            "Comma-separated hosts (``host`` or ``host:port``) a job's"
            " ``notify`` URL may name over plain ``http://`` or on a"
            " loopback, link-local or private address. Every other"
            " webhook must be ``https://`` to a public address."
        ),
    )
    webhook_timeout: PositiveFloat = Field(
        10.0,
        title="Webhook timeout (s)",
        description="Longest one delivery attempt may take.",
        le=120,
    )
    webhook_retry_base: PositiveFloat = Field(
        5.0,
        title="Webhook first retry (s)",
        description=(
            "Delay before the second attempt of a failed delivery; it"
            " doubles for each one after (±20 % jitter, at most an hour)."
        ),
        le=3600,
    )
    webhook_horizon: PositiveInt = Field(
        86400,
        title="Webhook horizon (s)",
        description=(
            "How long a failing delivery is retried (from its event),"
            " after which it is given up (and recorded so)."
        ),
        le=7 * 86400,
    )
    orphan_sweep_interval: PositiveFloat = Field(
        3600,
        title="Orphan sweep interval (s)",
        description=(
            "How often stored files of jobs that no longer exist (a crash"
            " between deleting a job and its files) are looked for and"
            " deleted; files of jobs younger than this are left alone."
        ),
    )
    tracing: Literal["off", "otlp"] = Field(
        "off",
        title="Tracing",
        description=(
            "``otlp``: OpenTelemetry traces (a trace per job: its HTTP"
            " creation, queue wait, runs with the task as a child span,"
            " webhook deliveries), exported over OTLP/HTTP as the standard"
            " ``OTEL_EXPORTER_OTLP_*`` variables say. Needs the ``otel``"
            " extra (``pip install phaser[otel]``). ``off``: no tracing"
            " code is loaded."
        ),
    )
    max_parameters: PositiveInt = Field(
        100,
        title="Most parameters",
        description="Most parameters one job may have.",
    )
    max_parameters_bytes: PositiveInt = Field(
        64 * 1024,
        title="Largest parameters (bytes)",
        description="Largest size of a job's parameters as JSON.",
    )
    embedded_worker: bool = Field(
        True,
        title="Start a worker with the embedded Redis",
        description="Whether ``phaser serve`` in embedded mode also runs a "
        "worker process.",
    )
    log_level: str = Field(
        "INFO",
        title="Log level",
        description="Python log level name.",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
    )
    log_profile: str = Field(
        "development",
        title="Log profile",
        description="``production`` logs JSON; ``development`` readable text.",
        pattern=r"^(production|development)$",
    )
    max_wait: PositiveInt = Field(
        60,
        title="Maximum wait (s)",
        description="Cap on WAIT and ``?wait=`` long polls.",
        le=550,
    )
    sync_timeout: PositiveInt = Field(
        60,
        title="Sync timeout (s)",
        description=(
            "How long a synchronous request (DALI ``/{task}/sync``,"
            " ``POST /api/v1/jobs?sync=true``) waits for its job; then the"
            " job is aborted and the client told to use the async endpoint."
        ),
        le=3600,
    )

    @field_validator("upload_hosts", "webhook_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        value = comma_separated(value)
        if isinstance(value, list):
            return [str(host).lower() for host in value]
        return value
