"""The dashboard at `/`: modes at a glance, agents that can still read user data, denials, task status."""

from __future__ import annotations

from django.views.generic import TemplateView

from ui import selectors
from ui.views.auth import LoginView


class DashboardView(TemplateView):
    template_name = "ui/dashboard.html"

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return LoginView.as_view()(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        user = self.request.user
        counts = selectors.mode_counts(user=user)
        denied = selectors.denied_requests_recent(user=user)
        user_data_agents, user_data_agent_count = selectors.agents_allowing_user_data(user=user)
        return {
            **super().get_context_data(**kwargs),
            "workspace_counts": counts["workspaces"],
            "agent_counts": counts["agents"],
            "workspace_total": sum(row["count"] for row in counts["workspaces"]),
            "agent_total": sum(row["count"] for row in counts["agents"]),
            "user_data_agents": user_data_agents,
            "user_data_agent_count": user_data_agent_count,
            "denied": denied,
            "workspace_names": selectors.workspace_names(user=user, ids={event.workspace_id for event in denied}),
            "statuses": selectors.latest_app_status_per_agent(user=user),
        }
