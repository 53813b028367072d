"""The live grant on the agent routes: what it opens, what it never opens, and how its use is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AccessRequest, ExternalAuthProvider, Workspace
from agents.services import principals
from agents.services.tokens import agent_token_issue
from agents.services.user_data import external_auth_link_set
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

GITSSHKEY = "agents:agent-gitsshkey"
EXTERNAL_AUTH = "agents:agent-external-auth"
MANIFEST = "agents:agent-manifest"


def grant(agent, *, scopes: list[str], state: str = AccessRequest.APPROVED, expires_in: timedelta | None = None):
    """An access request as the services leave it once decided; the hot path reads the table itself."""
    now = timezone.now()
    expires_at = None if state == AccessRequest.PENDING else now + (expires_in or timedelta(minutes=10))
    return AccessRequest.objects.create(
        agent=agent,
        workspace=agent.workspace,
        scopes=scopes,
        reason="rebase needs the git key",
        duration_seconds=600,
        state=state,
        requested_at=now - timedelta(minutes=1),
        decided_at=None if state == AccessRequest.PENDING else now,
        expires_at=expires_at,
        revoked_at=now if state == AccessRequest.REVOKED else None,
    )


@pytest.fixture
def full_token(agent, member) -> str:
    """Every agent scope, issued under `default`; the workspace then moves to `no-user-data`."""
    plaintext = agent_token_issue(actor=member, agent=agent, name="full").plaintext
    Workspace.objects.filter(pk=agent.workspace_id).update(permission_mode="no-user-data")
    return plaintext


def _last_access() -> AuditEvent:
    return AuditEvent.objects.filter(action="agent.user_data_accessed").latest("id")


def test_a_read_only_the_grant_allows_is_audited_as_elevated(agent, full_token):
    access_request = grant(agent, scopes=["agent:gitsshkey"])

    assert_status(client_for_agent_token(full_token).get(reverse(GITSSHKEY)), 200)

    event = _last_access()
    assert event.details["elevated"] is True
    assert event.details["access_request_id"] == str(access_request.id)
    assert event.details["mode"] == "no-user-data"
    assert event.agent_id == agent.id


def test_an_external_auth_read_through_the_grant_is_audited_as_elevated(agent, member, full_token):
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")
    external_auth_link_set(user=member, provider=provider, access_token="gho_elevated0123", token_extra={})
    access_request = grant(agent, scopes=["agent:external-auth"])

    assert_status(client_for_agent_token(full_token).get(reverse(EXTERNAL_AUTH) + "?id=github"), 200)

    event = _last_access()
    assert event.details["provider"] == "github"
    assert (event.details["elevated"], event.details["access_request_id"]) == (True, str(access_request.id))


def test_a_read_the_mode_allows_keeps_the_usual_shape_despite_a_grant(agent, agent_token):
    """Only uses the grant made possible are marked; under `default` the same grant changes nothing."""
    grant(agent, scopes=["agent:gitsshkey"])

    assert_status(client_for_agent_token(agent_token).get(reverse(GITSSHKEY)), 200)

    assert set(_last_access().details) == {"route", "token_id", "mode"}


def test_a_grant_never_widens_a_token(agent, member):
    """Security: a token issued without a scope never gets it, whatever the agent was granted."""
    narrow = agent_token_issue(actor=member, agent=agent, scopes=["agent:connect"]).plaintext
    Workspace.objects.filter(pk=agent.workspace_id).update(permission_mode="no-user-data")
    grant(agent, scopes=["agent:gitsshkey"])

    response = client_for_agent_token(narrow).get(reverse(GITSSHKEY))

    assert_status(response, 403)
    # Not the mode's fault any more: asking for another grant would not help, only a token that carries it.
    assert response.json()["denied_by"] == "token"
    assert response.json()["permission_mode"] == "no-user-data"
    denied = AuditEvent.objects.filter(action="agent.access_denied").latest("id")
    assert (denied.details["denied_by"], denied.details["token_scopes"]) == ("token", ["agent:connect"])
    assert not AuditEvent.objects.filter(action="agent.user_data_accessed").exists()


def test_a_grant_of_another_scope_is_still_the_mode_refusing(agent, full_token):
    grant(agent, scopes=["agent:external-auth"])

    response = client_for_agent_token(full_token).get(reverse(GITSSHKEY))

    assert_status(response, 403)
    assert response.json()["denied_by"] == "permission_mode"
    assert "permission mode 'no-user-data'" in response.json()["detail"]


@pytest.mark.parametrize(
    "state, expires_in",
    [
        pytest.param(AccessRequest.APPROVED, timedelta(seconds=-1), id="expired"),
        pytest.param(AccessRequest.REVOKED, timedelta(minutes=10), id="revoked"),
        pytest.param(AccessRequest.PENDING, None, id="pending"),
        pytest.param(AccessRequest.DENIED, timedelta(minutes=10), id="denied"),
    ],
)
def test_only_an_approved_live_grant_opens_a_route(agent, full_token, state, expires_in):
    grant(agent, scopes=["agent:gitsshkey"], state=state, expires_in=expires_in)

    response = client_for_agent_token(full_token).get(reverse(GITSSHKEY))

    assert_status(response, 403)
    assert response.json()["denied_by"] == "permission_mode"


def test_a_grant_lapses_by_time_alone(agent, full_token, monkeypatch):
    """Security: nothing has to run for a grant to end; the next request after `expires_at` is refused."""
    access_request = grant(agent, scopes=["agent:gitsshkey"], expires_in=timedelta(minutes=10))
    client = client_for_agent_token(full_token)
    assert_status(client.get(reverse(GITSSHKEY)), 200)

    later = access_request.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(principals.timezone, "now", lambda: later)

    assert_status(client.get(reverse(GITSSHKEY)), 403)
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.APPROVED  # untouched: the clock alone ended it


def test_approval_and_revocation_bite_on_the_next_request(agent, full_token):
    client = client_for_agent_token(full_token)
    assert_status(client.get(reverse(GITSSHKEY)), 403)

    access_request = grant(agent, scopes=["agent:gitsshkey"])
    assert_status(client.get(reverse(GITSSHKEY)), 200)
    assert "agent:gitsshkey" in client.get(reverse(MANIFEST)).json()["scopes"]

    AccessRequest.objects.filter(pk=access_request.pk).update(state=AccessRequest.REVOKED, revoked_at=timezone.now())
    assert_status(client.get(reverse(GITSSHKEY)), 403)
    assert "agent:gitsshkey" not in client.get(reverse(MANIFEST)).json()["scopes"]
