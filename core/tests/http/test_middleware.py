"""Request ids (kept when safe, replaced when not) and client addresses, carried into audit rows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers.responses import assert_status

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


# --- Client address behind proxies (NUM_PROXIES) ------------------------------------------------------


@pytest.fixture
def one_proxy(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def _create_workspace(client, **headers):
    assert_status(client.post(reverse("agents:workspace-list"), {"name": "proxied"}, format="json", **headers), 201)
    return AuditEvent.objects.get(action="workspace.created")


def test_behind_one_proxy_audit_rows_record_the_forwarded_client(member_client, one_proxy):
    """Regression: audit rows recorded REMOTE_ADDR (the proxy's address) whatever NUM_PROXIES said."""
    event = _create_workspace(member_client, HTTP_X_FORWARDED_FOR="203.0.113.7", REMOTE_ADDR="10.0.0.2")
    assert event.ip == "203.0.113.7"


def test_only_the_trusted_hop_counts_not_what_the_client_prepends(member_client, one_proxy):
    """A client can send its own X-Forwarded-For; the proxy appends the real address, which is the one used."""
    event = _create_workspace(member_client, HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7", REMOTE_ADDR="10.0.0.2")
    assert event.ip == "203.0.113.7"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(member_client):
    event = _create_workspace(member_client, HTTP_X_FORWARDED_FOR="203.0.113.7", REMOTE_ADDR="10.0.0.2")
    assert event.ip == "10.0.0.2"


def test_a_forwarded_value_that_is_not_an_address_falls_back_to_the_peer(member_client, one_proxy):
    event = _create_workspace(member_client, HTTP_X_FORWARDED_FOR="unknown", REMOTE_ADDR="10.0.0.2")
    assert event.ip == "10.0.0.2"


def test_behind_a_proxy_the_login_throttle_is_per_client_not_shared(api_client, member, one_proxy):
    """Ten failed sign-ins from one client must not lock out another client behind the same proxy."""
    url = reverse("agents:user-login")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(10):
        body = {"username": member.username, "password": f"guess-{n}"}
        api_client.post(url, body, format="json", HTTP_X_FORWARDED_FOR="198.51.100.66", **proxy)
    attacker = api_client.post(
        url,
        {"username": member.username, "password": "x"},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.66",
        **proxy,
    )
    assert_status(attacker, 429)
    other = api_client.post(
        url,
        # Another account: the attacker has also spent this username's own budget, from any address.
        {"username": "someone-else", "password": "wrong"},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
        **proxy,
    )
    assert_status(other, 401)
    failed = AuditEvent.objects.filter(action="user.login_failed").order_by("-id").first()
    assert failed.ip == "203.0.113.7"
