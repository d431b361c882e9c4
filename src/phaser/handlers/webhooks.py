"""JSON API: standing webhook subscriptions (``/api/v1/webhooks``).

An owner (or an admin, for an owner) registers a URL told of the events
of every job of theirs, or of one task's; deliveries are made, signed
and recorded as for a job's own ``notify`` (`phaser.services.webhooks`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..clock import now, to_ms
from ..dependencies.context import CurrentCaller, Service
from ..models.api import problem_responses
from ..models.caller import Caller
from ..models.errors import NotFoundError, PhaserError
from ..models.notify import (
    DeliveriesModel,
    SubscriptionCreate,
    SubscriptionListModel,
    SubscriptionModel,
    SubscriptionPatch,
)
from ..services.ids import new_job_id
from ..services.webhooks import check_webhook_url, new_secret
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


def _check_task(service: Service, task: str | None) -> None:
    """404 for a task filter naming no task (as a job's task would be)."""
    if task is None:
        return
    try:
        service.task(task)
    except PhaserError:
        raise NotFoundError(f"No task {task!r}") from None


async def _visible(
    service: Service, caller: Caller, sub_id: str
) -> Subscription:
    sub = await service.store.webhooks.subscription(sub_id)
    if sub is None or not (sub.owner == caller.name or caller.admin):
        raise NotFoundError(f"No webhook subscription {sub_id}")
    return sub


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
    _check_task(service, body.task)
    await check_webhook_url(body.url, service.settings.webhook_hosts)
    created = now()
    sub = Subscription(
        id=new_job_id(to_ms(created)),
        owner=owner if (caller.admin and owner is not None) else caller.name,
        url=body.url,
        events=tuple(body.events),
        task=body.task,
        secret=new_secret(),
        created_at=created,
    )
    await service.store.webhooks.subscribe(sub)
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
    whose = owner if (caller.admin and owner is not None) else caller.name
    found = await service.store.webhooks.subscriptions(whose)
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
    return _model(await _visible(service, caller, sub_id))


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
    sub = await _visible(service, caller, sub_id)
    _check_task(service, body.task)
    if body.url is not None:
        await check_webhook_url(body.url, service.settings.webhook_hosts)
    changed = Subscription(
        id=sub.id,
        owner=sub.owner,
        url=body.url or sub.url,
        events=tuple(body.events) if body.events else sub.events,
        task=body.task if body.task is not None else sub.task,
        secret=sub.secret,
        created_at=sub.created_at,
    )
    await service.store.webhooks.subscribe(changed)
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
    sub = await _visible(service, caller, sub_id)
    await service.store.webhooks.unsubscribe(sub)
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
    sub = await _visible(service, caller, sub_id)
    attempts = await service.store.webhooks.attempts("sub:" + sub.id)
    return DeliveriesModel.model_validate({"deliveries": attempts})
