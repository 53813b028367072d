"""Request ids: kept when safe, replaced when not, and carried into audit rows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from conftest import assert_status

pytestmark = pytest.mark.django_db


def test_safe_request_id_is_kept_and_reaches_the_audit_row(member_client):
    response = member_client.post(
        reverse("agents:workspace-list"), {"name": "traced"}, format="json", HTTP_X_REQUEST_ID="trace-123.abc_DEF"
    )
    assert_status(response, 201)
    assert response["X-Request-ID"] == "trace-123.abc_DEF"
    assert AuditEvent.objects.get(action="workspace.created").request_id == "trace-123.abc_DEF"


@pytest.mark.parametrize("incoming", ["has space", "x" * 65, "new\nline", "<script>", ""])
def test_unsafe_request_id_is_replaced(member_client, incoming):
    response = member_client.get(reverse("agents:user-me"), HTTP_X_REQUEST_ID=incoming)
    assert_status(response, 200)
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


def test_audit_rows_record_ip_and_user_agent(member_client):
    member_client.post(
        reverse("agents:workspace-list"), {"name": "ua"}, format="json", HTTP_USER_AGENT="curl/8.0\r\nX-Forged: 1"
    )
    event = AuditEvent.objects.get(action="workspace.created")
    assert event.ip == "127.0.0.1"
    assert event.user_agent.startswith("curl/8.0")
    assert "\n" not in event.user_agent and "\r" not in event.user_agent


def test_options_on_an_agent_route_is_still_guarded(agent_client, workspace, api_client):
    """OPTIONS must not become a way around authentication or the scope check."""
    assert_status(api_client.options(reverse("agents:agent-gitsshkey")), 401)
    workspace.permission_mode_id = "no-user-data"
    workspace.save()
    assert_status(agent_client.options(reverse("agents:agent-gitsshkey")), 403)
    assert_status(agent_client.head(reverse("agents:agent-gitsshkey")), 403)
