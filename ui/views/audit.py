"""The audit log for admins and auditors: the API's filters, keyset pagination, one event, exports."""

from __future__ import annotations

from django.contrib import messages
from django.views.generic import TemplateView

from audit import actions
from audit import selectors as audit_selectors
from core.exceptions import ApplicationError
from ui import selectors
from ui.views.common import ReadersOnlyView

# The API routes are the contract here; they accept this UI's session cookie.
AUDIT_EXPORT_PATH = "/api/v2/audit/export"
FILTER_KEYS = ("action", "actor", "workspace", "agent", "since", "until")


def _filter_query(request) -> str:
    """The current filters (not the cursor) as a query string, for the export links."""
    query = request.GET.copy()
    for key in list(query.keys()):
        if key not in FILTER_KEYS:
            query.pop(key)
    return query.urlencode()


class AuditListView(ReadersOnlyView, TemplateView):
    template_name = "ui/audit_list.html"

    def get_context_data(self, **kwargs):
        events, next_cursor, error = [], None, ""
        try:
            filters = audit_selectors.audit_filters_from_query(self.request.GET)
            events, next_cursor = audit_selectors.audit_event_page(
                filters=filters, cursor=self.request.GET.get("cursor") or None, page_size=50
            )
        except ApplicationError as exc:
            problems = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in exc.extra.items())
            error = f"{exc.detail} {problems}".strip()
            messages.error(self.request, error)
        filter_query = _filter_query(self.request)
        return {
            **super().get_context_data(**kwargs),
            "events": events,
            "agent_names": selectors.agent_labels(user=self.request.user, ids={event.agent_id for event in events}),
            "next_cursor": next_cursor,
            "error": error,
            "actions": actions.ALL,
            "selected_actions": self.request.GET.getlist("action"),
            "values": {key: self.request.GET.get(key, "") for key in FILTER_KEYS},
            "is_first_page": not self.request.GET.get("cursor"),
            "export_csv": f"{AUDIT_EXPORT_PATH}?format=csv" + (f"&{filter_query}" if filter_query else ""),
            "export_jsonl": f"{AUDIT_EXPORT_PATH}?format=jsonl" + (f"&{filter_query}" if filter_query else ""),
            "export_ocsf": f"{AUDIT_EXPORT_PATH}?format=ocsf" + (f"&{filter_query}" if filter_query else ""),
        }


class AuditDetailView(ReadersOnlyView, TemplateView):
    template_name = "ui/audit_detail.html"

    def get_context_data(self, **kwargs):
        event = audit_selectors.audit_event_get(event_id=kwargs["event_id"])
        names = selectors.agent_labels(user=self.request.user, ids={event.agent_id})
        agent_name = names.get(event.agent_id) if event.actor_type == "agent" else None
        return {**super().get_context_data(**kwargs), "event": event, "agent_name": agent_name}
