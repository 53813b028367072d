"""Delivering the webhook outbox: at least once, signed, retried with backoff, never sent by two workers at once.

Each row is claimed with `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1` and its row lock is held while its POST is in
flight: one row per transaction. Another worker skips a locked row, so a row is never POSTed twice at the same
time; a worker that dies mid-POST rolls back, and the row stays due for the next one (at least once). The cost is
one open transaction per worker for at most the POST's timeout, and receivers must deduplicate on
`X-Coderauth-Delivery`, as at-least-once delivery asks of them anyway. A row is never given up on: the UI's
"Webhook deliveries" page shows the ones that keep failing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import WebhookDelivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Coderauth-Signature"
EVENT_HEADER = "X-Coderauth-Event"
DELIVERY_HEADER = "X-Coderauth-Delivery"
# The row lock is held while the POST is in flight, so the POST must end soon: 5 s per phase (connect, write, read
# the status line and headers); the response body is never read.
POST_TIMEOUT = httpx.Timeout(5.0)
RETRY_BASE_SECONDS = 10
RETRY_CAP_SECONDS = 600
ERROR_MAX_CHARS = 300


@dataclass
class DeliveryPass:
    """What one pass over the due rows did."""

    delivered: int = 0
    retrying: int = 0

    def __add__(self, other: DeliveryPass) -> DeliveryPass:
        return DeliveryPass(self.delivered + other.delivered, self.retrying + other.retrying)

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying


def webhook_signature(*, body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the exact body bytes>`, the value of X-Coderauth-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_retry_delay(*, attempts: int) -> timedelta:
    """Exponential backoff after `attempts` failed attempts (10 s, 20 s, 40 s … capped at 10 min), with jitter
    between half and all of it, so receivers coming back are not hit by every row at the same instant."""
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 16))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def _error_text(error: Exception, url: str) -> str:
    """The failure in a few words, without the URL (it may carry credentials in its user info or query)."""
    text = f"{type(error).__name__}: {error}".replace(url, urlsplit(url).hostname or "the URL")
    return text[:ERROR_MAX_CHARS]


def _post(client: httpx.Client, delivery: WebhookDelivery) -> tuple[int | None, str]:
    """POST the row's body; (status, error text). Only the status line and headers are waited for."""
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "coderauth-webhooks",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        SIGNATURE_HEADER: webhook_signature(body=body, secret=settings.CODERAUTH_ELEVATION_WEBHOOK_SECRET),
    }
    try:
        with client.stream("POST", delivery.url, content=body, headers=headers) as response:
            status = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
        return None, _error_text(error, delivery.url)
    return status, "" if 200 <= status < 300 else f"HTTP {status}"


def _deliver_one(*, client: httpx.Client, now: datetime | None, skip: set[int]) -> bool | None:
    """Claim one due row, POST it under its row lock and record the outcome. True: delivered; False: a retry was
    scheduled; None: nothing was due (or every due row is held by another worker)."""
    with transaction.atomic():
        claimed_at = now or timezone.now()
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(delivered_at__isnull=True, next_attempt_at__lte=claimed_at)
            .exclude(pk__in=skip)
            .order_by("next_attempt_at", "pk")
            .first()
        )
        if delivery is None:
            return None
        skip.add(delivery.pk)
        status, error = _post(client, delivery)
        done_at = now or timezone.now()
        delivery.attempts += 1
        delivery.last_status = status
        delivery.last_error = error
        delivered = not error
        if delivered:
            delivery.delivered_at = done_at
        else:
            delivery.next_attempt_at = done_at + webhook_retry_delay(attempts=delivery.attempts)
            logger.warning(
                "webhook delivery %s (%s) failed, attempt %s: %s", delivery.pk, delivery.event, delivery.attempts, error
            )
        delivery.save(update_fields=["attempts", "last_status", "last_error", "delivered_at", "next_attempt_at"])
    return delivered


def webhook_deliveries_deliver_due(
    *,
    limit: int = 100,
    now: datetime | None = None,
    client: httpx.Client | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> DeliveryPass:
    """Deliver up to `limit` due rows, one at a time, each at most once in this pass. `now` fixes the clock (tests);
    `should_stop` is asked between rows (the worker's SIGTERM)."""
    result = DeliveryPass()
    skip: set[int] = set()
    own_client = nullcontext(client) if client else httpx.Client(timeout=POST_TIMEOUT, follow_redirects=False)
    with own_client as http:
        while result.attempted < limit and not should_stop():
            delivered = _deliver_one(client=http, now=now, skip=skip)
            if delivered is None:
                break
            result += DeliveryPass(delivered=int(delivered), retrying=int(not delivered))
    return result
