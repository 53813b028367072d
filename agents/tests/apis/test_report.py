"""GET /api/v2/reports/permissions: who could reach user data, who did, and who can be tightened safely."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.models import AccessRequest, AgentToken, WorkspaceAgent
from agents.selectors import reports as selectors
from agents.services.tokens import agent_token_issue, agent_token_revoke
from tests.helpers.audit import user_data_read
from tests.helpers.factories import AgentFactory, CustomModeFactory, UserFactory, WorkspaceFactory, mode
from tests.helpers.responses import all_results, assert_status, check_status

pytestmark = pytest.mark.django_db

DESIGN_KEYS = [
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
    "recommendation",
]


def report(client, **params) -> dict[str, dict]:
    return {row["agent_name"]: row for row in all_results(client, reverse("agents:report-permissions"), params)}


class TestRecommendation:
    def test_recent_user_data_read_keeps_the_mode(self, auditor_client, agent):
        user_data_read(agent, days_ago=2)
        assert report(auditor_client)[agent.name]["recommendation"] == ""

    def test_stale_user_data_read_recommends_no_user_data(self, auditor_client, agent):
        """The least-privilege signal: a mode that allows user data nobody has used in N days."""
        user_data_read(agent, days_ago=45)
        assert report(auditor_client)[agent.name]["recommendation"] == "no-user-data"

    def test_never_read_recommends_no_user_data(self, auditor_client, agent):
        assert report(auditor_client)[agent.name]["recommendation"] == "no-user-data"

    def test_already_no_user_data_needs_nothing(self, auditor_client, member):
        by_workspace = AgentFactory(workspace=WorkspaceFactory(owner=member, permission_mode=mode("no-user-data")))
        by_override = AgentFactory(permission_mode=mode("no-user-data"))
        rows = report(auditor_client)
        assert rows[by_workspace.name]["recommendation"] == ""
        assert rows[by_override.name]["recommendation"] == ""
        assert rows[by_override.name]["workspace_permission_mode"] == "default"
        assert rows[by_override.name]["agent_permission_mode"] == "no-user-data"
        assert rows[by_override.name]["effective_permission_mode"] == "no-user-data"
        assert rows[by_override.name]["allowed_scopes"] == ["agent:connect", "agent:report"]

    def test_custom_mode_with_one_user_data_scope_counts(self, auditor_client):
        git_only = AgentFactory(permission_mode=CustomModeFactory())
        assert report(auditor_client)[git_only.name]["recommendation"] == "no-user-data"

    def test_unused_days_is_the_window(self, auditor_client, agent):
        user_data_read(agent, days_ago=10)
        assert report(auditor_client, unused_days=30)[agent.name]["recommendation"] == ""
        assert report(auditor_client, unused_days=5)[agent.name]["recommendation"] == "no-user-data"

    def test_other_agents_reads_do_not_count(self, auditor_client, agent):
        other = AgentFactory(workspace=agent.workspace)
        user_data_read(other, days_ago=1)
        rows = report(auditor_client)
        assert rows[agent.name]["recommendation"] == "no-user-data"
        assert rows[other.name]["recommendation"] == ""


def test_rows_carry_the_design_columns_and_access_times(auditor_client, agent, member):
    ssh = user_data_read(agent, days_ago=3, route="gitsshkey")
    oauth = user_data_read(agent, days_ago=1, route="gitauth")
    older_oauth = user_data_read(agent, days_ago=2, route="external-auth")
    row = report(auditor_client)[agent.name]
    assert list(row)[: len(DESIGN_KEYS) - 1] == DESIGN_KEYS[:-1]
    assert row["recommendation"] == ""
    assert row["agent_id"] == str(agent.id)
    assert row["workspace_id"] == str(agent.workspace_id)
    assert row["owner"] == member.username
    assert row["effective_permission_mode"] == "default"
    assert row["agent_permission_mode"] is None
    assert row["allowed_scopes"] == ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"]
    assert row["last_user_data_access_at"] == oauth.time.isoformat().replace("+00:00", "Z")
    assert row["last_gitsshkey_access_at"] == ssh.time.isoformat().replace("+00:00", "Z")
    assert row["last_external_auth_access_at"] == oauth.time.isoformat().replace("+00:00", "Z")
    assert older_oauth.time < oauth.time


def test_live_tokens_and_last_use(auditor_client, agent, member):
    live = agent_token_issue(actor=member, agent=agent, name="live").token
    revoked = agent_token_issue(actor=member, agent=agent, name="revoked").token
    expired = agent_token_issue(actor=member, agent=agent, name="expired").token
    agent_token_revoke(actor=member, token=revoked)
    past = timezone.now() - timedelta(days=2)
    AgentToken.objects.filter(pk=expired.pk).update(created_at=past - timedelta(days=1), expires_at=past)
    used = timezone.now() - timedelta(hours=3)
    AgentToken.objects.filter(pk=live.pk).update(last_used_at=used - timedelta(hours=1))
    AgentToken.objects.filter(pk=revoked.pk).update(last_used_at=used)
    row = report(auditor_client)[agent.name]
    assert row["live_tokens"] == 1
    assert row["last_used_at"] == used.isoformat().replace("+00:00", "Z")


def test_csv_report_with_formula_guard(auditor_client):
    owner = UserFactory(username="=cmd|'/c calc'!A0")
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner))
    response = auditor_client.get(reverse("agents:report-permissions"), {"format": "csv"})
    body = check_status(response, 200)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="coderauth-permissions_')
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    (row,) = [row for row in rows if row["agent_name"] == agent.name]
    assert row["owner"] == "'" + owner.username
    assert row["allowed_scopes"] == "agent:connect agent:report agent:gitsshkey agent:external-auth"
    assert row["agent_permission_mode"] == ""
    assert row["recommendation"] == "no-user-data"
    assert list(row)[: len(DESIGN_KEYS) - 1] == DESIGN_KEYS[:-1]


def approved_request(agent, *, days_ago: float, scopes: list[str], state: str = AccessRequest.APPROVED):
    """An access request approved `days_ago` days ago, as the services leave it (or later revoked or denied)."""
    decided = timezone.now() - timedelta(days=days_ago)
    return AccessRequest.objects.create(
        agent=agent,
        workspace=agent.workspace,
        scopes=scopes,
        reason="needs it",
        duration_seconds=600,
        state=state,
        requested_at=decided - timedelta(minutes=1),
        decided_at=decided,
        expires_at=None if state == AccessRequest.DENIED else decided + timedelta(minutes=10),
        revoked_at=decided + timedelta(minutes=5) if state == AccessRequest.REVOKED else None,
    )


class TestElevations:
    """Which agents keep needing more than their mode: the case for a custom mode."""

    def test_approvals_in_the_window_are_counted_with_their_scopes(self, auditor_client, agent):
        approved_request(agent, days_ago=1, scopes=["agent:gitsshkey"])
        approved_request(agent, days_ago=2, scopes=["agent:external-auth", "agent:gitsshkey"], state="revoked")
        approved_request(agent, days_ago=3, scopes=["agent:report"], state="denied")
        approved_request(agent, days_ago=40, scopes=["agent:report"])
        row = report(auditor_client, unused_days=30)[agent.name]
        assert row["elevations"] == 2
        assert row["elevated_scopes"] == ["agent:gitsshkey", "agent:external-auth"]
        assert report(auditor_client, unused_days=60)[agent.name]["elevations"] == 3

    def test_an_agent_without_approvals_has_none(self, auditor_client, agent):
        other = AgentFactory(workspace=agent.workspace)
        approved_request(other, days_ago=1, scopes=["agent:gitsshkey"])
        rows = report(auditor_client)
        assert (rows[agent.name]["elevations"], rows[agent.name]["elevated_scopes"]) == (0, [])
        assert rows[other.name]["elevations"] == 1

    def test_a_page_counts_its_own_agents(self, auditor_client, member):
        agents = [AgentFactory(workspace=WorkspaceFactory(owner=member)) for _ in range(3)]
        for number, agent in enumerate(agents):
            for _ in range(number):
                approved_request(agent, days_ago=1, scopes=["agent:gitsshkey"])
        rows = report(auditor_client, page_size=1)
        assert [rows[agent.name]["elevations"] for agent in agents] == [0, 1, 2]

    def test_the_csv_carries_them(self, auditor_client, agent):
        approved_request(agent, days_ago=1, scopes=["agent:external-auth", "agent:gitsshkey"])
        body = check_status(auditor_client.get(reverse("agents:report-permissions"), {"format": "csv"}), 200)
        (row,) = [row for row in csv.DictReader(io.StringIO(body.decode())) if row["agent_name"] == agent.name]
        assert (row["elevations"], row["elevated_scopes"]) == ("1", "agent:gitsshkey agent:external-auth")


@pytest.mark.parametrize(("params", "field"), [({"format": "xml"}, "format"), ({"unused_days": "0"}, "unused_days")])
def test_bad_report_input_is_a_json_400(auditor_client, params, field):
    response = auditor_client.get(reverse("agents:report-permissions"), params)
    assert_status(response, 400)
    assert field in response.json()


def _agents_with_history(count: int, owner) -> None:
    for number in range(count):
        agent = AgentFactory(workspace=WorkspaceFactory(owner=owner), permission_mode=mode("default"))
        agent_token_issue(actor=owner, agent=agent, name=f"t{number}")
        user_data_read(agent, days_ago=number)
        approved_request(agent, days_ago=number % 5, scopes=["agent:gitsshkey"])


@pytest.mark.parametrize("count", [3, 30])
def test_report_query_count_does_not_grow_with_agents(count, member, django_assert_max_num_queries):
    """The report is one pass over agents, tokens, audit reads and elevations: no query per agent."""
    _agents_with_history(count, member)
    with django_assert_max_num_queries(3):
        rows = selectors.permissions_report_rows()
    assert len(rows) == count


def test_the_whole_report_streams_page_by_page_with_three_queries_each(member, settings, django_assert_num_queries):
    """Flat memory at any size: the CSV is built from keyset pages of agents, three queries each, in report order
    across page boundaries, each page aggregating its own agents only."""
    settings.CODERAUTH_MAX_PAGE_SIZE = 2
    _agents_with_history(5, member)
    stream = selectors.permissions_report_stream()
    with django_assert_num_queries(3):
        first_page = [next(stream), next(stream)]
    with django_assert_num_queries(6):
        rest = list(stream)
    rows = first_page + rest
    expected = WorkspaceAgent.objects.order_by("workspace__owner__username", "workspace__name", "name")
    assert [row["agent_id"] for row in rows] == list(expected.values_list("id", flat=True))
    assert all(row["elevations"] == 1 and row["live_tokens"] == 1 for row in rows)
    assert len({row["agent_id"] for row in rows}) == 5


def test_report_api_query_count_is_the_same_for_3_and_30_agents(auditor_client, member):
    # The first request also stamps the token's last_used_at; count the steady state.
    assert_status(auditor_client.get(reverse("agents:report-permissions")), 200)
    counts = []
    for count in (3, 27):
        _agents_with_history(count, member)
        with CaptureQueriesContext(connection) as queries:
            check_status(auditor_client.get(reverse("agents:report-permissions"), {"format": "csv"}), 200)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_latest_reads_are_backward_probes_of_the_partial_indexes(agent):
    """A regression guard for the report at scale: each latest-read column must match its partial index's
    condition exactly (audit/models.py), or PostgreSQL falls back to reading every audit row of the page's agents.
    Scans the planner could prefer on a tiny table are switched off, so the plan shows whether the index applies."""
    user_data_read(agent, days_ago=1, route="gitsshkey")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    plan = selectors.permissions_report_agents()[:10].explain()
    for index in ("audit_user_data_reads", "audit_git_ssh_key_reads", "audit_external_auth_reads"):
        assert f"Backward using {index} " in plan, plan
