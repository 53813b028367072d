"""The admin UI in a real browser: what admins, auditors and members do, end to end through the API."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from agents.models import AgentToken, Workspace
from agents.services.tokens import agent_token_issue
from tests.helpers.browser import sign_in
from tests.helpers.factories import AdminFactory, AgentFactory, AuditorFactory, UserFactory, WorkspaceFactory, mode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people():
    return {
        "admin": AdminFactory(username="alice"),
        "auditor": AuditorFactory(username="audrey"),
        "member": UserFactory(username="mo"),
        "other": UserFactory(username="olga"),
    }


def _gitsshkey(live_server, token: str) -> httpx.Response:
    return httpx.get(
        f"{live_server.url}/api/v2/workspaceagents/me/gitsshkey", headers={"Authorization": f"Bearer {token}"}
    )


def test_admin_switches_a_workspace_to_no_user_data_and_the_agent_is_refused(page, live_server, people):
    """Log in, find the workspace, switch it with a reason: the agent's very next gitsshkey call is a 403."""
    workspace = WorkspaceFactory(owner=people["member"], name="payments-api")
    WorkspaceFactory(owner=people["other"], name="docs-site")
    agent = AgentFactory(workspace=workspace, name="main")
    token = agent_token_issue(actor=people["member"], agent=agent, name="agent").plaintext
    assert _gitsshkey(live_server, token).status_code == 200

    sign_in(page, "alice")
    page.get_by_role("link", name="Workspaces", exact=True).click()
    page.get_by_label("Search").fill("payments")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="docs-site")).to_have_count(0)
    page.get_by_role("link", name="payments-api").click()

    page.get_by_label("Permission mode", exact=True).select_option("no-user-data")
    page.get_by_label("Reason", exact=True).fill("agent never needs the owner's SSH key")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("changed from default to no-user-data")
    expect(page.get_by_role("cell", name="workspace.mode_changed")).to_have_count(1)

    response = _gitsshkey(live_server, token)
    assert response.status_code == 403
    assert response.json()["required_scope"] == "agent:gitsshkey"
    assert response.json()["permission_mode"] == "no-user-data"


def test_loosening_in_the_browser_needs_confirmation_and_a_reason(page, people):
    workspace = WorkspaceFactory(owner=people["member"], name="ml-train", permission_mode=mode("no-user-data"))
    sign_in(page, "alice")
    page.goto(f"/workspaces/{workspace.pk}/")
    page.get_by_label("Permission mode", exact=True).select_option("default")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", name="Loosen workspace ml-train to default?")).to_be_visible()
    assert Workspace.objects.get(pk=workspace.pk).permission_mode_id == "no-user-data"
    page.get_by_label("Reason").fill("needs to push to GitHub")
    page.get_by_label("I confirm").check()
    page.get_by_role("button", name="Confirm loosening").click()
    expect(page.get_by_role("status")).to_contain_text("changed from no-user-data to default")
    assert Workspace.objects.get(pk=workspace.pk).permission_mode_id == "default"


def test_auditor_has_no_enabled_controls_and_downloads_the_csv(page, people):
    workspace = WorkspaceFactory(owner=people["member"], name="billing")
    agent = AgentFactory(workspace=workspace, name="main")
    agent_token_issue(actor=people["member"], agent=agent, name="agent")
    sign_in(page, "audrey")

    page.goto(f"/workspaces/{workspace.pk}/")
    expect(page.get_by_text("Auditors have read-only access")).to_be_visible()
    main = page.locator("main")
    expect(
        main.locator("select:enabled, input:not([type=hidden]):enabled, button:enabled, textarea:enabled")
    ).to_have_count(0)
    expect(main.get_by_role("button", name="Revoke")).to_be_disabled()

    page.goto("/workspaces/")
    expect(page.get_by_role("button", name="Apply to selected")).to_be_disabled()
    expect(page.locator("input[name=workspace]:enabled")).to_have_count(0)

    page.get_by_role("link", name="Audit log").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    csv_text = download_info.value.path().read_text(encoding="utf-8")
    assert csv_text.splitlines()[0].startswith("id,time,action")
    assert "agent_token.issued" in csv_text
    assert "cda_" not in csv_text.replace(agent.tokens.get().hint, "")

    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("button", name="Apply no-user-data")).to_have_count(0)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    report = download_info.value.path().read_text(encoding="utf-8")
    assert "billing" in report


def test_member_sees_only_own_workspaces(page, people):
    WorkspaceFactory(owner=people["member"], name="mine-1")
    WorkspaceFactory(owner=people["member"], name="mine-2")
    WorkspaceFactory(owner=people["other"], name="olgas-secret-project")
    sign_in(page, "mo")
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    page.get_by_role("link", name="Workspaces", exact=True).click()
    expect(page.get_by_role("link", name="mine-1")).to_be_visible()
    expect(page.get_by_role("link", name="mine-2")).to_be_visible()
    expect(page.get_by_text("olgas-secret-project")).to_have_count(0)
    expect(page.get_by_text("2 workspaces")).to_be_visible()


def test_admin_bulk_changes_selected_workspaces(page, people):
    chosen = [WorkspaceFactory(owner=people["member"], name=f"batch-{index}") for index in range(3)]
    spared = WorkspaceFactory(owner=people["member"], name="spared")
    sign_in(page, "alice")
    page.goto("/workspaces/")
    for workspace in chosen:
        page.get_by_label(f"Select {workspace.name}").check()
    page.locator("#bulk-mode").select_option("no-user-data")
    page.locator("#bulk-reason").fill("quarterly lockdown")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.get_by_role("status")).to_contain_text("3 workspace(s) now use mode no-user-data.")
    assert {ws.permission_mode_id for ws in Workspace.objects.filter(pk__in=[ws.pk for ws in chosen])} == {
        "no-user-data"
    }
    assert Workspace.objects.get(pk=spared.pk).permission_mode_id == "default"


def test_issuing_a_token_shows_it_once(page, live_server, people):
    workspace = WorkspaceFactory(owner=people["member"], name="web")
    agent = AgentFactory(workspace=workspace, name="main")
    sign_in(page, "mo")
    page.goto(f"/workspaces/{workspace.pk}/")
    page.get_by_text("Issue a token for main").click()
    page.get_by_label("Token name").fill("mcp-server")
    page.get_by_role("button", name="Issue token").click()
    expect(page.get_by_text("you will not see this again")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("cda_")
    assert AgentToken.objects.get(agent=agent).name == "mcp-server"

    manifest = httpx.get(
        f"{live_server.url}/api/v2/workspaceagents/me/manifest", headers={"Authorization": f"Bearer {token}"}
    )
    assert manifest.status_code == 200

    page.get_by_role("link", name="Back to the workspace").click()
    expect(page.get_by_text("mcp-server", exact=True)).to_be_visible()
    assert token not in page.content()
    # The page that showed it was a no-store POST response: going back does not bring it out of a cache.
    with pytest.raises(PlaywrightError, match="ERR_CACHE_MISS"):
        page.go_back()
