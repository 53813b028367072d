"""Reads of workspaces, agents and tokens, restricted to what the principal may see: another member's objects are
not found (ObjectNotFound, a 404 in the API and the pages)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from agents.models import AgentToken, AppStatus, ExternalAuthProvider, UserToken, Workspace, WorkspaceAgent
from core.exceptions import ObjectNotFound
from core.pagination import Page, keyset_page
from core.roles import can_read_everything
from policies import rules


def workspace_list_for(*, user) -> QuerySet[Workspace]:
    queryset = Workspace.objects.select_related("owner", "permission_mode").prefetch_related(
        Prefetch("agents", queryset=WorkspaceAgent.objects.select_related("permission_mode").order_by("name"))
    )
    if can_read_everything(user):
        return queryset
    return queryset.filter(owner=user)


# The model's order, under the unique constraint (owner, name): its index serves every page.
WORKSPACE_ORDERING = ("owner_id", "name")
# Newest first; the id breaks ties between tokens created in the same microsecond.
TOKEN_ORDERING = ("-created_at", "-id")


def workspace_page_for(*, user, cursor: str | None, page_size: int | None = None) -> Page[Workspace]:
    """One page of the workspaces `user` may see (workspace_list_for), their agents prefetched for that page only."""
    return keyset_page(workspace_list_for(user=user), ordering=WORKSPACE_ORDERING, cursor=cursor, page_size=page_size)


def workspace_get_for(*, user, workspace_id) -> Workspace:
    workspace = workspace_list_for(user=user).filter(pk=workspace_id).first()
    if workspace is None:
        raise ObjectNotFound("No such workspace.")
    return workspace


def agent_get_for(*, user, agent_id) -> WorkspaceAgent:
    queryset = WorkspaceAgent.objects.select_related(
        "workspace__owner", "workspace__permission_mode", "permission_mode"
    )
    if not can_read_everything(user):
        queryset = queryset.filter(workspace__owner=user)
    agent = queryset.filter(pk=agent_id).first()
    if agent is None:
        raise ObjectNotFound("No such agent.")
    return agent


@dataclass(frozen=True)
class LooserOverride:
    """An agent whose own mode allows scopes its workspace's mode does not (`extra_scopes`)."""

    agent: WorkspaceAgent
    extra_scopes: list[str]


def agent_looser_override_list(*, workspaces: Iterable[Workspace]) -> list[LooserOverride]:
    """The agents of `workspaces` whose override allows scopes their workspace's mode, as stored now, does not
    (policies.rules.added_scopes): a change of the workspace's mode leaves them looser. By workspace, then name."""
    agents = (
        WorkspaceAgent.objects.filter(workspace__in=[workspace.pk for workspace in workspaces])
        .filter(permission_mode__isnull=False)
        .select_related("permission_mode", "workspace__permission_mode")
        .order_by("workspace__name", "name", "id")
    )
    found = []
    for agent in agents:
        extra = rules.added_scopes(agent.workspace.permission_mode, agent.permission_mode)
        if extra:
            found.append(LooserOverride(agent=agent, extra_scopes=extra))
    return found


def agent_token_list(*, agent: WorkspaceAgent) -> QuerySet[AgentToken]:
    return AgentToken.objects.filter(agent=agent).order_by(*TOKEN_ORDERING)


def agent_token_page(*, agent: WorkspaceAgent, cursor: str | None, page_size: int | None = None) -> Page[AgentToken]:
    return keyset_page(agent_token_list(agent=agent), ordering=TOKEN_ORDERING, cursor=cursor, page_size=page_size)


def agent_token_get(*, agent: WorkspaceAgent, token_id) -> AgentToken:
    token = AgentToken.objects.filter(agent=agent, pk=token_id).first()
    if token is None:
        raise ObjectNotFound("No such token.")
    return token


def app_status_list(*, agent: WorkspaceAgent, limit: int = 20) -> list[AppStatus]:
    return list(AppStatus.objects.filter(agent=agent).order_by("-created_at", "-id")[:limit])


def user_token_list(*, user) -> QuerySet[UserToken]:
    return UserToken.objects.filter(user=user, kind=UserToken.KIND_API).order_by(*TOKEN_ORDERING)


def user_token_page(*, user, cursor: str | None, page_size: int | None = None) -> Page[UserToken]:
    """One page of the user's own API tokens (not login sessions), newest first."""
    return keyset_page(user_token_list(user=user), ordering=TOKEN_ORDERING, cursor=cursor, page_size=page_size)


def external_auth_provider_page(*, cursor: str | None, page_size: int | None = None) -> Page[ExternalAuthProvider]:
    return keyset_page(ExternalAuthProvider.objects.all(), ordering=("id",), cursor=cursor, page_size=page_size)


def user_token_get(*, user, token_id) -> UserToken:
    token = UserToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise ObjectNotFound("No such token.")
    return token
