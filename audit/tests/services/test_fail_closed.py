"""Fail closed (docs/audit.md): when the audit row cannot be written, the change it records does not happen."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import AgentToken, Workspace
from audit.models import AuditEvent

AUDIT_STORE_DOWN = "audit store unavailable (test)"


@pytest.fixture
def audit_writes_fail(db):
    """A temporary trigger makes every audit INSERT fail, as a full disk or a lost replica would.

    Created inside the test's transaction, so it disappears with the test's rollback.
    """

    def install():
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION pg_temp.audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN RAISE EXCEPTION '{AUDIT_STORE_DOWN}'; END; $$"
            )
            cursor.execute(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_auditevent "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_down()"
            )

    return install


def _owner_client(member) -> APIClient:
    from agents.services.users import user_token_issue

    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_token_issue(user=member, name='fail-closed').plaintext}")
    return client


def _mode_change(workspace, agent):
    url = reverse("agents:workspace-detail", args=[workspace.id])

    def unchanged():
        assert Workspace.objects.get(pk=workspace.pk).permission_mode.name == "default"

    return "patch", url, {"permission_mode": "no-user-data", "reason": "tighten"}, unchanged


def _token_issue(workspace, agent):
    url = reverse("agents:agent-token-list", args=[agent.id])
    before = set(AgentToken.objects.filter(agent=agent).values_list("id", flat=True))

    def unchanged():
        assert set(AgentToken.objects.filter(agent=agent).values_list("id", flat=True)) == before

    return "post", url, {"name": "ci"}, unchanged


def _token_revoke(workspace, agent):
    token = AgentToken.objects.filter(agent=agent).get()
    url = reverse("agents:agent-token-detail", args=[agent.id, token.id])

    def unchanged():
        assert AgentToken.objects.get(pk=token.pk).revoked_at is None

    return "delete", url, None, unchanged


@pytest.mark.parametrize("change", [_mode_change, _token_issue, _token_revoke], ids=["mode", "issue", "revoke"])
def test_audit_failure_fails_closed(member, workspace, agent, agent_token, audit_writes_fail, change):
    """Mode change, token issue and revocation are refused with a JSON 5xx and leave no trace."""
    client = _owner_client(member)
    method, url, body, assert_unchanged = change(workspace, agent)
    events_before = AuditEvent.objects.count()
    audit_writes_fail()

    response = getattr(client, method)(url, body, format="json")

    assert 500 <= response.status_code < 600, response.content
    assert response["Content-Type"].startswith("application/json")
    payload = response.json()
    assert set(payload) <= {"detail", "request_id"}
    assert "Traceback" not in response.content.decode()
    assert AUDIT_STORE_DOWN not in response.content.decode()
    assert_unchanged()
    assert AuditEvent.objects.count() == events_before


def test_user_data_is_not_served_unaudited(agent_client, audit_writes_fail):
    """An agent's read of the owner's SSH key is refused when its audit row cannot be written."""
    agent_client.raise_request_exception = False
    agent_client.get(reverse("agents:agent-gitsshkey"))  # first read creates the key pair
    audit_writes_fail()
    response = agent_client.get(reverse("agents:agent-gitsshkey"))
    assert response.status_code == 500
    assert response.json().keys() <= {"detail", "request_id"}
    assert "PRIVATE KEY" not in response.content.decode()
