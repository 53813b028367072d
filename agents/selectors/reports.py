"""The least-privilege report: per agent, who *could* reach user data, who *did*, and who can be tightened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from agents.models import AgentToken, WorkspaceAgent, live_token_q
from audit import actions
from audit.models import AuditEvent
from policies.scopes import MODE_NO_USER_DATA, USER_DATA_SCOPES, ordered

REPORT_COLUMNS: tuple[str, ...] = (
    "agent_id",
    "agent_name",
    "workspace_id",
    "workspace_name",
    "owner",
    "workspace_permission_mode",
    "agent_permission_mode",
    "effective_permission_mode",
    "allowed_scopes",
    "live_tokens",
    "last_used_at",
    "last_user_data_access_at",
    "last_gitsshkey_access_at",
    "last_external_auth_access_at",
    "recommendation",
)


def permissions_report_rows(*, unused_days: int = 30) -> list[dict[str, Any]]:
    """One row per agent: who *could* reach user data, who *did*, and who can be tightened safely.

    Three queries whatever the number of agents: agents with their workspace, owner and modes;
    token aggregates; user-data access aggregates from the audit log.
    """
    now = timezone.now()
    stale_before = now - timedelta(days=unused_days)
    agents = WorkspaceAgent.objects.select_related(
        "workspace__owner", "workspace__permission_mode", "permission_mode"
    ).order_by("workspace__owner__username", "workspace__name", "name")
    token_stats = {
        row["agent_id"]: row
        for row in AgentToken.objects.values("agent_id").annotate(
            live=Count("id", filter=live_token_q(now)),
            last_used=Max("last_used_at"),
        )
    }
    access_stats = {
        row["agent_id"]: row
        for row in AuditEvent.objects.filter(action=actions.AGENT_USER_DATA_ACCESSED, agent_id__isnull=False)
        .values("agent_id")
        .annotate(
            last=Max("time"),
            gitsshkey=Max("time", filter=Q(details__route="gitsshkey")),
            external_auth=Max("time", filter=Q(details__route__in=["external-auth", "gitauth"])),
        )
    }
    rows = []
    for agent in agents:
        effective = agent.effective_permission_mode
        tokens = token_stats.get(agent.id, {})
        access = access_stats.get(agent.id, {})
        last_access = access.get("last")
        allows_user_data = bool(USER_DATA_SCOPES & effective.scope_set())
        unused = last_access is None or last_access < stale_before
        rows.append(
            {
                "agent_id": agent.id,
                "agent_name": agent.name,
                "workspace_id": agent.workspace_id,
                "workspace_name": agent.workspace.name,
                "owner": agent.workspace.owner.username,
                "workspace_permission_mode": agent.workspace.permission_mode_id,
                "agent_permission_mode": agent.permission_mode_id,
                "effective_permission_mode": effective.name,
                "allowed_scopes": ordered(effective.scopes),
                "live_tokens": tokens.get("live", 0),
                "last_used_at": tokens.get("last_used"),
                "last_user_data_access_at": last_access,
                "last_gitsshkey_access_at": access.get("gitsshkey"),
                "last_external_auth_access_at": access.get("external_auth"),
                "recommendation": MODE_NO_USER_DATA if allows_user_data and unused else "",
            }
        )
    return rows
