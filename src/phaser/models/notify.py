"""Wire models of webhooks: a job's ``notify`` and its delivery
attempts (see `phaser.services.webhooks`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .job import NotifyEvent

__all__ = [
    "DeliveriesModel",
    "DeliveryModel",
    "NotifyModel",
    "NotifyRequest",
    "SubscriptionCreate",
    "SubscriptionListModel",
    "SubscriptionModel",
    "SubscriptionPatch",
    "final_only",
]

#: An event a webhook may be told of.
Event = NotifyEvent


class DeliveryModel(BaseModel):
    """One attempt to deliver a job's webhook."""

    delivery: str = Field(..., title="Delivery id (``webhook-id``)")
    event: str = Field(
        ..., title="Event", description="final, phase, progress"
    )
    phase: str = Field(..., title="Phase the event told of")
    attempt: int = Field(..., title="Attempt", description="1 for the first")
    at: str = Field(..., title="When (RFC 3339)")
    status: int | None = Field(None, title="HTTP status answered, if any")
    ms: float = Field(..., title="Duration (ms)")
    error: str | None = Field(
        None, title="Why it failed (or was refused), if it did"
    )
    gave_up: bool = Field(
        False, title="Given up", description="Past PHASER_WEBHOOK_HORIZON"
    )


class DeliveriesModel(BaseModel):
    """A job's webhook delivery attempts, oldest first (the latest 50)."""

    deliveries: list[DeliveryModel] = Field(..., title="Attempts")


class NotifyModel(BaseModel):
    """A job's webhook."""

    url: str = Field(..., title="URL")
    events: list[str] = Field(..., title="Events")
    secret: str | None = Field(
        None,
        title="Secret",
        description=(
            "The key deliveries are signed with: in the creation's answer"
            " only (keep it), never again."
        ),
    )


def final_only() -> list[Event]:
    """The events a webhook is told of unless it says."""
    return ["final"]


class NotifyRequest(BaseModel):
    """A job's webhook."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        ...,
        max_length=2048,
        title="URL",
        description=(
            "Where the job's events are POSTed: ``https://`` to a public"
            " address (hosts in ``PHASER_WEBHOOK_HOSTS`` may also be"
            " ``http://`` or private)."
        ),
    )
    events: list[Event] = Field(
        default_factory=final_only,
        min_length=1,
        max_length=3,
        title="Events",
        description=(
            "``final`` (its end), ``phase`` (every change of phase),"
            " ``progress``."
        ),
    )


class SubscriptionCreate(NotifyRequest):
    """A standing webhook for every job of yours (of one task)."""

    task: str | None = Field(
        None, max_length=64, title="Task", description="Only its jobs."
    )


class SubscriptionPatch(BaseModel):
    """Changes to a subscription (its secret stays)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2048, title="URL")
    events: list[Event] | None = Field(
        None, min_length=1, max_length=3, title="Events"
    )
    task: str | None = Field(None, max_length=64, title="Task")


class SubscriptionModel(BaseModel):
    """A standing webhook."""

    id: str = Field(..., title="Id")
    owner: str | None = Field(..., title="Owner")
    url: str = Field(..., title="URL")
    events: list[str] = Field(..., title="Events")
    task: str | None = Field(None, title="Task")
    created_at: datetime = Field(..., title="Created")
    secret: str | None = Field(
        None,
        title="Secret",
        description="The signing key: in the creation's answer only.",
    )


class SubscriptionListModel(BaseModel):
    """An owner's subscriptions, oldest first."""

    subscriptions: list[SubscriptionModel] = Field(..., title="Subscriptions")
