"""Just-in-time elevation in a real browser: an agent asks through the API, an admin approves on the access-request
page, the agent's next call gets the scope, the admin revokes the grant on the workspace page, the next call is
refused again."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from agents.models import AccessRequest
from agents.services.tokens import agent_token_issue
from agents.services.workspaces import workspace_mode_set
from tests.helpers.browser import sign_in
from tests.helpers.factories import AdminFactory, AgentFactory, UserFactory, WorkspaceFactory, mode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _agent_call(live_server, token: str, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method, f"{live_server.url}/api/v2/{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
    )


def _gitsshkey(live_server, token: str) -> httpx.Response:
    return _agent_call(live_server, token, "GET", "workspaceagents/me/gitsshkey")


def test_admin_approves_in_the_ui_then_revokes_and_the_agent_follows_on_its_next_call(page, live_server):
    admin = AdminFactory(username="alice")
    owner = UserFactory(username="mo")
    workspace = WorkspaceFactory(owner=owner, name="payments-api")
    agent = AgentFactory(workspace=workspace, name="main")
    # Issued under the default mode, so the token carries agent:gitsshkey; the workspace then locks user data away.
    token = agent_token_issue(actor=owner, agent=agent, name="agent").plaintext
    workspace_mode_set(actor=admin, workspace=workspace, permission_mode=mode("no-user-data"), reason="lock down")
    assert _gitsshkey(live_server, token).status_code == 403

    asked = _agent_call(
        live_server,
        token,
        "POST",
        "workspaceagents/me/access-requests",
        json={"scopes": ["agent:gitsshkey"], "reason": "sign the release tag", "duration_seconds": 900},
    )
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]

    sign_in(page, "alice")
    expect(page.get_by_role("link", name="Access requests 1")).to_be_visible()
    page.get_by_role("link", name="Access requests 1").click()
    row = page.locator(f"#request-{request_id}")
    expect(row).to_contain_text("sign the release tag")
    expect(row.get_by_label("For")).to_have_value("900")
    row.get_by_label("Approval reason").fill("release day")
    row.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved: main may use agent:gitsshkey")
    expect(page.get_by_text("No pending requests.")).to_be_visible()

    assert _gitsshkey(live_server, token).status_code == 200

    page.get_by_role("link", name="Workspaces", exact=True).click()
    page.get_by_role("link", name="payments-api").click()
    grant = page.locator(f"#grant-{request_id}")
    expect(grant).to_contain_text("agent:gitsshkey")
    expect(grant).to_contain_text("min")
    grant.get_by_label("Revoke reason").fill("tag signed")
    grant.get_by_role("button", name="Revoke grant").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked main's grant of agent:gitsshkey")
    expect(page.get_by_text("No active grants.")).to_be_visible()

    refused = _gitsshkey(live_server, token)
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "agent:gitsshkey"
    assert AccessRequest.objects.get(pk=request_id).state == AccessRequest.REVOKED
