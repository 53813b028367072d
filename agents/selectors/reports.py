"""The least-privilege report: per agent, who *could* reach user data, who *did*, and who can be tightened."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from agents.models import AccessRequest, AgentToken, WorkspaceAgent, live_token_q
from audit.models import EXTERNAL_AUTH_READS, GIT_SSH_KEY_READS, USER_DATA_READS, AuditEvent
from core.pagination import Page, keyset_page
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
    "elevations",
    "elevated_scopes",
    "recommendation",
)


# By owner, workspace, agent: unique, since names are unique per owner and per workspace.
REPORT_ORDERING = ("workspace__owner__username", "workspace__name", "name")
# Plain values, not models: at 20,000 agents, building four models per agent cost more than every query together.
_AGENT_COLUMNS = (
    "id",
    "name",
    "workspace_id",
    "workspace__name",
    "workspace__owner__username",
    "workspace__permission_mode_id",
    "workspace__permission_mode__scopes",
    "permission_mode_id",
    "permission_mode__scopes",
)


def permissions_report_agents() -> QuerySet:
    """The report's agents in report order, as plain rows, each with the times of its latest user-data reads.

    Each latest read is one backward probe of its partial index (audit/models.py), never a read of the agent's
    audit rows; PostgreSQL runs the probes after the sort and limit, so only for the page's agents.
    """
    return (
        WorkspaceAgent.objects.values(*_AGENT_COLUMNS)
        .annotate(
            last_user_data_read=_latest_read(USER_DATA_READS),
            last_git_ssh_key_read=_latest_read(GIT_SSH_KEY_READS),
            last_external_auth_read=_latest_read(EXTERNAL_AUTH_READS),
        )
        .order_by(*REPORT_ORDERING)
    )


def _latest_read(reads: Q) -> Subquery:
    """The time of the outer agent's latest audit row matching `reads`, which must be one of the indexed conditions."""
    return Subquery(AuditEvent.objects.filter(reads, agent_id=OuterRef("id")).order_by("-time").values("time")[:1])


def permissions_report_stream(*, unused_days: int = 30) -> Iterator[dict[str, Any]]:
    """Every agent's row, in report order, one keyset page of agents at a time: memory stays flat at any size.

    Three queries a page (see _report_rows), pages of the largest API page size.
    """
    cursor = None
    while True:
        page = keyset_page(
            permissions_report_agents(),
            ordering=REPORT_ORDERING,
            cursor=cursor,
            page_size=settings.CODERAUTH_MAX_PAGE_SIZE,
        )
        yield from _report_rows(page.items, unused_days=unused_days)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def permissions_report_rows(*, unused_days: int = 30) -> list[dict[str, Any]]:
    """Every agent's row as a list (the web page): see permissions_report_stream."""
    return list(permissions_report_stream(unused_days=unused_days))


def permissions_report_page(
    *, unused_days: int = 30, cursor: str | None, page_size: int | None = None
) -> Page[dict[str, Any]]:
    """One page of the report's rows, in the same order as permissions_report_stream."""
    page = keyset_page(permissions_report_agents(), ordering=REPORT_ORDERING, cursor=cursor, page_size=page_size)
    return Page(items=_report_rows(page.items, unused_days=unused_days), next_cursor=page.next_cursor)


def _report_rows(agents: list[dict[str, Any]], *, unused_days: int) -> list[dict[str, Any]]:
    """One row per agent: who *could* reach user data, who *did*, and who can be tightened safely.

    Three queries whatever the number of agents: the page (the agents with their workspace, owner, modes and
    latest user-data reads), then token aggregates and approved elevations, each for the page's agents only.
    """
    if not agents:
        return []
    now = timezone.now()
    stale_before = now - timedelta(days=unused_days)
    agent_ids = [agent["id"] for agent in agents]
    token_stats = {
        row["agent_id"]: row
        for row in AgentToken.objects.filter(agent_id__in=agent_ids)
        .values("agent_id")
        .annotate(live=Count("id", filter=live_token_q(now)), last_used=Max("last_used_at"))
    }
    elevation_stats = _elevations_since(stale_before, agent_ids=agent_ids)
    rows = []
    for agent in agents:
        agent_id = agent["id"]
        elevations, elevated_scopes = elevation_stats.get(agent_id, (0, []))
        # The effective mode: the agent's override, else its workspace's (policies/principals.py in SQL form).
        if agent["permission_mode_id"]:
            effective, scopes = agent["permission_mode_id"], agent["permission_mode__scopes"]
        else:
            effective, scopes = agent["workspace__permission_mode_id"], agent["workspace__permission_mode__scopes"]
        tokens = token_stats.get(agent_id, {})
        last_access = agent["last_user_data_read"]
        allows_user_data = bool(USER_DATA_SCOPES.intersection(scopes))
        unused = last_access is None or last_access < stale_before
        rows.append(
            {
                "agent_id": agent_id,
                "agent_name": agent["name"],
                "workspace_id": agent["workspace_id"],
                "workspace_name": agent["workspace__name"],
                "owner": agent["workspace__owner__username"],
                "workspace_permission_mode": agent["workspace__permission_mode_id"],
                "agent_permission_mode": agent["permission_mode_id"],
                "effective_permission_mode": effective,
                "allowed_scopes": ordered(scopes),
                "live_tokens": tokens.get("live", 0),
                "last_used_at": tokens.get("last_used"),
                "last_user_data_access_at": last_access,
                "last_gitsshkey_access_at": agent["last_git_ssh_key_read"],
                "last_external_auth_access_at": agent["last_external_auth_read"],
                "elevations": elevations,
                "elevated_scopes": ordered(elevated_scopes),
                "recommendation": MODE_NO_USER_DATA if allows_user_data and unused else "",
            }
        )
    return rows


# Approved in the window whatever happened since (lapsed, revoked): each approval is a person's judgement that
# the agent needed more than its mode, the signal for a custom mode. Aggregated in SQL, so memory stays flat.
_ELEVATIONS_SQL = """
SELECT r.agent_id, count(DISTINCT r.id), array_agg(DISTINCT granted.scope)
FROM agents_accessrequest r CROSS JOIN LATERAL unnest(r.scopes) AS granted(scope)
WHERE r.state IN (%(approved)s, %(revoked)s) AND r.decided_at >= %(since)s AND r.agent_id = ANY(%(agent_ids)s)
GROUP BY r.agent_id
"""


def _elevations_since(since, *, agent_ids: list) -> dict[Any, tuple[int, list[str]]]:
    """Per agent of `agent_ids`: how many access requests were approved since `since`, and their scopes' union."""
    with connection.cursor() as cursor:
        cursor.execute(
            _ELEVATIONS_SQL,
            {
                # A revoked request was approved first: only an approved, live grant can be revoked.
                "approved": AccessRequest.APPROVED,
                "revoked": AccessRequest.REVOKED,
                "since": since,
                "agent_ids": agent_ids,
            },
        )
        return {agent_id: (count, scopes) for agent_id, count, scopes in cursor.fetchall()}
