"""The webhook deliveries page: what the outbox sent, what it is still retrying and why, for admins and auditors."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import Http404
from django.views.generic import TemplateView

from agents.selectors.webhook_deliveries import webhook_delivery_counts, webhook_delivery_list_latest
from core.roles import can_read_everything
from ui.views.common import SignedInView

LATEST_ROWS = 100


class WebhookDeliveryListView(SignedInView, TemplateView):
    """Read-only. Members get a 404: the page is no concern of theirs and the URLs it lists are the operator's."""

    template_name = "ui/webhooks.html"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not can_read_everything(request.user):
            raise Http404
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        deliveries = webhook_delivery_list_latest(limit=LATEST_ROWS)
        for delivery in deliveries:
            # The host only: a path or query may carry the receiver's own secret.
            delivery.host = urlsplit(delivery.url).netloc.rpartition("@")[2] or delivery.url[:40]
        return {**super().get_context_data(**kwargs), "deliveries": deliveries, **webhook_delivery_counts()}
