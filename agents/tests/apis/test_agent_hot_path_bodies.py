"""The hottest agent routes answer plain dicts instead of building a serializer per request: their bodies must stay
exactly what the serializers that document them (OpenAPI) would render."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.apis.agent import AgentAppStatusApi, AgentManifestApi
from agents.models import AppStatus
from policies.scopes import ordered
from tests.helpers.clients import client_for_agent_token
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def test_manifest_body_is_what_its_output_serializer_renders(agent, agent_token):
    response = client_for_agent_token(agent_token).get(reverse("agents:agent-manifest"))
    assert_status(response, 200)
    body = response.json()
    expected = AgentManifestApi.OutputSerializer(
        {
            "agent_id": agent.id,
            "agent_name": agent.name,
            "workspace_id": agent.workspace.id,
            "workspace_name": agent.workspace.name,
            "owner_username": agent.workspace.owner.username,
            "permission_mode": agent.workspace.permission_mode,
            "scopes": ordered(body["scopes"]),
        }
    ).data
    assert body == dict(expected)
    assert body["scopes"], "an empty scope list would make the comparison prove little"


def test_app_status_body_is_what_its_output_serializer_renders(agent, agent_token):
    client = client_for_agent_token(agent_token)
    sent = {"app_slug": "claude", "state": "working", "message": "Indexing", "uri": "https://example.com/x"}
    response = client.patch(reverse("agents:agent-app-status"), sent, format="json")
    assert_status(response, 200)
    stored = AppStatus.objects.get(agent=agent)
    assert response.json() == dict(AgentAppStatusApi.OutputSerializer(stored).data)
    assert response.json()["created_at"].endswith("Z")
