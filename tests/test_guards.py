"""Tests that guard the guards: each security check below is pinned by at least one more test than the one that
introduced it, so removing or weakening the check fails here too (see docs/security.md, "Mutation testing")."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents.authentication import AGENT_TOKEN_REQUIRED, USER_TOKEN_REQUIRED
from agents.models import AgentToken, Workspace, WorkspaceAgent
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_child_token_issue, agent_token_issue, agent_token_revoke
from agents.services.users import user_token_issue
from agents.services.workspaces import agent_create, agent_mode_set, workspace_mode_set
from audit.models import AuditEvent
from core import tokens
from core.exceptions import InvalidInput, NotPermitted
from tests.helpers.clients import client_for_agent_token, client_for_user
from tests.helpers.factories import AgentFactory, AuditorFactory, WorkspaceFactory, mode
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

AGENT_ROUTES = (
    "agents:agent-manifest",
    "agents:agent-gitsshkey",
    "agents:agent-external-auth",
    "agents:agent-gitauth",
    "agents:agent-child-token",
)
USER_ROUTES = ("agents:user-me", "agents:workspace-list", "agents:user-gitsshkey", "agents:user-token-list")


def _bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.mark.parametrize("route", AGENT_ROUTES)
def test_agent_routes_name_a_user_token_as_the_wrong_kind(member, route):
    """A `cdu_` token on an agent route is refused by name, with the agent realm: not DRF's generic 401 body."""
    response = client_for_user(member).get(reverse(route))
    assert_status(response, 401)
    assert response.json() == {"detail": AGENT_TOKEN_REQUIRED}
    assert response["WWW-Authenticate"] == 'Bearer realm="agent"'


@pytest.mark.parametrize("route", USER_ROUTES)
def test_user_routes_name_an_agent_token_as_the_wrong_kind(agent_token, route):
    """The other way round: a `cda_` token never acts as its owner, and the answer says why, in the user realm."""
    response = client_for_agent_token(agent_token).get(reverse(route))
    assert_status(response, 401)
    assert response.json() == {"detail": USER_TOKEN_REQUIRED}
    assert response["WWW-Authenticate"] == 'Bearer realm="user"'


def test_agent_token_in_coder_header_cannot_write_on_a_user_route(agent_token):
    """Coder's header carries the agent token too: a write on a user route is still refused, and nothing is made."""
    client = APIClient()
    client.credentials(HTTP_CODER_SESSION_TOKEN=agent_token)
    before = Workspace.objects.count()
    response = client.post(reverse("agents:workspace-list"), {"name": "escalated"}, format="json")
    assert_status(response, 401)
    assert Workspace.objects.count() == before


@pytest.fixture
def auditor_workspace():
    auditor = AuditorFactory()
    workspace = WorkspaceFactory(owner=auditor, permission_mode=mode("default"))
    return auditor, workspace, AgentFactory(workspace=workspace)


def test_auditor_who_owns_a_workspace_still_cannot_write_to_it(auditor_workspace):
    """Auditors change nothing, not even a workspace they own: ownership does not outrank the read-only role."""
    auditor, workspace, agent = auditor_workspace
    client = client_for_user(auditor)
    tighten = {"permission_mode": "no-user-data", "reason": "owner tightening"}
    assert_status(client.patch(reverse("agents:workspace-detail", args=[workspace.pk]), tighten, format="json"), 403)
    assert_status(client.patch(reverse("agents:agent-detail", args=[agent.pk]), tighten, format="json"), 403)
    assert_status(client.post(reverse("agents:agent-token-list", args=[agent.pk]), {}, format="json"), 403)
    assert_status(client.post(reverse("agents:agent-create", args=[workspace.pk]), {"name": "x"}, format="json"), 403)
    workspace.refresh_from_db()
    assert workspace.permission_mode_id == "default"
    assert not AgentToken.objects.filter(agent=agent).exists()
    assert WorkspaceAgent.objects.filter(workspace=workspace).count() == 1


def test_auditor_owner_cannot_revoke_a_token_of_their_workspace(auditor_workspace, admin_user):
    auditor, _workspace, agent = auditor_workspace
    issued = agent_token_issue(actor=admin_user, agent=agent, name="by admin")
    url = reverse("agents:agent-token-detail", args=[agent.pk, issued.token.pk])
    assert_status(client_for_user(auditor).delete(url), 403)
    assert AgentToken.objects.get(pk=issued.token.pk).revoked_at is None


def test_child_expiry_is_exactly_the_parents_when_asked_for_longer(member, agent):
    """Clamped, not refused, and to the parent's expiry exactly: a child can never outlive its parent."""
    parent = agent_token_issue(actor=member, agent=agent, lifetime_seconds=300)
    response = client_for_agent_token(parent.plaintext).post(
        reverse("agents:agent-child-token"), {"lifetime_seconds": 7200}, format="json"
    )
    assert_status(response, 201)
    child = AgentToken.objects.get(pk=response.json()["id"])
    assert child.expires_at == parent.token.expires_at


def test_a_principal_read_before_its_token_was_revoked_cannot_mint(member, agent):
    """The mint re-reads the parent under the tree lock: a revocation that landed after the request authenticated
    still refuses the child (no concurrency needed to show it: the principal is simply stale)."""
    parent = agent_token_issue(actor=member, agent=agent)
    principal = agent_principal_resolve(raw_token=parent.plaintext)
    agent_token_revoke(actor=member, token=parent.token)
    with pytest.raises(InvalidInput, match="revoked"):
        agent_child_token_issue(principal=principal)
    assert not AgentToken.objects.filter(parent=parent.token).exists()


def test_digest_is_keyed_so_a_leaked_table_is_useless_without_the_key(settings, member, agent):
    """The stored digest is an HMAC under the server key: not the plain SHA-256, and not valid under another key."""
    issued = agent_token_issue(actor=member, agent=agent)
    stored = AgentToken.objects.get(pk=issued.token.pk).digest
    assert stored == tokens.digest(issued.plaintext)
    assert stored != hashlib.sha256(issued.plaintext.encode()).hexdigest()
    settings.CODERAUTH_TOKEN_DIGEST_KEY = "another-key-" + "x" * 40
    assert tokens.digest(issued.plaintext) != stored
    assert_status(client_for_agent_token(issued.plaintext).get(reverse("agents:agent-manifest")), 401)


def test_inactive_owner_refuses_user_data_and_is_audited_as_such(member, agent, agent_token):
    """Deactivating the owner stops every agent token of theirs at once, the user-data routes included."""
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert_status(client_for_agent_token(agent_token).get(reverse("agents:agent-gitsshkey")), 401)
    event = AuditEvent.objects.get(action="agent_token.rejected")
    assert event.details["reason"] == "owner_inactive"
    assert not AuditEvent.objects.filter(action="agent.user_data_accessed").exists()


def test_inactive_user_token_owner_is_refused(member):
    issued = user_token_issue(user=member, name="cli")
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert_status(_bearer(issued.plaintext).get(reverse("agents:user-me")), 401)


def test_expired_child_is_refused_even_though_its_parent_lives(member, agent):
    parent = agent_token_issue(actor=member, agent=agent)
    child = agent_child_token_issue(principal=agent_principal_resolve(raw_token=parent.plaintext), lifetime_seconds=60)
    past = timezone.now() - timedelta(seconds=1)
    AgentToken.objects.filter(pk=child.token.pk).update(created_at=past - timedelta(minutes=1), expires_at=past)
    assert_status(client_for_agent_token(child.plaintext).get(reverse("agents:agent-manifest")), 401)
    assert_status(client_for_agent_token(parent.plaintext).get(reverse("agents:agent-manifest")), 200)


def test_services_refuse_a_member_writing_to_another_members_workspace(member, other_member, workspace, agent):
    """Defence in depth: the services check ownership themselves, so an API that ever handed them an object the
    caller cannot see would still be refused (today the selectors already answer 404 first)."""
    tighter = mode("no-user-data")
    with pytest.raises(NotPermitted):
        workspace_mode_set(actor=other_member, workspace=workspace, permission_mode=tighter)
    with pytest.raises(NotPermitted):
        agent_mode_set(actor=other_member, agent=agent, permission_mode=tighter)
    with pytest.raises(NotPermitted):
        agent_create(actor=other_member, workspace=workspace, name="intruder")
    with pytest.raises(NotPermitted):
        agent_token_issue(actor=other_member, agent=agent)
    workspace.refresh_from_db()
    assert workspace.permission_mode_id == "default"
    assert not AgentToken.objects.filter(agent=agent).exists()
