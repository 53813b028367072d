"""Not a check: regenerates docs/screenshots/ for the README (`make screenshots`, or CODERAUTH_SCREENSHOTS=1).

It seeds a small demo, makes the agent of payments-api hit the new mode once, and photographs the
dashboard, that workspace and the permissions report in Debian's Chromium.
"""

from __future__ import annotations

import os

import httpx
import pytest
from playwright.sync_api import expect

from agents.models import AppStatus
from agents.services.tokens import agent_token_issue
from policies.models import PermissionMode
from tests.helpers.browser import SCREENSHOTS, sign_in
from tests.helpers.factories import AdminFactory, AgentFactory, UserFactory, WorkspaceFactory, mode

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("CODERAUTH_SCREENSHOTS"), reason="set CODERAUTH_SCREENSHOTS=1"),
]

WORKSPACES = ["payments-api", "docs-site", "ml-training", "frontend", "infra-tools", "data-pipeline"]
TASK_STATES = [
    ("working", "Refactoring the billing module"),
    ("complete", "All 214 tests pass"),
    ("failure", "Migration failed on staging"),
    ("idle", "Waiting for review"),
]


def test_take_screenshots(page, live_server):
    admin = AdminFactory(username="alice")
    owners = [UserFactory(username="mo"), UserFactory(username="olga")]
    git_only = PermissionMode.objects.create(
        name="git-only",
        description="Connect, report and the git SSH key; no OAuth tokens.",
        scopes=["agent:connect", "agent:report", "agent:gitsshkey"],
    )
    modes = [mode("default"), mode("no-user-data"), git_only]
    workspaces, tokens = [], []
    for index, name in enumerate(WORKSPACES):
        workspace = WorkspaceFactory(owner=owners[index % 2], name=name, permission_mode=modes[index % 3])
        workspaces.append(workspace)
        agent = AgentFactory(workspace=workspace, name="main")
        tokens.append(agent_token_issue(actor=admin, agent=agent, name="agent").plaintext)
        state, message = TASK_STATES[index % len(TASK_STATES)]
        AppStatus.objects.create(
            agent=agent, app_slug="claude-code", state=state, message=message, uri="https://ci.example.com/runs/42"
        )
    target = workspaces[0]

    sign_in(page, "alice")
    page.goto(f"/workspaces/{target.pk}/")
    page.get_by_label("Permission mode", exact=True).select_option("no-user-data")
    page.get_by_label("Reason", exact=True).fill("agent never needs the owner's SSH key")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("changed from default to no-user-data")
    denied = httpx.get(
        f"{live_server.url}/api/v2/workspaceagents/me/gitsshkey", headers={"Authorization": f"Bearer {tokens[0]}"}
    )
    assert denied.status_code == 403

    page.goto("/")
    expect(page.get_by_role("heading", name="Recent denied agent requests")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    page.goto(f"/workspaces/{target.pk}/")
    expect(page.get_by_role("cell", name="agent.access_denied")).not_to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "workspace.png"), full_page=True)

    page.goto("/reports/")
    expect(page.get_by_role("heading", name="Recommendations")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "reports.png"), full_page=True)
