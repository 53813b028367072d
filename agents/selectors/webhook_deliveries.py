"""Reads of the webhook outbox for the admins' "Webhook deliveries" page."""

from __future__ import annotations

from django.db.models import Count, Q

from agents.models import WebhookDelivery


def webhook_delivery_list_latest(*, limit: int = 100) -> list[WebhookDelivery]:
    """The newest rows, delivered or not."""
    return list(WebhookDelivery.objects.order_by("-id")[:limit])


def webhook_delivery_counts() -> dict[str, int]:
    """Rows still to deliver (`waiting`), and those of them that have failed at least once (`failing`)."""
    return WebhookDelivery.objects.filter(delivered_at__isnull=True).aggregate(
        waiting=Count("id"), failing=Count("id", filter=Q(attempts__gt=0))
    )
