"""Limits on child tokens (docs/concepts.md): live children per agent and chain depth (409 beyond), and the
rejection audit of a revoked tree replayed token by token, folded per agent (docs/audit.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue, agent_token_revoke
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

CHILD = "agents:agent-child-token"
MANIFEST = "agents:agent-manifest"


def _mint(client, **body):
    return client.post(reverse(CHILD), body, format="json")


def _issued_count() -> int:
    return AuditEvent.objects.filter(action="agent_token.issued").count()


def test_agent_cannot_hold_more_live_children_than_the_cap(agent, agent_client, settings, caplog):
    """Regression: one agent minted 2,000 children in ten seconds. At the default cap
    (CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS, 50) the next mint is a 409 naming the cap, and changes nothing."""
    cap = settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS
    for _ in range(cap):
        assert_status(_mint(agent_client, scopes=["agent:connect"]), 201)
    tokens_before, issued_before = AgentToken.objects.filter(agent=agent).count(), _issued_count()

    response = _mint(agent_client, scopes=["agent:connect"])

    assert_status(response, 409)
    body = response.json()
    assert body["code"] == "live_child_tokens" and body["limit"] == cap
    assert "CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS" in body["detail"]
    assert AgentToken.objects.filter(agent=agent).count() == tokens_before
    assert _issued_count() == issued_before
    assert any("live child tokens" in record.getMessage() for record in caplog.records)


def test_live_children_cap_follows_the_setting_and_counts_only_live_children(member, agent, agent_client, settings):
    """Revoked and expired children free their place; root tokens issued by the owner never count."""
    settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = 2
    first, second = (_mint(agent_client).data for _ in range(2))
    assert_status(_mint(agent_client), 409)

    agent_token_revoke(actor=member, token=AgentToken.objects.get(pk=first["id"]))
    third = _mint(agent_client)
    assert_status(third, 201)
    assert_status(_mint(agent_client), 409)

    past = timezone.now() - timedelta(hours=1)
    AgentToken.objects.filter(pk=second["id"]).update(created_at=past - timedelta(hours=1), expires_at=past)
    assert_status(_mint(agent_client), 201)
    assert_status(_mint(agent_client), 409)


def test_the_live_children_cap_is_per_agent(member, agent_client, settings):
    """Another agent's children do not use up this agent's place."""
    settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = 1
    assert_status(_mint(agent_client), 201)
    other_agent = AgentFactory(workspace__owner=member)
    other_client = client_for_agent_token(agent_token_issue(actor=member, agent=other_agent).plaintext)
    assert_status(_mint(other_client), 201)
    assert_status(_mint(agent_client), 409)


def test_chain_cannot_grow_past_max_depth(agent, agent_client, settings, caplog):
    """Regression: an agent grew a chain 1,000 children deep. A token at depth
    CODERAUTH_AGENT_TOKEN_MAX_DEPTH (default 4) may not mint: 409, nothing created, nothing audited."""
    max_depth = settings.CODERAUTH_AGENT_TOKEN_MAX_DEPTH
    client = agent_client
    for depth in range(1, max_depth + 1):  # down to the deepest allowed token
        response = _mint(client, scopes=["agent:connect"])
        assert_status(response, 201)
        assert AgentToken.objects.get(pk=response.data["id"]).depth == depth
        deepest = response.data["token"]
        client = client_for_agent_token(deepest)
    tokens_before, issued_before = AgentToken.objects.filter(agent=agent).count(), _issued_count()

    response = _mint(client, scopes=["agent:connect"])

    assert_status(response, 409)
    body = response.json()
    assert body["code"] == "token_depth" and body["limit"] == max_depth
    assert "CODERAUTH_AGENT_TOKEN_MAX_DEPTH" in body["detail"]
    assert AgentToken.objects.filter(agent=agent).count() == tokens_before
    assert _issued_count() == issued_before
    assert all(deepest not in record.getMessage() for record in caplog.records)


def test_max_depth_follows_the_setting(agent_client, settings):
    """With a depth of 1, the owner's token mints children but a child mints nothing."""
    settings.CODERAUTH_AGENT_TOKEN_MAX_DEPTH = 1
    child = _mint(agent_client)
    assert_status(child, 201)
    assert_status(_mint(client_for_agent_token(child.data["token"])), 409)
    settings.CODERAUTH_AGENT_TOKEN_MAX_DEPTH = 2
    assert_status(_mint(client_for_agent_token(child.data["token"])), 201)


def test_replayed_revoked_children_write_one_rejection_row_per_agent_per_period(member, agent, agent_client, settings):
    """Regression: a revoked tree of pre-minted children, replayed child by child, wrote one
    agent_token.rejected row per token a minute. Now one row per agent per period; the next row carries the
    count of the rejections folded into it."""
    children = [_mint(agent_client, scopes=["agent:connect"]).data["token"] for _ in range(20)]
    agent_token_revoke(actor=member, token=AgentToken.objects.get(agent=agent, parent=None))

    for plaintext in children:
        assert_status(client_for_agent_token(plaintext).get(reverse(MANIFEST)), 401)
    (first,) = AuditEvent.objects.filter(action="agent_token.rejected", agent_id=agent.pk)
    assert first.details["folded"] == 0 and first.details["reason"] == "revoked"

    settings.CODERAUTH_LAST_USED_RESOLUTION = timedelta(0)  # the period has passed
    assert_status(client_for_agent_token(children[0]).get(reverse(MANIFEST)), 401)
    rows = AuditEvent.objects.filter(action="agent_token.rejected", agent_id=agent.pk).order_by("id")
    assert [row.details["folded"] for row in rows] == [0, 19]
    assert not any(plaintext in str(row.details) for row in rows for plaintext in children)
