from django.urls import path

from agents.apis import agent, elevation, reports, rotation, users, workspaces

user_urlpatterns = [
    path("users/login", users.UserLoginApi.as_view(), name="user-login"),
    path("users/me", users.UserMeApi.as_view(), name="user-me"),
    path("users/me/password", users.UserPasswordChangeApi.as_view(), name="user-password"),
    path("users/me/tokens", users.UserTokenListCreateApi.as_view(), name="user-token-list"),
    path("users/me/tokens/<uuid:token_id>", users.UserTokenRevokeApi.as_view(), name="user-token-detail"),
    path("users/me/gitsshkey", users.UserGitSSHKeyApi.as_view(), name="user-gitsshkey"),
    path(
        "users/me/external-auth/<str:provider_id>", users.UserExternalAuthLinkApi.as_view(), name="user-external-auth"
    ),
    path("external-auth/providers", users.ExternalAuthProviderListCreateApi.as_view(), name="external-auth-providers"),
]

management_urlpatterns = [
    path("workspaces", workspaces.WorkspaceListCreateApi.as_view(), name="workspace-list"),
    path("workspaces/<uuid:workspace_id>", workspaces.WorkspaceDetailApi.as_view(), name="workspace-detail"),
    path("workspaces/<uuid:workspace_id>/agents", workspaces.AgentCreateApi.as_view(), name="agent-create"),
    path("workspaceagents/<uuid:agent_id>", workspaces.AgentDetailApi.as_view(), name="agent-detail"),
    path(
        "workspaceagents/<uuid:agent_id>/tokens", workspaces.AgentTokenListCreateApi.as_view(), name="agent-token-list"
    ),
    path(
        "workspaceagents/<uuid:agent_id>/tokens/<uuid:token_id>",
        workspaces.AgentTokenRevokeApi.as_view(),
        name="agent-token-detail",
    ),
]

# Coder's agent paths: "me" is not a UUID, so no other pattern matches them, whatever the order.
agent_urlpatterns = [
    path("workspaceagents/me/manifest", agent.AgentManifestApi.as_view(), name="agent-manifest"),
    path("workspaceagents/me/app-status", agent.AgentAppStatusApi.as_view(), name="agent-app-status"),
    path("workspaceagents/me/logs", agent.AgentLogsApi.as_view(), name="agent-logs"),
    path("workspaceagents/me/tokens", agent.AgentChildTokenApi.as_view(), name="agent-child-token"),
    path("workspaceagents/me/tokens/rotate", rotation.AgentTokenRotateApi.as_view(), name="agent-token-rotate"),
    path(
        "workspaceagents/me/tokens/<uuid:token_id>",
        agent.AgentChildTokenRevokeApi.as_view(),
        name="agent-child-token-detail",
    ),
    path("workspaceagents/me/gitsshkey", agent.AgentGitSSHKeyApi.as_view(), name="agent-gitsshkey"),
    path("workspaceagents/me/external-auth", agent.AgentExternalAuthApi.as_view(), name="agent-external-auth"),
    path("workspaceagents/me/gitauth", agent.AgentGitAuthApi.as_view(), name="agent-gitauth"),
    path(
        "workspaceagents/me/access-requests",
        elevation.AgentAccessRequestListCreateApi.as_view(),
        name="agent-access-request-list",
    ),
    path(
        "workspaceagents/me/access-requests/<uuid:request_id>",
        elevation.AgentAccessRequestDetailApi.as_view(),
        name="agent-access-request-detail",
    ),
]

elevation_urlpatterns = [
    path("access-requests", elevation.AccessRequestListApi.as_view(), name="access-request-list"),
    path("access-requests/<uuid:request_id>", elevation.AccessRequestDetailApi.as_view(), name="access-request-detail"),
    path(
        "access-requests/<uuid:request_id>/approve",
        elevation.AccessRequestApproveApi.as_view(),
        name="access-request-approve",
    ),
    path(
        "access-requests/<uuid:request_id>/deny", elevation.AccessRequestDenyApi.as_view(), name="access-request-deny"
    ),
    path(
        "access-requests/<uuid:request_id>/revoke",
        elevation.AccessRequestRevokeApi.as_view(),
        name="access-request-revoke",
    ),
]

report_urlpatterns = [
    path("reports/permissions", reports.PermissionsReportApi.as_view(), name="report-permissions"),
]

# The agent routes first: Django tries the patterns in order, and the agents' polling is most of the traffic. No
# path here matches two patterns, so the order changes which view answers nothing, only how soon it is found.
urlpatterns = agent_urlpatterns + user_urlpatterns + management_urlpatterns + elevation_urlpatterns + report_urlpatterns
