"""Reads the pages need beyond agents.selectors.workspaces: dashboard counts, list filters, choice lists.

Every read starts from agents.selectors.workspaces.workspace_list_for, so a member never sees another
member's workspace, agent, token or audit event here either.
"""

from __future__ import annotations

from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.models import AgentToken, AppStatus, Workspace, WorkspaceAgent, live_token_q
from agents.selectors.workspaces import workspace_list_for
from audit import actions
from audit.models import AuditEvent
from core.roles import can_read_everything
from policies import rules
from policies.models import PermissionMode
from policies.scopes import USER_DATA_SCOPES


def agent_list_for(*, user) -> QuerySet[WorkspaceAgent]:
    queryset = WorkspaceAgent.objects.select_related(
        "workspace__owner", "workspace__permission_mode", "permission_mode"
    )
    if can_read_everything(user):
        return queryset
    return queryset.filter(workspace__owner=user)


def workspace_search(*, user, query: str = "", mode: str = "") -> QuerySet[Workspace]:
    """Workspaces matching a name/owner search and a mode, in a stable order for pagination."""
    queryset = workspace_list_for(user=user)
    if query:
        queryset = queryset.filter(Q(name__icontains=query) | Q(owner__username__icontains=query))
    if mode:
        queryset = queryset.filter(permission_mode_id=mode)
    return queryset.order_by("name", "owner__username", "id")


def mode_counts(*, user) -> dict[str, list[dict]]:
    """Workspaces by mode and agents by effective mode (override, else the workspace's)."""
    workspaces = (
        workspace_list_for(user=user)
        .order_by()
        .values(mode=F("permission_mode_id"))
        .annotate(count=Count("id"))
        .order_by("mode")
    )
    agents = (
        agent_list_for(user=user)
        .order_by()
        .annotate(effective=Coalesce("permission_mode_id", "workspace__permission_mode_id"))
        .values(mode=F("effective"))
        .annotate(count=Count("id"))
        .order_by("mode")
    )
    return {"workspaces": list(workspaces), "agents": list(agents)}


def user_data_mode_names() -> list[str]:
    return [mode.name for mode in PermissionMode.objects.all() if mode.scope_set() & USER_DATA_SCOPES]


def agents_allowing_user_data(*, user, limit: int = 20) -> tuple[list[WorkspaceAgent], int]:
    names = user_data_mode_names()
    queryset = agent_list_for(user=user).filter(
        Q(permission_mode_id__in=names) | Q(permission_mode__isnull=True, workspace__permission_mode_id__in=names)
    )
    return list(queryset.order_by("workspace__name", "name")[:limit]), queryset.count()


def _visible_events(*, user) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if can_read_everything(user):
        return events
    return events.filter(workspace_id__in=workspace_list_for(user=user).values("id"))


def denied_requests_recent(*, user, limit: int = 10) -> list[AuditEvent]:
    return list(_visible_events(user=user).filter(action=actions.AGENT_ACCESS_DENIED).order_by("-id")[:limit])


def workspace_names(*, user, ids) -> dict:
    """Names of the visible workspaces among `ids` (audit rows carry ids only), in one query."""
    ids = {workspace_id for workspace_id in ids if workspace_id}
    if not ids:
        return {}
    return dict(workspace_list_for(user=user).filter(pk__in=ids).values_list("id", "name"))


def agent_labels(*, user, ids) -> dict:
    """ "agent in workspace" for the visible agents among `ids` (audit rows carry ids only), in one query.
    An agent deleted since keeps showing as its id."""
    ids = {agent_id for agent_id in ids if agent_id}
    if not ids:
        return {}
    rows = agent_list_for(user=user).filter(pk__in=ids).values_list("id", "name", "workspace__name")
    return {agent_id: f"{name} in {workspace}" for agent_id, name, workspace in rows}


def workspace_events_recent(*, workspace: Workspace, limit: int = 20) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(workspace_id=workspace.id).order_by("-id")[:limit])


def latest_app_status_per_agent(*, user, limit: int = 20) -> list[AppStatus]:
    """The newest app-status of each visible agent (PostgreSQL DISTINCT ON), newest first."""
    agent_ids = agent_list_for(user=user).values("id")
    latest = (
        AppStatus.objects.filter(agent_id__in=agent_ids)
        .order_by("agent_id", "-created_at", "-id")
        .distinct("agent_id")
        .values("id")
    )
    return list(
        AppStatus.objects.filter(id__in=latest)
        .select_related("agent__workspace")
        .order_by("-created_at", "-id")[:limit]
    )


# Per agent on the workspace page. An MCP server mints a 15-minute token about every 10 minutes, so a busy
# agent gathers ~144 tokens a day; the page shows the newest few and says how many more there are.
TOKENS_SHOWN_PER_AGENT = 20
STATUSES_SHOWN_PER_AGENT = 5


def workspace_agents_with_tokens(
    *,
    workspace: Workspace,
    include_inactive_tokens: bool = False,
    token_limit: int = TOKENS_SHOWN_PER_AGENT,
    status_limit: int = STATUSES_SHOWN_PER_AGENT,
) -> list[WorkspaceAgent]:
    """The workspace's agents in three queries, whatever the number of agents, tokens or statuses.

    Each agent carries `shown_tokens` (its newest `token_limit` live tokens, or tokens of any state with
    `include_inactive_tokens`), `token_count` and `live_token_count`, and `recent_statuses` (its newest
    `status_limit` app statuses). Sliced prefetches are limited per agent in SQL with ROW_NUMBER().
    """
    now = timezone.now()
    tokens = AgentToken.objects.order_by("-created_at", "-id")
    if not include_inactive_tokens:
        tokens = tokens.filter(live_token_q(now))
    return list(
        WorkspaceAgent.objects.filter(workspace=workspace)
        .select_related("workspace__permission_mode", "permission_mode")
        .annotate(
            token_count=Count("tokens"),
            live_token_count=Count("tokens", filter=live_token_q(now, prefix="tokens__")),
        )
        .prefetch_related(
            Prefetch("tokens", queryset=tokens[:token_limit], to_attr="shown_tokens"),
            Prefetch(
                "app_statuses",
                queryset=AppStatus.objects.order_by("-created_at", "-id")[:status_limit],
                to_attr="recent_statuses",
            ),
        )
        .order_by("name")
    )


def workspace_mode_choices(*, user, workspace: Workspace, modes: list[PermissionMode]) -> list[PermissionMode]:
    return rules.mode_choices(user, current=workspace.permission_mode, modes=modes)


def agent_mode_choices(
    *, user, agent: WorkspaceAgent, modes: list[PermissionMode]
) -> tuple[bool, list[PermissionMode]]:
    """(may choose "inherit", the modes the user may set as the agent's override)."""
    current = agent.effective_permission_mode
    may_inherit = rules.may_set_mode(user, current=current, new=agent.workspace.permission_mode)
    return may_inherit, rules.mode_choices(user, current=current, modes=modes)
