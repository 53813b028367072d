"""The Content-Security-Policy in a real browser: every page of the UI, the Django admin and both API docs pages
render under it without a single violation, and the policy really blocks what it should.

A violation shows up twice in Chromium: as a `securitypolicyviolation` event in the page (recorded by a script
Playwright installs before any of the page's own) and as a console error; the tests watch both.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from agents.models import AccessRequest
from agents.services.tokens import agent_token_issue
from agents.services.workspaces import workspace_mode_set
from audit.models import AuditEvent
from tests.helpers.browser import sign_in
from tests.helpers.factories import AdminFactory, AgentFactory, UserFactory, WorkspaceFactory, mode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  window.__cspViolations.push(`${event.violatedDirective} blocked ${blocked} on ${location.pathname}`);
});
"""


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    parsed = {}
    for part in policy.split(";"):
        if part.strip():
            name, *sources = part.split()
            parsed[name] = sources
    return parsed


class ViolationWatch:
    """Collects CSP violations from the page's events and from the console, across navigations."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def events(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations")

    def found(self) -> list[str]:
        self.page.wait_for_load_state("networkidle")
        return self.events() + self.console

    def assert_none(self, where: str) -> None:
        found = self.found()
        assert not found, f"{where}: {found}"


@pytest.fixture
def watch(page):
    return ViolationWatch(page)


@pytest.fixture
def demo():
    admin = AdminFactory(username="alice")
    owner = UserFactory(username="mo")
    workspace = WorkspaceFactory(owner=owner, name="payments-api")
    WorkspaceFactory(owner=owner, name="docs-site")
    agent = AgentFactory(workspace=workspace, name="main")
    agent_token_issue(actor=admin, agent=agent, name="agent")
    workspace_mode_set(actor=admin, workspace=workspace, permission_mode=mode("no-user-data"), reason="lock down")
    # A pending request, so the access-request pages render their forms and rows.
    AccessRequest.objects.create(
        agent=agent,
        workspace=workspace,
        scopes=["agent:gitsshkey"],
        reason="sign a tag",
        duration_seconds=900,
        requested_at=timezone.now(),
    )
    return {"admin": admin, "workspace": workspace, "agent": agent}


def test_ui_pages_log_no_csp_violation(page, watch, demo):
    """The sign-in form and every page an admin opens, a 404 and the Django admin included, render under the
    strict policy."""
    page.goto("/")
    expect(page.get_by_label("Username")).to_be_visible()
    watch.assert_none("sign-in form")

    sign_in(page, "alice")
    workspace = demo["workspace"]
    event = AuditEvent.objects.filter(workspace_id=workspace.pk).latest("id")
    for path in (
        "/",
        "/workspaces/",
        f"/workspaces/{workspace.pk}/",
        f"/workspaces/{workspace.pk}/?tokens=all",
        "/permission-modes/",
        "/audit/",
        f"/audit/{event.id}/",
        "/reports/",
        "/access-requests/",
        "/access-requests/history/",
        "/no-such-page/",
        "/admin/",
        "/admin/agents/workspace/",
        f"/admin/agents/workspace/{workspace.pk}/change/",
    ):
        response = page.goto(path)
        policy = directives(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"] and policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"], path
        watch.assert_none(path)


def test_pages_after_a_post_log_no_csp_violation(page, watch, demo):
    """The one-time token page, the loosening confirmation and the 403 a member gets also render under it."""
    workspace, agent = demo["workspace"], demo["agent"]
    sign_in(page, "alice")
    page.goto(f"/workspaces/{workspace.pk}/")
    page.get_by_text(f"Issue a token for {agent.name}").click()
    page.get_by_label("Token name").fill("helper")
    page.get_by_role("button", name="Issue token").click()
    expect(page.get_by_text("you will not see this again")).to_be_visible()
    watch.assert_none("token issued")

    page.goto(f"/workspaces/{workspace.pk}/")
    page.get_by_label("Permission mode", exact=True).select_option("default")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", name=f"Loosen workspace {workspace.name} to default?")).to_be_visible()
    watch.assert_none("confirm loosening")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "mo")
    response = page.goto("/audit/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    watch.assert_none("403")


def test_the_ui_script_still_works_under_the_policy(page, watch, demo):
    """app.js is a static file, so the policy lets it run: "select all" ticks every workspace."""
    sign_in(page, "alice")
    page.goto("/workspaces/")
    page.locator("[data-select-all]").check()
    expect(page.locator("input[name=workspace]:checked")).to_have_count(2)
    watch.assert_none("select all")


def test_swagger_ui_renders_under_its_policy(page, watch):
    """Swagger UI (drf-spectacular-sidecar, served locally) renders the schema with no violation."""
    response = page.goto("/api/schema/docs/")
    policy = directives(response.headers["content-security-policy"])
    assert policy["img-src"] == ["'self'", "data:"] and policy["script-src"] == ["'self'"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("coderauth API")
    expect(page.get_by_text("/api/v2/workspaceagents/me/gitsshkey", exact=True)).to_be_visible()
    watch.assert_none("Swagger UI")


def test_redoc_renders_under_its_policy_and_calls_no_third_party(page, watch):
    """Redoc renders the schema, its search worker included. Its one call out, the "API docs by Redocly" logo it
    always loads from cdn.redoc.ly, is refused: the docs page loads nothing from another origin."""
    response = page.goto("/api/schema/redoc/")
    policy = directives(response.headers["content-security-policy"])
    assert policy["worker-src"] == ["blob:"] and policy["script-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    expect(page.get_by_role("heading", name="coderauth API")).to_be_visible()
    page.get_by_placeholder("Search...").fill("gitsshkey")
    expect(page.locator("[role=search] li").first).to_be_visible()
    found = watch.found()
    assert found, "Redoc's logo request should have been refused"
    unexpected = [item for item in found if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in item]
    assert not unexpected, unexpected


def test_the_policy_blocks_inline_script_and_style(page, watch, demo):
    """The watch can fail: script and style injected into a page are refused and reported."""
    sign_in(page, "alice")
    page.goto("/workspaces/")
    ran = page.evaluate(
        """() => {
          window.__injected = false;
          const script = document.createElement("script");
          script.textContent = "window.__injected = true;";
          document.body.appendChild(script);
          const style = document.createElement("style");
          style.textContent = "body { display: none; }";
          document.head.appendChild(style);
          return window.__injected;
        }"""
    )
    assert ran is False
    expect(page.locator("main")).to_be_visible()
    page.wait_for_function("window.__cspViolations.length >= 2")
    directives = " ".join(watch.events())
    assert "script-src" in directives and "style-src" in directives
