"""Wire models of webhooks: a job's ``notify`` and its delivery
attempts (see `phaser.services.webhooks`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["DeliveriesModel", "DeliveryModel", "NotifyModel"]


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
