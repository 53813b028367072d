"""Agent tokens (docs/concepts.md): issue by admin or owner, child tokens by agents, subtree revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue, agent_token_revoke
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory, WorkspaceFactory, mode
from tests.helpers.responses import assert_status, page_results

pytestmark = pytest.mark.django_db

MANIFEST = "agents:agent-manifest"
CHILD = "agents:agent-child-token"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _mint(client, **body):
    return client.post(reverse(CHILD), body, format="json")


# --- Issue by a user ---------------------------------------------------------------------------------


def test_owner_issues_a_token_with_the_effective_modes_scopes_by_default(member_client, agent, settings):
    response = member_client.post(reverse("agents:agent-token-list", args=[agent.pk]), {"name": "ci"}, format="json")
    assert_status(response, 201)
    assert set(response.data) >= {"id", "token", "scopes", "expires_at", "agent_id"}
    assert response.data["scopes"] == ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"]
    assert response.data["agent_id"] == str(agent.pk)
    lifetime = _parse(response.data["expires_at"]) - timezone.now()
    assert abs(lifetime - settings.CODERAUTH_AGENT_TOKEN_LIFETIME) < timedelta(minutes=1)
    event = AuditEvent.objects.get(action="agent_token.issued")
    assert event.details["token_id"] == response.data["id"]
    assert response.data["token"] not in str(event.details)


def test_admin_issues_tokens_for_any_agent(admin_client, agent):
    response = admin_client.post(reverse("agents:agent-token-list", args=[agent.pk]), {}, format="json")
    assert_status(response, 201)


def test_token_scopes_outside_the_effective_mode_are_a_400(member_client, member):
    agent = AgentFactory(workspace=WorkspaceFactory(owner=member, permission_mode=mode("no-user-data")))
    url = reverse("agents:agent-token-list", args=[agent.pk])
    response = member_client.post(url, {"scopes": ["agent:connect", "agent:gitsshkey"]}, format="json")
    assert_status(response, 400)
    assert "scopes" in response.json()
    response = member_client.post(url, {}, format="json")
    assert_status(response, 201)
    assert response.data["scopes"] == ["agent:connect", "agent:report"]


@pytest.mark.parametrize("body", [{"scopes": []}, {"scopes": ["agent:root"]}, {"lifetime_seconds": 10}])
def test_bad_token_requests_are_a_400(member_client, agent, body):
    assert_status(member_client.post(reverse("agents:agent-token-list", args=[agent.pk]), body, format="json"), 400)


def test_agent_token_lifetime_is_bounded(member_client, agent, settings):
    too_long = int(settings.CODERAUTH_AGENT_TOKEN_MAX_LIFETIME.total_seconds()) + 1
    response = member_client.post(
        reverse("agents:agent-token-list", args=[agent.pk]), {"lifetime_seconds": too_long}, format="json"
    )
    assert_status(response, 400)
    assert "lifetime_seconds" in response.json()


def test_token_list_is_metadata_only(member_client, agent, agent_token):
    response = member_client.get(reverse("agents:agent-token-list", args=[agent.pk]))
    (item,) = page_results(response)
    assert {"id", "name", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at", "parent_id"} <= set(item)
    assert "token" not in item and "digest" not in item
    assert agent_token not in response.content.decode()


def test_a_token_cannot_be_revoked_through_another_agents_url(member_client, member, agent, agent_token):
    other_agent = AgentFactory(workspace__owner=member)
    token = AgentToken.objects.get(agent=agent)
    response = member_client.delete(reverse("agents:agent-token-detail", args=[other_agent.pk, token.pk]))
    assert_status(response, 404)
    assert not AgentToken.objects.get(pk=token.pk).is_revoked()


# --- Child tokens ------------------------------------------------------------------------------------


def test_child_token_defaults_to_the_callers_allowed_scopes_and_an_hour(agent_client, settings):
    response = _mint(agent_client)
    assert_status(response, 201)
    assert response.data["scopes"] == ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"]
    assert response.data["parent_id"] is not None
    lifetime = _parse(response.data["expires_at"]) - timezone.now()
    assert abs(lifetime - settings.CODERAUTH_CHILD_TOKEN_LIFETIME) < timedelta(minutes=1)
    assert AuditEvent.objects.filter(action="agent_token.issued", actor_type="agent").exists()


def test_child_scopes_must_be_within_the_callers_allowed_scopes(agent_client):
    """A child can never hold more than its parent may use now: no escalation through minting."""
    narrow = client_for_agent_token(_mint(agent_client, scopes=["agent:connect"]).data["token"])

    response = _mint(narrow, scopes=["agent:connect", "agent:gitsshkey"])
    assert_status(response, 400)
    assert "scopes" in response.json()
    assert_status(_mint(narrow, scopes=["agent:connect"]), 201)


def test_child_scopes_are_limited_by_the_mode_not_just_the_parents_scopes(agent_client, workspace):
    """The parent token holds agent:gitsshkey, but its mode does not allow it now: neither may a child."""
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    assert_status(_mint(agent_client, scopes=["agent:gitsshkey"]), 400)
    response = _mint(agent_client)
    assert_status(response, 201)
    assert response.data["scopes"] == ["agent:connect", "agent:report"]


def test_child_expiry_is_clamped_to_the_parents(member, agent):
    parent = agent_token_issue(actor=member, agent=agent, lifetime_seconds=600)
    client = client_for_agent_token(parent.plaintext)

    response = _mint(client, lifetime_seconds=86400)

    assert_status(response, 201)
    child = AgentToken.objects.get(pk=response.data["id"])
    assert child.expires_at <= AgentToken.objects.get(pk=parent.token.pk).expires_at
    assert child.parent_id == parent.token.pk


@pytest.mark.parametrize("body", [{"scopes": ["agent:nope"]}, {"lifetime_seconds": 1}, {"scopes": "agent:connect"}])
def test_bad_child_requests_are_a_400(agent_client, body):
    assert_status(_mint(agent_client, **body), 400)


def test_revoked_parent_revokes_children(member_client, agent, agent_client, agent_token):
    """Revoking a token revokes its whole subtree (Vault's token tree): no child outlives a revoked parent."""
    child = _mint(agent_client, scopes=["agent:connect", "agent:report"]).data
    grandchild = _mint(client_for_agent_token(child["token"]), scopes=["agent:connect"]).data
    sibling_root = agent_token_issue(actor=agent.workspace.owner, agent=agent, name="other")
    root = AgentToken.objects.get(agent=agent, parent=None, name="test")

    response = member_client.delete(reverse("agents:agent-token-detail", args=[agent.pk, root.pk]))

    assert_status(response, 204)
    for plaintext in (agent_token, child["token"], grandchild["token"]):
        assert_status(client_for_agent_token(plaintext).get(reverse(MANIFEST)), 401)
    assert_status(client_for_agent_token(sibling_root.plaintext).get(reverse(MANIFEST)), 200)
    event = AuditEvent.objects.get(action="agent_token.revoked")
    assert set(event.details["revoked_ids"]) == {str(root.pk), child["id"], grandchild["id"]}
    # Idempotent: revoking again succeeds and records nothing new.
    assert_status(member_client.delete(reverse("agents:agent-token-detail", args=[agent.pk, root.pk])), 204)
    assert AuditEvent.objects.filter(action="agent_token.revoked").count() == 1


def test_revoking_a_child_leaves_its_parent_alone(member_client, agent, agent_client):
    child = _mint(agent_client).data
    response = member_client.delete(reverse("agents:agent-token-detail", args=[agent.pk, child["id"]]))
    assert_status(response, 204)
    assert_status(client_for_agent_token(child["token"]).get(reverse(MANIFEST)), 401)
    assert_status(agent_client.get(reverse(MANIFEST)), 200)


def test_revoked_token_cannot_mint_children(member, agent, agent_client):
    root = AgentToken.objects.get(agent=agent)
    agent_token_revoke(actor=member, token=root)
    assert_status(_mint(agent_client), 401)
    assert AgentToken.objects.filter(agent=agent).count() == 1


def test_manifest_reports_what_the_token_may_do_now(agent_client, agent, workspace):
    response = agent_client.get(reverse(MANIFEST))
    assert_status(response, 200)
    assert response.data == {
        "agent_id": str(agent.pk),
        "agent_name": agent.name,
        "workspace_id": str(workspace.pk),
        "workspace_name": workspace.name,
        "owner_username": workspace.owner.username,
        "permission_mode": "default",
        "scopes": ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"],
    }


def test_child_token_with_nothing_allowed_now_is_a_400(member, agent, workspace):
    """A token whose every scope the mode now forbids cannot mint anything (docs/concepts.md: none allowed → 400)."""
    issued = agent_token_issue(actor=member, agent=agent, scopes=["agent:gitsshkey"])
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    response = _mint(client_for_agent_token(issued.plaintext))
    assert_status(response, 400)
    assert AgentToken.objects.filter(agent=agent).count() == 1
