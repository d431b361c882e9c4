"""Standing webhook subscriptions: an owner's URL told of the events of
every job of theirs (of one task, if it says). Who may see and change a
subscription, which URLs and tasks it may name, and its secret are
decided here; deliveries are the `phaser.services.webhooks` sender's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..clock import now, to_ms
from ..config import Settings
from ..models.caller import Caller
from ..models.errors import NotFoundError, UnknownTaskError
from ..storage.job_store import JobStore
from ..storage.webhooks import Subscription
from ..tasks.registry import TaskRegistry
from .ids import new_job_id
from .webhooks import check_webhook_url, new_secret

__all__ = ["Subscriptions"]


class Subscriptions:
    """Subscriptions, as their owners (and admins) manage them.

    Parameters
    ----------
    settings
        The webhook allow-list.
    store
        Job store (the subscriptions live in its webhook outbox).
    registry
        Tasks (a subscription's task filter must name one).
    """

    def __init__(
        self, *, settings: Settings, store: JobStore, registry: TaskRegistry
    ) -> None:
        self._settings = settings
        self._outbox = store.webhooks
        self._registry = registry

    async def create(
        self,
        caller: Caller,
        *,
        url: str,
        events: Sequence[str],
        task: str | None,
        owner: str | None = None,
    ) -> Subscription:
        """A new subscription (for ``owner``: admins only), with its
        secret.

        Raises
        ------
        ForbiddenError
            An unsafe URL (see `check_webhook_url`).
        NotFoundError
            No such task.
        """
        self._check_task(task)
        await check_webhook_url(url, self._settings.webhook_hosts)
        created = now()
        sub = Subscription(
            id=new_job_id(to_ms(created)),
            owner=caller.acting_for(owner),
            url=url,
            events=tuple(events),
            task=task,
            secret=new_secret(),
            created_at=created,
        )
        await self._outbox.subscribe(sub)
        return sub

    async def owned(
        self, caller: Caller, owner: str | None = None
    ) -> list[Subscription]:
        """The caller's subscriptions (an admin's: ``owner``'s)."""
        return await self._outbox.subscriptions(caller.acting_for(owner))

    async def get(self, caller: Caller, sub_id: str) -> Subscription:
        """A subscription the caller may see (its owner's, or any for an
        admin).

        Raises
        ------
        NotFoundError
            No such subscription, or another owner's.
        """
        sub = await self._outbox.subscription(sub_id)
        if sub is None or not (sub.owner == caller.name or caller.admin):
            raise NotFoundError(f"No webhook subscription {sub_id}")
        return sub

    async def change(
        self,
        caller: Caller,
        sub_id: str,
        *,
        url: str | None,
        events: Sequence[str] | None,
        task: str | None,
    ) -> Subscription:
        """Change a subscription's URL, events or task (its secret stays).

        Raises
        ------
        NotFoundError
            No such subscription (or task).
        ForbiddenError
            An unsafe URL.
        """
        sub = await self.get(caller, sub_id)
        self._check_task(task)
        if url is not None:
            await check_webhook_url(url, self._settings.webhook_hosts)
        changed = Subscription(
            id=sub.id,
            owner=sub.owner,
            url=url or sub.url,
            events=tuple(events) if events else sub.events,
            task=task if task is not None else sub.task,
            secret=sub.secret,
            created_at=sub.created_at,
        )
        await self._outbox.subscribe(changed)
        return changed

    async def delete(self, caller: Caller, sub_id: str) -> None:
        """Delete a subscription and its record of attempts.

        Raises
        ------
        NotFoundError
            No such subscription.
        """
        await self._outbox.unsubscribe(await self.get(caller, sub_id))

    async def deliveries(
        self, caller: Caller, sub_id: str
    ) -> list[dict[str, Any]]:
        """A subscription's delivery attempts, oldest first.

        Raises
        ------
        NotFoundError
            No such subscription.
        """
        sub = await self.get(caller, sub_id)
        return await self._outbox.attempts("sub:" + sub.id)

    def _check_task(self, task: str | None) -> None:
        """404 for a task filter naming no task (as a job's would be)."""
        if task is None:
            return
        try:
            self._registry.get(task)
        except UnknownTaskError:
            raise NotFoundError(f"No task {task!r}") from None
