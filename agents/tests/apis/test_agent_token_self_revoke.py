"""DELETE workspaceagents/me/tokens/{id}: an agent revokes its own token or a descendant, nothing else."""

import pytest
from django.urls import reverse

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def _mint_child(client) -> dict:
    response = client.post(reverse("agents:agent-child-token"), {"scopes": ["agent:connect"]}, format="json")
    assert_status(response, 201)
    return response.data


def test_agent_revokes_its_child_and_the_revoke_is_audited(agent_client, agent):
    child = _mint_child(agent_client)
    grandchild = _mint_child(client_for_agent_token(child["token"]))

    response = agent_client.delete(reverse("agents:agent-child-token-detail", args=[child["id"]]))

    assert_status(response, 204)
    assert AgentToken.objects.get(pk=child["id"]).is_revoked()
    assert AgentToken.objects.get(pk=grandchild["id"]).is_revoked()
    assert_status(client_for_agent_token(child["token"]).get(reverse("agents:agent-manifest")), 401)
    assert_status(agent_client.get(reverse("agents:agent-manifest")), 200)
    event = AuditEvent.objects.filter(action="agent_token.revoked").latest("time")
    assert (event.actor_type, event.actor) == ("agent", str(agent.id))
    assert set(event.details["revoked_ids"]) == {child["id"], grandchild["id"]}


def test_agent_token_revokes_itself(agent_client):
    child = _mint_child(agent_client)
    child_client = client_for_agent_token(child["token"])

    assert_status(child_client.delete(reverse("agents:agent-child-token-detail", args=[child["id"]])), 204)
    assert_status(child_client.get(reverse("agents:agent-manifest")), 401)


def test_child_cannot_revoke_its_parent_or_a_sibling(agent_client, agent, member):
    """A compromised child must not be able to cut off its parent or other holders of the agent's tokens."""
    parent_id = AgentToken.objects.get(agent=agent, parent=None).id
    child = _mint_child(agent_client)
    sibling = _mint_child(agent_client)
    other_root = agent_token_issue(actor=member, agent=agent, name="other")
    child_client = client_for_agent_token(child["token"])

    for token_id in (parent_id, sibling["id"], other_root.token.id):
        assert_status(child_client.delete(reverse("agents:agent-child-token-detail", args=[token_id])), 404)
    assert not AgentToken.objects.filter(revoked_at__isnull=False).exists()


def test_another_agents_token_is_not_found(agent_client, member):
    other_agent = AgentFactory(workspace__owner=member)
    other = agent_token_issue(actor=member, agent=other_agent, name="other")

    response = agent_client.delete(reverse("agents:agent-child-token-detail", args=[other.token.id]))

    assert_status(response, 404)
    assert not AgentToken.objects.get(pk=other.token.id).is_revoked()
