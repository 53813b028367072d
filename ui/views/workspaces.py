"""Workspaces: the searchable list with bulk change, and one workspace's page with its agents and tokens."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from agents.selectors.elevation import access_request_active_grants_for_workspace, access_request_may_decide
from agents.selectors.workspaces import (
    agent_get_for,
    agent_looser_override_list,
    agent_token_get,
    workspace_get_for,
    workspace_list_for,
)
from agents.services.elevation import access_request_time_left
from agents.services.tokens import agent_token_issue, agent_token_revoke
from agents.services.workspaces import agent_mode_set, workspace_mode_set, workspace_mode_set_bulk
from core.exceptions import ApplicationError
from core.roles import is_auditor
from policies import rules
from policies.scopes import ordered
from policies.selectors import permission_mode_find, permission_mode_list
from ui import selectors
from ui.forms import INHERIT, AgentModeForm, AgentTokenIssueForm, BulkModeForm, WorkspaceModeForm
from ui.views.common import SignedInView, confirm_loosening, service_failure

PAGE_SIZE = 25
ALL_TOKENS = "all"


class WorkspaceListView(SignedInView, TemplateView):
    template_name = "ui/workspace_list.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        query = self.request.GET.get("q", "").strip()
        mode = self.request.GET.get("mode", "").strip()
        modes = list(permission_mode_list())
        page = Paginator(selectors.workspace_search(user=user, query=query, mode=mode), PAGE_SIZE).get_page(
            self.request.GET.get("page")
        )
        return {
            **super().get_context_data(**kwargs),
            "page": page,
            "query": query,
            "mode": mode,
            "modes": modes,
            "can_write": not is_auditor(user),
        }


class WorkspaceBulkModeView(SignedInView, View):
    """One mode for several workspaces: one reason, one audit event each, one transaction."""

    def post(self, request):
        back = reverse("ui:workspace-list")
        form = BulkModeForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(request, f"{form.fields[field].label if field in form.fields else field}: {errors[0]}")
            return redirect(back)
        mode = permission_mode_find(name=form.cleaned_data["permission_mode"])
        if mode is None:
            messages.error(request, "Unknown permission mode.")
            return redirect(back)
        ids = form.cleaned_data["workspace"]
        workspaces = list(workspace_list_for(user=request.user).filter(pk__in=ids))
        if len(workspaces) != len(set(ids)):
            raise Http404
        reason = form.cleaned_data["reason"].strip()
        looser = [ws for ws in workspaces if rules.added_scopes(ws.permission_mode, mode)]
        if looser and not (form.cleaned_data["confirm_loosen"] and reason):
            return confirm_loosening(
                request,
                action=reverse("ui:workspace-bulk"),
                title=f"Loosen {len(looser)} workspace(s) to {mode.name}?",
                changes=[
                    {
                        "target": ws.name,
                        "from": ws.permission_mode.name,
                        "to": mode.name,
                        "added": rules.added_scopes(ws.permission_mode, mode),
                    }
                    for ws in looser
                ],
                fields=[("workspace", str(ws.pk)) for ws in workspaces] + [("permission_mode", mode.name)],
                reason=reason,
                back=back,
            )
        try:
            workspace_mode_set_bulk(actor=request.user, workspaces=workspaces, permission_mode=mode, reason=reason)
        except ApplicationError as error:
            return service_failure(request, error, back=back)
        messages.success(request, f"{len(workspaces)} workspace(s) now use mode {mode.name}.")
        _warn_about_looser_overrides(request, workspaces, name_workspace=True)
        return redirect(back)


def _warn_about_looser_overrides(request, workspaces, *, name_workspace: bool) -> None:
    """After a workspace mode change: name the agents whose own, looser mode the change does not limit."""
    looser = agent_looser_override_list(workspaces=workspaces)
    if not looser:
        return
    described = "; ".join(
        f"{f'{item.agent.workspace.name}/' if name_workspace else ''}{item.agent.name} "
        f"({item.agent.permission_mode.name}: {', '.join(item.extra_scopes)})"
        for item in looser
    )
    messages.warning(
        request,
        f"{len(looser)} agent(s) keep a looser override of their own, which this change does not limit: {described}.",
    )


def _tokens_shown_all(params) -> bool:
    """`?tokens=all` shows revoked and expired tokens too; by default only live ones are listed."""
    return params.get("tokens") == ALL_TOKENS


def _workspace_url(workspace_id, *, all_tokens: bool) -> str:
    url = reverse("ui:workspace-detail", args=[workspace_id])
    return f"{url}?tokens={ALL_TOKENS}" if all_tokens else url


class WorkspaceDetailView(SignedInView, TemplateView):
    template_name = "ui/workspace_detail.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        workspace = workspace_get_for(user=user, workspace_id=kwargs["workspace_id"])
        all_tokens = _tokens_shown_all(self.request.GET)
        modes = list(permission_mode_list())
        agents = selectors.workspace_agents_with_tokens(workspace=workspace, include_inactive_tokens=all_tokens)
        agent_rows = []
        for agent in agents:
            may_inherit, choices = selectors.agent_mode_choices(user=user, agent=agent, modes=modes)
            listed = agent.token_count if all_tokens else agent.live_token_count
            agent_rows.append(
                {
                    "agent": agent,
                    "may_inherit": may_inherit,
                    "choices": choices,
                    "effective_scopes": agent.effective_permission_mode.ordered_scopes(),
                    "tokens": agent.shown_tokens,
                    "tokens_listed": listed,
                    "tokens_not_shown": listed - len(agent.shown_tokens),
                    "tokens_hidden": 0 if all_tokens else agent.token_count - agent.live_token_count,
                    "statuses": agent.recent_statuses,
                }
            )
        return {
            **super().get_context_data(**kwargs),
            "workspace": workspace,
            "mode_choices": selectors.workspace_mode_choices(user=user, workspace=workspace, modes=modes),
            "modes": modes,
            "agent_rows": agent_rows,
            "all_tokens": all_tokens,
            "token_limit": selectors.TOKENS_SHOWN_PER_AGENT,
            "can_write": rules.may_write_workspace(user, owner_id=workspace.owner_id),
            "events": selectors.workspace_events_recent(workspace=workspace),
            "agent_names": {agent.id: agent.name for agent in agents},
            "grants": [
                {
                    "request": grant,
                    "time_left": access_request_time_left(grant),
                    "may_decide": access_request_may_decide(user=user, access_request=grant),
                }
                for grant in access_request_active_grants_for_workspace(workspace=workspace)
            ],
        }


class WorkspaceModeView(SignedInView, View):
    def post(self, request, workspace_id):
        workspace = workspace_get_for(user=request.user, workspace_id=workspace_id)
        back = reverse("ui:workspace-detail", args=[workspace.pk])
        form = WorkspaceModeForm(request.POST)
        mode = permission_mode_find(name=request.POST.get("permission_mode", ""))
        if not form.is_valid() or mode is None:
            messages.error(request, "Choose a known permission mode.")
            return redirect(back)
        reason = form.cleaned_data["reason"].strip()
        added = rules.added_scopes(workspace.permission_mode, mode)
        if added and not (form.cleaned_data["confirm_loosen"] and reason):
            return confirm_loosening(
                request,
                action=request.path,
                title=f"Loosen workspace {workspace.name} to {mode.name}?",
                changes=[
                    {"target": workspace.name, "from": workspace.permission_mode.name, "to": mode.name, "added": added}
                ],
                fields=[("permission_mode", mode.name)],
                reason=reason,
                back=back,
            )
        previous = workspace.permission_mode.name
        try:
            workspace_mode_set(actor=request.user, workspace=workspace, permission_mode=mode, reason=reason)
        except ApplicationError as error:
            return service_failure(request, error, back=back)
        if previous == mode.name:
            messages.info(request, f"Workspace {workspace.name} already uses mode {mode.name}.")
        else:
            messages.success(request, f"Workspace {workspace.name} changed from {previous} to {mode.name}.")
        _warn_about_looser_overrides(request, [workspace], name_workspace=False)
        return redirect(back)


class AgentModeView(SignedInView, View):
    def post(self, request, agent_id):
        agent = agent_get_for(user=request.user, agent_id=agent_id)
        back = reverse("ui:workspace-detail", args=[agent.workspace_id])
        form = AgentModeForm(request.POST)
        choice = request.POST.get("permission_mode", "")
        mode = None if choice == INHERIT else permission_mode_find(name=choice)
        if not form.is_valid() or (mode is None and choice != INHERIT):
            messages.error(request, "Choose a known permission mode or inherit.")
            return redirect(back)
        reason = form.cleaned_data["reason"].strip()
        current = agent.effective_permission_mode
        new_effective = mode or agent.workspace.permission_mode
        added = rules.added_scopes(current, new_effective)
        label = mode.name if mode else f"inherit ({agent.workspace.permission_mode.name})"
        if added and not (form.cleaned_data["confirm_loosen"] and reason):
            return confirm_loosening(
                request,
                action=request.path,
                title=f"Loosen agent {agent.name} to {label}?",
                changes=[{"target": agent.name, "from": current.name, "to": new_effective.name, "added": added}],
                fields=[("permission_mode", choice)],
                reason=reason,
                back=back,
            )
        try:
            agent_mode_set(actor=request.user, agent=agent, permission_mode=mode, reason=reason)
        except ApplicationError as error:
            return service_failure(request, error, back=back)
        messages.success(request, f"Agent {agent.name} now uses {label}.")
        return redirect(back)


class AgentTokenIssueView(SignedInView, View):
    """Shows the new token once, in this response: it is never stored, redirected with or put in the session."""

    carries_secret = True  # Cache-Control: no-store (core/http/no_store.py)

    def post(self, request, agent_id):
        agent = agent_get_for(user=request.user, agent_id=agent_id)
        back = reverse("ui:workspace-detail", args=[agent.workspace_id])
        form = AgentTokenIssueForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(request, f"{form.fields[field].label}: {errors[0]}")
            return redirect(back)
        try:
            issued = agent_token_issue(
                actor=request.user,
                agent=agent,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                lifetime_seconds=form.cleaned_data["lifetime_days"] * 86400,
            )
        except ApplicationError as error:
            return service_failure(request, error, back=back)
        return render(
            request,
            "ui/token_issued.html",
            {
                "agent": agent,
                "token": issued.token,
                "plaintext": issued.plaintext,
                "back": back,
                "scopes": ordered(issued.token.scopes),
            },
            status=201,
        )


class AgentTokenRevokeView(SignedInView, View):
    def post(self, request, agent_id, token_id):
        agent = agent_get_for(user=request.user, agent_id=agent_id)
        token = agent_token_get(agent=agent, token_id=token_id)
        # Back to the list the button was on: a revoke from `?tokens=all` stays on it.
        back = _workspace_url(agent.workspace_id, all_tokens=_tokens_shown_all(request.POST))
        try:
            revoked = agent_token_revoke(actor=request.user, token=token)
        except ApplicationError as error:
            return service_failure(request, error, back=back)
        if revoked:
            messages.success(request, f"Revoked {token} and {len(revoked) - 1} child token(s).")
        else:
            messages.info(request, f"{token} was already revoked.")
        return redirect(back)
