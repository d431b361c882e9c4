"""Webhooks: telling a job's ``notify`` URL of its events.

A job created with ``notify: {url, events}`` gets a secret (shown once, in
the creation's answer) and, for each event it asked for, a delivery in
the outbox (`phaser.storage.webhooks`), written by the same script as the
change. Every worker runs a `WebhookSender`: it takes due deliveries,
POSTs the job's JSON signed per the Standard Webhooks specification
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; signed by
the ``standardwebhooks`` package), records each attempt, and retries
failures with exponential backoff and jitter until the horizon. A 2xx or
410 ends a delivery. Deliveries run beside jobs, never in their way: a
slow receiver holds one of the sender's slots, no job's.

Safety (no server-side request forgery): a webhook URL must be
``https://`` to a public address — checked after DNS resolution when the
job is created and again at each attempt, which connects to the address
it checked (so DNS cannot change the answer in between) — unless its
host is in ``PHASER_WEBHOOK_HOSTS``. Redirects are never followed (a 3xx
ends the delivery, recorded as refused); the answer's body is never
read. With tracing on, each attempt is a ``phaser.webhook.deliver`` span
in the job's trace, and the request carries it (``traceparent``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog
from redis.exceptions import RedisError
from standardwebhooks.webhooks import Webhook

from ..backoff import delay_after
from ..clock import format_time, now
from ..config import Settings
from ..models.errors import ForbiddenError
from ..models.job import Job
from ..models.job_json import job_document
from ..storage.job_store import JobStore
from ..storage.webhooks import Delivery
from ..tracing import Span, tracing
from .uploads import allowed_host

__all__ = ["WebhookSender", "check_webhook_url", "new_secret"]

_logger = structlog.get_logger("phaser.webhooks")

#: Deliveries one worker makes at once.
_SLOTS = 20

#: Longest wait between two retries of a delivery (s).
_MAX_DELAY = 3600.0


def new_secret() -> str:
    """A signing secret, as Standard Webhooks writes them."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def check_webhook_url(url: str, hosts: Sequence[str]) -> list[str]:
    """The addresses a webhook URL may be called at.

    Raises
    ------
    ForbiddenError
        Not ``https`` (and not allow-listed), credentials in it, a name
        that does not resolve, or one that resolves to a loopback,
        link-local, private or other non-public address (and is not
        allow-listed).
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused(url, "not a URL") from None
    host = parts.hostname or ""
    trusted = allowed_host(url, hosts)
    if parts.scheme != "https" and not (parts.scheme == "http" and trusted):
        raise _refused(url, "webhooks must be https")
    if not host or parts.username or parts.password:
        raise _refused(url, "no host, or credentials in the URL")
    try:
        found = await asyncio.to_thread(
            socket.getaddrinfo, host, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise _refused(url, f"{host} does not resolve") from None
    addresses = sorted({str(info[4][0]) for info in found})
    if not trusted:
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise _refused(
                    url,
                    f"{host} resolves to {address}, a loopback, link-local"
                    " or private address",
                )
    return addresses


def _refused(url: str, why: str) -> ForbiddenError:
    return ForbiddenError(
        f"Webhook URL {url!r} refused: {why} (PHASER_WEBHOOK_HOSTS lists"
        " the hosts allowed otherwise)",
        fields=[{"field": "notify.url", "message": why}],
    )


class WebhookSender:
    """Delivers due webhooks (one per worker; see the module doc).

    Parameters
    ----------
    settings
        Timeouts, retries, the allow-list and the public base URL.
    store
        Job store (the outbox and the jobs).
    """

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self._settings = settings
        self._store = store
        self._outbox = store.webhooks
        self._http = httpx.AsyncClient(
            timeout=settings.webhook_timeout, follow_redirects=False
        )
        self._running: set[asyncio.Task[None]] = set()
        self._rescheduled = asyncio.Event()
        base = settings.base_url
        self._base_url = str(base).rstrip("/") if base else ""

    async def run(self) -> None:
        """Deliver what is due, for ever (cancel to stop)."""
        lease = self._settings.webhook_timeout + 5
        try:
            while True:
                pause = 1.0
                try:
                    free = _SLOTS - len(self._running)
                    if free > 0:
                        for delivery in await self._outbox.take_due(
                            now(), lease=lease, limit=free
                        ):
                            task = asyncio.create_task(self._deliver(delivery))
                            self._running.add(task)
                            task.add_done_callback(self._running.discard)
                    due = await self._outbox.next_due()
                    if due is not None:
                        wait = (due - now()).total_seconds()
                        pause = min(1.0, max(0.02, wait))
                except (RedisError, OSError) as exc:
                    _logger.warning(
                        "Webhook outbox unreachable", error=str(exc)
                    )
                # A delivery of this worker's that is due again sooner
                # wakes the loop (another worker's is found within 1 s).
                self._rescheduled.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._rescheduled.wait()
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            await self._http.aclose()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except (RedisError, OSError) as exc:
            # The lease runs out and the delivery is taken again.
            _logger.warning("Webhook delivery interrupted", error=str(exc))

    async def _attempt(self, delivery: Delivery) -> None:
        job = await self._store.get(delivery.job_id)
        target = await self._target(delivery, job)
        if job is None or target is None:
            # The job, its webhook or the subscription is gone.
            await self._outbox.drop(delivery.id)
            return
        url, secret = target
        body = json.dumps(
            {
                "type": f"job.{delivery.event}",
                "timestamp": format_time(delivery.at),
                # The event's phase; ``data`` is the job as it is now.
                "phase": delivery.phase,
                "data": job_document(job, self._base_url),
            },
            separators=(",", ":"),
        )
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        refused = False
        attempt = delivery.attempt + 1
        with tracing().span(
            "phaser.webhook.deliver",
            parent=job.trace,
            kind="client",
            attributes={
                "phaser.job.id": job.id,
                "phaser.event": delivery.event,
                "phaser.attempt": attempt,
                "phaser.subscription": delivery.subscription or None,
                "server.address": urlsplit(url).hostname,
            },
        ) as span:
            try:
                addresses = await check_webhook_url(
                    url, self._settings.webhook_hosts
                )
                status, location = await self._post(
                    url, addresses[0], body, delivery, secret, span
                )
                if 300 <= status < 400:
                    # Not followed, ever: the next address is not checked,
                    # and asking again would be answered the same.
                    refused = True
                    error = f"redirect to {location!r} not followed"
            except ForbiddenError as exc:
                refused, error = True, exc.message
            except httpx.HTTPError as exc:
                error = (
                    f"{type(exc).__name__}: {exc}"
                    if str(exc)
                    else (type(exc).__name__)
                )
            span.set("http.response.status_code", status)
            if error is not None or not (status and status < 300):
                span.fail(error or f"answered {status}")
        entry: dict[str, Any] = {
            "delivery": delivery.id,
            "subscription": delivery.subscription or None,
            "job": job.id,
            "event": delivery.event,
            "phase": delivery.phase,
            "attempt": attempt,
            "at": format_time(now()),
            "status": status,
            "ms": round((time.monotonic() - started) * 1000, 1),
            "error": error,
        }
        delivered = status is not None and (
            200 <= status < 300 or status == 410
        )
        delay = delay_after(
            attempt,
            first=self._settings.webhook_retry_base,
            most=_MAX_DELAY,
            jitter=0.2,
        )
        retry_at = now() + timedelta(seconds=delay)
        horizon = timedelta(seconds=self._settings.webhook_horizon)
        if not (delivered or refused) and retry_at - delivery.at > horizon:
            entry["gave_up"] = True
        keep = (job.destruction_time or now()) + timedelta(days=1)
        await self._outbox.record(job.id, entry, keep_until=keep)
        if delivery.subscription:
            await self._outbox.record(
                "sub:" + delivery.subscription,
                entry,
                keep_until=now() + timedelta(days=30),
            )
        if delivered or refused or entry.get("gave_up"):
            await self._outbox.drop(delivery.id)
        else:
            await self._outbox.retry(delivery, retry_at)
            self._rescheduled.set()

    async def _target(
        self, delivery: Delivery, job: Job | None
    ) -> tuple[str, str] | None:
        """Where a delivery goes and the secret it is signed with."""
        if delivery.subscription:
            sub = await self._outbox.subscription(delivery.subscription)
            return (sub.url, sub.secret) if sub is not None else None
        if job is None or job.notify is None or not job.notify_secret:
            return None
        return job.notify.url, job.notify_secret

    async def _post(
        self,
        url: str,
        address: str,
        body: str,
        delivery: Delivery,
        secret: str,
        span: Span,
    ) -> tuple[int, str | None]:
        """POST to the address that was checked (not to whatever the name
        resolves to by then), signed; the status and any ``Location``
        (the body is not read)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        literal = f"[{address}]" if ":" in address else address
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        target = urlunsplit(parts._replace(netloc=netloc))
        moment = now()
        headers = {
            "content-type": "application/json",
            "host": parts.netloc.rsplit("@", 1)[-1],
            "user-agent": "phaser-webhooks",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(secret).sign(
                delivery.id, moment, body
            ),
        }
        if span.traceparent is not None:
            # The receiver may carry the job's trace on.
            headers["traceparent"] = span.traceparent
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        async with self._http.stream(
            "POST",
            target,
            content=body,
            headers=headers,
            extensions=extensions,
        ) as response:
            return response.status_code, response.headers.get("location")
