"""The audit streaming page: each SIEM sink's cursor, lag, deliveries and last error, for admins and auditors."""

from __future__ import annotations

from django.http import Http404
from django.views.generic import TemplateView

from audit.streaming.selectors import audit_stream_status
from audit.streaming.sinks import SinkConfigError
from core.roles import can_read_everything
from ui.views.common import SignedInView


class AuditStreamStatusView(SignedInView, TemplateView):
    """Read-only. Members get a 404, as on the webhook page: the receivers are the operator's business."""

    template_name = "ui/streaming.html"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not can_read_everything(request.user):
            raise Http404
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        try:
            sinks, config_error = audit_stream_status(), ""
        except SinkConfigError as error:
            # The web server runs no system check: show the problem (its message holds no secret) instead of a 500.
            sinks, config_error = [], str(error)
        return {
            **super().get_context_data(**kwargs),
            "sinks": sinks,
            "config_error": config_error,
            "failing": sum(sink.failing for sink in sinks),
        }
