"""JSON API: standing webhook subscriptions (``/api/v1/webhooks``).

An owner (or an admin, for an owner) registers a URL told of the events
of every job of theirs, or of one task's; deliveries are made, signed
and recorded as for a job's own ``notify`` (`phaser.services.webhooks`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..dependencies.context import CurrentCaller, Service
from ..models.api import problem_responses
from ..models.notify import (
    DeliveriesModel,
    SubscriptionCreate,
    SubscriptionListModel,
    SubscriptionModel,
    SubscriptionPatch,
)
from ..storage.webhooks import Subscription

__all__ = ["router"]

router = APIRouter(responses=problem_responses(401, 404, 422, 503))


def _model(sub: Subscription, *, secret: bool = False) -> SubscriptionModel:
    return SubscriptionModel(
        id=sub.id,
        owner=sub.owner,
        url=sub.url,
        events=list(sub.events),
        task=sub.task,
        created_at=sub.created_at,
        secret=sub.secret if secret else None,
    )


@router.post(
    "/webhooks",
    status_code=201,
    summary="Subscribe a webhook",
    description=(
        "Tells ``url`` of the events of every job of yours (of ``task``"
        " only, if given). The answer carries the signing secret, this"
        " once. 403 for a URL that is not ``https://`` to a public address"
        " (and not allow-listed)."
    ),
    response_model=SubscriptionModel,
    responses=problem_responses(403),
)
async def subscribe(
    body: SubscriptionCreate,
    service: Service,
    caller: CurrentCaller,
    owner: Annotated[
        str | None, Query(max_length=128, description="Admins: for whom.")
    ] = None,
) -> SubscriptionModel:
    sub = await service.subscriptions.create(
        caller, url=body.url, events=body.events, task=body.task, owner=owner
    )
    return _model(sub, secret=True)


@router.get(
    "/webhooks",
    summary="List webhook subscriptions",
    description="Yours (an admin's: ``owner``'s), oldest first.",
    response_model=SubscriptionListModel,
)
async def list_subscriptions(
    service: Service,
    caller: CurrentCaller,
    owner: Annotated[
        str | None, Query(max_length=128, description="Admins: whose.")
    ] = None,
) -> SubscriptionListModel:
    found = await service.subscriptions.owned(caller, owner)
    return SubscriptionListModel(subscriptions=[_model(s) for s in found])


@router.get(
    "/webhooks/{sub_id}",
    summary="Get a webhook subscription",
    description="Its URL, events and task (its secret is never shown"
    " again). 404 for another owner's (admins see all).",
    response_model=SubscriptionModel,
)
async def get_subscription(
    sub_id: str, service: Service, caller: CurrentCaller
) -> SubscriptionModel:
    return _model(await service.subscriptions.get(caller, sub_id))


@router.patch(
    "/webhooks/{sub_id}",
    summary="Change a webhook subscription",
    description="Its URL, events or task; its secret stays.",
    response_model=SubscriptionModel,
    responses=problem_responses(403),
)
async def change_subscription(
    sub_id: str,
    body: SubscriptionPatch,
    service: Service,
    caller: CurrentCaller,
) -> SubscriptionModel:
    changed = await service.subscriptions.change(
        caller, sub_id, url=body.url, events=body.events, task=body.task
    )
    return _model(changed)


@router.delete(
    "/webhooks/{sub_id}",
    status_code=204,
    summary="Delete a webhook subscription",
    description="Its deliveries still due are dropped when their turn"
    " comes; its record of attempts goes.",
)
async def unsubscribe(
    sub_id: str, service: Service, caller: CurrentCaller
) -> Response:
    await service.subscriptions.delete(caller, sub_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{sub_id}/deliveries",
    summary="A subscription's delivery attempts",
    description="Oldest first, the latest 50.",
    response_model=DeliveriesModel,
)
async def subscription_deliveries(
    sub_id: str, service: Service, caller: CurrentCaller
) -> DeliveriesModel:
    attempts = await service.subscriptions.deliveries(caller, sub_id)
    return DeliveriesModel.model_validate({"deliveries": attempts})
