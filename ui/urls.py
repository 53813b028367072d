from django.urls import path

from ui.views import access_requests, audit, auth, dashboard, modes, reports, sso, streaming, webhooks, workspaces

urlpatterns = [
    path("", dashboard.DashboardView.as_view(), name="home"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("login/break-glass/", sso.BreakGlassView.as_view(), name="break-glass"),
    path("sso/login/", sso.SsoLoginView.as_view(), name="sso-login"),
    path("sso/callback/", sso.SsoCallbackView.as_view(), name="sso-callback"),
    path("account/password/", auth.PasswordChangeView.as_view(), name="password-change"),
    path("workspaces/", workspaces.WorkspaceListView.as_view(), name="workspace-list"),
    path("workspaces/bulk-mode/", workspaces.WorkspaceBulkModeView.as_view(), name="workspace-bulk"),
    path("workspaces/<uuid:workspace_id>/", workspaces.WorkspaceDetailView.as_view(), name="workspace-detail"),
    path("workspaces/<uuid:workspace_id>/mode/", workspaces.WorkspaceModeView.as_view(), name="workspace-mode"),
    path("agents/<uuid:agent_id>/mode/", workspaces.AgentModeView.as_view(), name="agent-mode"),
    path("agents/<uuid:agent_id>/tokens/", workspaces.AgentTokenIssueView.as_view(), name="agent-token-issue"),
    path(
        "agents/<uuid:agent_id>/tokens/<uuid:token_id>/revoke/",
        workspaces.AgentTokenRevokeView.as_view(),
        name="agent-token-revoke",
    ),
    path("permission-modes/", modes.PermissionModeListView.as_view(), name="modes"),
    path("audit/", audit.AuditListView.as_view(), name="audit"),
    path("audit/<int:event_id>/", audit.AuditDetailView.as_view(), name="audit-detail"),
    path("audit/streaming/", streaming.AuditStreamStatusView.as_view(), name="audit-streaming"),
    path("reports/", reports.ReportView.as_view(), name="reports"),
    path("reports/apply/", reports.RecommendationApplyView.as_view(), name="report-apply"),
    path("webhooks/", webhooks.WebhookDeliveryListView.as_view(), name="webhooks"),
    path("access-requests/", access_requests.AccessRequestQueueView.as_view(), name="access-requests"),
    path(
        "access-requests/history/",
        access_requests.AccessRequestHistoryView.as_view(),
        name="access-request-history",
    ),
    path(
        "access-requests/<uuid:request_id>/approve/",
        access_requests.AccessRequestApproveView.as_view(),
        name="access-request-approve",
    ),
    path(
        "access-requests/<uuid:request_id>/deny/",
        access_requests.AccessRequestDenyView.as_view(),
        name="access-request-deny",
    ),
    path(
        "access-requests/<uuid:request_id>/revoke/",
        access_requests.AccessRequestRevokeView.as_view(),
        name="access-request-revoke",
    ),
]
