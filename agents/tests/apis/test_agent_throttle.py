"""Agent routes have a request budget per token (CODERAUTH_AGENT_THROTTLE_RATE), kept without a query."""

from __future__ import annotations

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import mode
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

MANIFEST = "agents:agent-manifest"


def test_an_agent_token_over_its_budget_gets_429_with_retry_after(agent_token, settings):
    """Regression: agent routes had no limit at all. Past its budget a token gets a JSON 429 with Retry-After."""
    settings.CODERAUTH_AGENT_THROTTLE_RATE = "3/min"
    client = client_for_agent_token(agent_token)
    for _ in range(3):
        assert_status(client.get(reverse(MANIFEST)), 200)
    response = client.get(reverse(MANIFEST))
    assert_status(response, 429)
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert 0 < int(response["Retry-After"]) <= 20


def test_the_budget_is_per_token(agent, member, agent_token, settings):
    settings.CODERAUTH_AGENT_THROTTLE_RATE = "1/min"
    client = client_for_agent_token(agent_token)
    assert_status(client.get(reverse(MANIFEST)), 200)
    assert_status(client.get(reverse(MANIFEST)), 429)
    other = agent_token_issue(actor=member, agent=agent, name="other").plaintext
    assert_status(client_for_agent_token(other).get(reverse(MANIFEST)), 200)


def test_the_budget_costs_no_query(agent_token, settings, django_assert_max_num_queries):
    """The agent hot path stays one SQL query for authentication, authorisation and the budget; a refused
    request costs the same one."""
    settings.CODERAUTH_AGENT_THROTTLE_RATE = "2/min"
    client = client_for_agent_token(agent_token)
    for expected in (200, 200, 429):
        with django_assert_max_num_queries(1):
            assert_status(client.get(reverse(MANIFEST)), expected)


def test_the_budget_is_checked_before_the_scope(agent, agent_token, settings):
    """A token past its budget gets 429 even on a route its mode refuses, and the refusal writes nothing."""
    settings.CODERAUTH_AGENT_THROTTLE_RATE = "1/min"
    agent.permission_mode = mode("no-user-data")
    agent.save(update_fields=["permission_mode"])
    client = client_for_agent_token(agent_token)
    assert_status(client.get(reverse("agents:agent-gitsshkey")), 403)
    denials = AuditEvent.objects.filter(action="agent.access_denied").count()
    assert_status(client.get(reverse("agents:agent-gitsshkey")), 429)
    assert AuditEvent.objects.filter(action="agent.access_denied").count() == denials


def test_the_schema_declares_429_on_throttled_routes():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    manifest = schema["paths"]["/api/v2/workspaceagents/me/manifest"]["get"]["responses"]
    assert "429" in manifest
    password = schema["paths"]["/api/v2/users/me/password"]["post"]["responses"]
    assert "429" in password
