"""The two authentication flows (docs/concepts.md) and the agent hot path's query budget."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents.authentication import INVALID_TOKEN
from agents.models import AccessRequest, AgentToken, UserToken, Workspace
from agents.services.tokens import agent_token_issue, agent_token_revoke
from agents.services.users import user_token_issue
from audit.models import AuditEvent
from core import tokens
from tests.helpers.clients import client_for_agent_token, client_for_user
from tests.helpers.factories import AgentFactory, WorkspaceFactory
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

MANIFEST = "agents:agent-manifest"
ME = "agents:user-me"


def _unknown_token(kind: str) -> str:
    return tokens.generate(kind).plaintext


# --- Query budget ------------------------------------------------------------------------------------


def test_agent_request_costs_one_query_for_authentication_and_authorization(agent_token, django_assert_max_num_queries):
    """The hot path: one indexed lookup resolves token, agent, workspace, owner and effective mode."""
    client = client_for_agent_token(agent_token)
    with django_assert_max_num_queries(1):
        assert_status(client.get(reverse(MANIFEST)), 200)  # first use, so last_used_at is written too
    with django_assert_max_num_queries(1):
        assert_status(client.get(reverse(MANIFEST)), 200)


def test_agent_request_with_a_live_grant_still_costs_one_query(agent, member, django_assert_max_num_queries):
    """The live grant is read by the same statement (a lateral join), not by a second query per request."""
    plaintext = agent_token_issue(actor=member, agent=agent, name="full").plaintext
    Workspace.objects.filter(pk=agent.workspace_id).update(permission_mode="no-user-data")
    now = timezone.now()
    AccessRequest.objects.create(
        agent=agent,
        workspace=agent.workspace,
        scopes=["agent:gitsshkey"],
        reason="a rebase needs the git key",
        duration_seconds=600,
        state=AccessRequest.APPROVED,
        requested_at=now,
        decided_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    client = client_for_agent_token(plaintext)
    assert_status(client.get(reverse(MANIFEST)), 200)  # first use writes last_used_at
    with django_assert_max_num_queries(1):
        response = client.get(reverse(MANIFEST))
    assert_status(response, 200)
    assert "agent:gitsshkey" in response.json()["scopes"], "the grant was not read: the count proves nothing"


def _prepared_agent_lookups() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%FROM agents_agenttoken t%"]
        )
        return cursor.fetchone()[0]


def test_agent_lookup_is_prepared_once_per_connection(agent_token):
    """The six-table lookup is planned once per connection, not per request (its planning costs ~10x its run)."""
    client = client_for_agent_token(agent_token)
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert _prepared_agent_lookups() == 1
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert _prepared_agent_lookups() == 1, "the lookup was prepared again on the same connection"


def test_agent_lookup_still_answers_after_a_rollback_drops_prepared_statements(transactional_db, agent_token):
    """On ROLLBACK psycopg forgets its prepared statements and deallocates them: the next request prepares again."""
    client = client_for_agent_token(agent_token)
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert _prepared_agent_lookups() == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        AgentToken.objects.update(name="renamed")
        raise RuntimeError("roll the transaction back")
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert _prepared_agent_lookups() == 1


def test_last_used_at_is_written_at_most_once_per_resolution(agent, agent_token, settings):
    """No write per request: a second request within CODERAUTH_LAST_USED_RESOLUTION issues no UPDATE."""
    client = client_for_agent_token(agent_token)
    token = AgentToken.objects.get(agent=agent)
    assert token.last_used_at is None

    assert_status(client.get(reverse(MANIFEST)), 200)
    first = AgentToken.objects.get(pk=token.pk).last_used_at
    assert first is not None

    version = _row_version("agents_agenttoken", token.pk)
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert _row_version("agents_agenttoken", token.pk) == version, "the second request rewrote the token row"
    assert AgentToken.objects.get(pk=token.pk).last_used_at == first

    # Once the resolution has passed, the next request records the use again.
    AgentToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - settings.CODERAUTH_LAST_USED_RESOLUTION)
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert AgentToken.objects.get(pk=token.pk).last_used_at > first


def _row_version(table: str, pk) -> str:
    """The row's physical location: any UPDATE, even one that changes nothing, writes a new tuple."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ctid::text FROM {table} WHERE id = %s", [pk])  # noqa: S608 - constant table
        return cursor.fetchone()[0]


def test_user_token_last_used_at_is_not_written_on_every_request(member):
    issued = user_token_issue(user=member, name="cli")
    client = client_for_user(member)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert_status(client.get(reverse(ME)), 200)
    first = UserToken.objects.get(pk=issued.token.pk).last_used_at
    assert first is not None
    version = _row_version("agents_usertoken", issued.token.pk)
    assert_status(client.get(reverse(ME)), 200)
    assert _row_version("agents_usertoken", issued.token.pk) == version


# --- Malformed and bad checksum: rejected before the database ---------------------------------------


@pytest.mark.parametrize(
    "credential",
    [
        "cda_short",
        "cda_" + "0" * 36,  # right length, wrong checksum
        "cda_" + "!" * 36,  # outside base62
        "xyz_" + "0" * 36,  # unknown prefix
        "cda_" + "A" * 30 + "AAAAAA" + "extra",
    ],
)
def test_malformed_agent_token_is_rejected_before_any_query(credential, django_assert_num_queries):
    """Typos and forged strings never reach the database (docs/concepts.md)."""
    client = client_for_agent_token(credential)
    with django_assert_num_queries(0):
        response = client.get(reverse(MANIFEST))
    assert_status(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bad_checksum_is_rejected_before_any_query(agent_token, django_assert_num_queries):
    last = agent_token[-1]
    forged = agent_token[:-1] + ("0" if last != "0" else "1")
    with django_assert_num_queries(0):
        assert_status(client_for_agent_token(forged).get(reverse(MANIFEST)), 401)
    with django_assert_num_queries(0):
        assert_status(client_for_user_token(forged.replace("cda_", "cdu_", 1)).get(reverse(ME)), 401)


def client_for_user_token(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


# --- Same answer for unknown, wrong, expired and revoked ---------------------------------------------


def test_unknown_expired_and_revoked_agent_tokens_get_the_same_401(agent, member):
    """No enumeration: an attacker cannot tell a token that never existed from one that was revoked."""
    expired = agent_token_issue(actor=member, agent=agent)
    past = timezone.now() - timedelta(hours=1)
    AgentToken.objects.filter(pk=expired.token.pk).update(created_at=past - timedelta(hours=1), expires_at=past)
    revoked = agent_token_issue(actor=member, agent=agent)
    agent_token_revoke(actor=member, token=revoked.token)

    bodies = set()
    for credential in (_unknown_token("agent"), expired.plaintext, revoked.plaintext):
        response = client_for_agent_token(credential).get(reverse(MANIFEST))
        assert_status(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
        bodies.add(response.content)
    assert bodies == {b'{"detail":"' + INVALID_TOKEN.encode() + b'"}'}


def test_known_token_after_expiry_or_revocation_is_audited_but_unknown_is_not(agent, member):
    """A known dead token in use is a sign of a leak (agent_token.rejected); a token nobody issued has no principal."""
    revoked = agent_token_issue(actor=member, agent=agent)
    agent_token_revoke(actor=member, token=revoked.token)

    assert_status(client_for_agent_token(_unknown_token("agent")).get(reverse(MANIFEST)), 401)
    assert not AuditEvent.objects.filter(action="agent_token.rejected").exists()

    assert_status(client_for_agent_token(revoked.plaintext).get(reverse(MANIFEST)), 401)
    event = AuditEvent.objects.get(action="agent_token.rejected")
    assert event.agent_id == agent.pk
    assert event.details["reason"] == "revoked"
    assert revoked.plaintext not in str(event.details)


def test_replayed_revoked_token_is_audited_once_per_resolution_not_per_request(agent, member, settings, caplog):
    """Regression: a leaked, revoked token replayed in a loop wrote one audit row per request (an audit flood).
    Now one row per agent per CODERAUTH_LAST_USED_RESOLUTION, whose `folded` counts the attempts between rows;
    every attempt still reaches the log, hint only."""
    revoked = agent_token_issue(actor=member, agent=agent)
    agent_token_revoke(actor=member, token=revoked.token)
    client = client_for_agent_token(revoked.plaintext)

    for _ in range(5):
        assert_status(client.get(reverse(MANIFEST)), 401)
    (first,) = AuditEvent.objects.filter(action="agent_token.rejected")
    assert first.details["folded"] == 0
    rejected_logs = [r for r in caplog.records if "Rejected agent token" in r.getMessage()]
    assert len(rejected_logs) == 5
    assert all(revoked.plaintext not in r.getMessage() for r in caplog.records)

    settings.CODERAUTH_LAST_USED_RESOLUTION = timedelta(0)  # the period has passed
    assert_status(client.get(reverse(MANIFEST)), 401)
    first_again, second = AuditEvent.objects.filter(action="agent_token.rejected").order_by("id")
    assert second.details["folded"] == 4
    assert revoked.plaintext not in str(second.details)


def test_rejection_limit_is_per_agent_not_per_token(agent, member):
    """A second dead token of the same agent is folded into the agent's row; another agent gets its own row."""
    first = agent_token_issue(actor=member, agent=agent)
    second = agent_token_issue(actor=member, agent=agent)
    other_agent = AgentFactory(workspace=WorkspaceFactory(owner=member))
    third = agent_token_issue(actor=member, agent=other_agent)
    for issued in (first, second, third):
        agent_token_revoke(actor=member, token=issued.token)
        assert_status(client_for_agent_token(issued.plaintext).get(reverse(MANIFEST)), 401)
    events = AuditEvent.objects.filter(action="agent_token.rejected")
    assert {(e.agent_id, e.details["token_id"]) for e in events} == {
        (agent.pk, str(first.token.pk)),
        (other_agent.pk, str(third.token.pk)),
    }


def test_agent_lookup_without_prepared_statements(agent_token, settings, django_assert_max_num_queries):
    """CODERAUTH_PREPARED_AGENT_LOOKUP=false (for PgBouncer < 1.21 in transaction mode): same answer, one query,
    nothing prepared."""
    settings.CODERAUTH_PREPARED_AGENT_LOOKUP = False
    client = client_for_agent_token(agent_token)
    with django_assert_max_num_queries(1):
        assert_status(client.get(reverse(MANIFEST)), 200)
    assert _prepared_agent_lookups() == 0


def test_unknown_and_revoked_user_tokens_get_the_same_401(member):
    revoked = user_token_issue(user=member, name="old")
    UserToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())
    bodies = set()
    for credential in (_unknown_token("user"), revoked.plaintext):
        response = client_for_user_token(credential).get(reverse(ME))
        assert_status(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
        bodies.add(response.content)
    assert len(bodies) == 1


# --- The flows refuse each other's tokens ------------------------------------------------------------


def test_agent_token_is_refused_on_user_routes(agent_token):
    """An agent token must never act as its owner (the original Coder flaw)."""
    client = client_for_agent_token(agent_token)
    for url in (reverse(ME), reverse("agents:workspace-list"), reverse("agents:user-gitsshkey")):
        response = client.get(url)
        assert_status(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_user_token_is_refused_on_agent_routes(member_client):
    for name in (MANIFEST, "agents:agent-gitsshkey"):
        response = member_client.get(reverse(name))
        assert_status(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_session_cookie_is_refused_on_agent_routes(member):
    client = APIClient()
    client.force_login(member)
    assert_status(client.get(reverse("agents:agent-gitsshkey")), 401)
    assert_status(client.get(reverse(ME)), 200)


def test_session_cookie_needs_csrf_on_unsafe_methods(member):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(member)
    response = client.post(reverse("agents:workspace-list"), {"name": "csrf"}, format="json")
    assert_status(response, 403)
    assert response.json()["detail"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token cda_x"])
def test_other_authorization_schemes_are_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(reverse(MANIFEST))
    assert_status(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_inactive_owner_disables_agent_tokens(agent, agent_token, member):
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert_status(client_for_agent_token(agent_token).get(reverse(MANIFEST)), 401)


def test_deleted_agent_takes_its_tokens_with_it(agent, agent_token):
    agent.delete()
    assert_status(client_for_agent_token(agent_token).get(reverse(MANIFEST)), 401)


def test_coder_session_token_header_works_for_users_too(member):
    issued = user_token_issue(user=member, name="cli")
    client = APIClient()
    client.credentials(HTTP_CODER_SESSION_TOKEN=issued.plaintext)
    assert_status(client.get(reverse(ME)), 200)


def test_agent_report_costs_the_auth_query_plus_its_quota_and_insert(agent_token, django_assert_max_num_queries):
    """No hidden per-request queries (sessions, users, groups) on the agent routes: the lookup, then the quota
    upsert and the insert in one transaction (its savepoint pair here, BEGIN and COMMIT in production)."""
    client = client_for_agent_token(agent_token)
    body = {"app_slug": "claude", "state": "working", "message": "x"}
    with django_assert_max_num_queries(5):
        assert_status(client.patch(reverse("agents:agent-app-status"), body, format="json"), 200)
