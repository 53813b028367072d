"""The permissions report: who could do what, with least-privilege recommendations admins can apply."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from agents.selectors.reports import permissions_report_rows
from agents.selectors.workspaces import agent_get_for
from agents.services.workspaces import agent_mode_set
from core.exceptions import ApplicationError
from core.roles import is_admin
from policies.selectors import permission_mode_find, permission_mode_list
from ui.forms import (
    UNUSED_DAYS_DEFAULT,
    UNUSED_DAYS_MAX,
    UNUSED_DAYS_MIN,
    PermissionsReportForm,
    RecommendationApplyForm,
)
from ui.views.common import ReadersOnlyView, require_admin, service_failure

REPORT_PATH = "/api/v2/reports/permissions"


def recommended_mode(row: dict, mode_names: list[str]) -> str | None:
    """The report's recommendation is the name of the mode to switch the agent to, or empty."""
    recommendation = row.get("recommendation") or ""
    return recommendation if recommendation in mode_names else None


def _report_url(unused_days: int) -> str:
    """The reports page for a window; the default window needs no query string."""
    url = reverse("ui:reports")
    return url if unused_days == UNUSED_DAYS_DEFAULT else f"{url}?{urlencode({'unused_days': unused_days})}"


def _unused_days(form: PermissionsReportForm) -> int:
    """The window the form asks for, or the default when its value is refused (the form shows why)."""
    return form.cleaned_data["unused_days"] if form.is_valid() else UNUSED_DAYS_DEFAULT


class ReportView(ReadersOnlyView, TemplateView):
    template_name = "ui/reports.html"

    def get_context_data(self, **kwargs):
        form = PermissionsReportForm(self.request.GET)
        unused_days = _unused_days(form)
        rows = permissions_report_rows(unused_days=unused_days)
        mode_names = [mode.name for mode in permission_mode_list()]
        for row in rows:
            row["recommended_mode"] = recommended_mode(row, mode_names)
        return {
            **super().get_context_data(**kwargs),
            "form": form,
            "unused_days": unused_days,
            "unused_days_min": UNUSED_DAYS_MIN,
            "unused_days_max": UNUSED_DAYS_MAX,
            "rows": rows,
            "recommendations": [row for row in rows if row.get("recommendation")],
            "can_apply": is_admin(self.request.user),
            "download_csv": f"{REPORT_PATH}?{urlencode({'format': 'csv', 'unused_days': unused_days})}",
        }


class RecommendationApplyView(ReadersOnlyView, View):
    """One click for an admin: set the recommended override through the same service as any mode change."""

    def post(self, request):
        require_admin(request.user)
        back = _report_url(_unused_days(PermissionsReportForm(request.POST)))
        form = RecommendationApplyForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give a reason to apply a recommendation.")
            return redirect(back)
        agent = agent_get_for(user=request.user, agent_id=form.cleaned_data["agent_id"])
        mode = permission_mode_find(name=form.cleaned_data["permission_mode"])
        if mode is None:
            messages.error(request, "Unknown permission mode.")
            return redirect(back)
        try:
            agent_mode_set(actor=request.user, agent=agent, permission_mode=mode, reason=form.cleaned_data["reason"])
        except ApplicationError as error:
            return service_failure(request, error, back=back)
        messages.success(request, f"Agent {agent.name} in {agent.workspace.name} now uses {mode.name}.")
        return redirect(back)
