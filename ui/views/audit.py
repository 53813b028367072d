"""The audit log for admins and auditors: the API's filters, keyset pagination, one event, exports."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.views.generic import TemplateView

from audit import selectors as audit_selectors
from coderauth.exceptions import ServiceError
from ui.views.common import ReadersOnlyView

# The API routes are the contract here (DESIGN.md §5); they accept this UI's session cookie.
AUDIT_EXPORT_PATH = "/api/v2/audit/export"
FILTER_KEYS = ("action", "actor", "workspace", "agent", "since", "until")

# The actions the services record (DESIGN.md §7 and the app's own), offered in the filter's select.
KNOWN_ACTIONS = (
    "agent.access_denied",
    "agent.created",
    "agent.mode_changed",
    "agent.user_data_accessed",
    "agent_token.issued",
    "agent_token.purged",
    "agent_token.rejected",
    "agent_token.revoked",
    "audit.archived",
    "external_auth_provider.created",
    "permission_mode.created",
    "permission_mode.deleted",
    "permission_mode.updated",
    "user.created",
    "user.deleted",
    "user.external_auth_linked",
    "user.gitsshkey_created",
    "user.gitsshkey_regenerated",
    "user.login",
    "user.login_failed",
    "user.updated",
    "user_token.issued",
    "user_token.purged",
    "user_token.revoked",
    "workspace.created",
    "workspace.mode_changed",
)


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
        except ServiceError as exc:
            problems = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in exc.extra.items())
            error = f"{exc.detail} {problems}".strip()
            messages.error(self.request, error)
        filter_query = _filter_query(self.request)
        return {
            **super().get_context_data(**kwargs),
            "events": events,
            "next_cursor": next_cursor,
            "error": error,
            "actions": KNOWN_ACTIONS,
            "selected_actions": self.request.GET.getlist("action"),
            "values": {key: self.request.GET.get(key, "") for key in FILTER_KEYS},
            "is_first_page": not self.request.GET.get("cursor"),
            "export_csv": f"{AUDIT_EXPORT_PATH}?format=csv" + (f"&{filter_query}" if filter_query else ""),
            "export_jsonl": f"{AUDIT_EXPORT_PATH}?format=jsonl" + (f"&{filter_query}" if filter_query else ""),
        }


class AuditDetailView(ReadersOnlyView, TemplateView):
    template_name = "ui/audit_detail.html"

    def get_context_data(self, **kwargs):
        try:
            event = audit_selectors.audit_event_get(event_id=kwargs["event_id"])
        except ServiceError:
            raise Http404
        if event is None:
            raise Http404
        return {**super().get_context_data(**kwargs), "event": event}
