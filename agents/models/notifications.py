from __future__ import annotations

from django.db import models


class WebhookDelivery(models.Model):
    """One POST to one webhook URL, written in the transaction of the change it announces (an outbox row), and
    delivered at least once by `manage.py deliver_webhooks` (agents/services/notifications.py)."""

    event = models.CharField(max_length=60)
    url = models.URLField(max_length=2000)
    # The exact bytes POSTed, so the signature and every retry cover the same body.
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The worker claims due rows with FOR UPDATE SKIP LOCKED through this.
            models.Index(fields=["next_attempt_at"], condition=models.Q(delivered_at__isnull=True), name="webhook_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.url}"
